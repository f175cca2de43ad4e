"""The SMTP server of the tests and the demo (im_email.testing), by the name the tests import."""

from im_email.testing import (  # noqa: F401
    PASSWORD, USER, Delivery, Handler, SmtpServer, free_port)
