"""The Teams stand-in of the tests and the demo (im_teams.testing), by the name the tests import."""

from im_teams.testing import PATH, Answer, Received, WorkflowsEndpoint  # noqa: F401
