"""E-mail for im: the workflow action `email.notify`, which mails a notice of an incident (to
management, say) over SMTP, with STARTTLS and a login.

This module is imported whenever im starts, so it stays light: the action (and smtplib, ssl
and the e-mail package) is imported inside the hook that registers it.
"""

from im import hookimpl

IM_SDK = "1.0"  # the im plugin SDK this plugin is built for (see `im plugins`)


@hookimpl
def register_workflow_actions(register):
    from im_email.notify import EmailNotify

    register(EmailNotify)
