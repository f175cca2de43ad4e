"""A local Slack: the Web API methods an incident tool needs, signed slash commands and
interactivity sent to an app, and the response_urls they carry; for demos, tests and offline
use.

Importing this package loads Litestar and uvicorn; the CLI imports it only when the sandbox
command runs.
"""

from im_slack.sandbox.app import create_app
from im_slack.sandbox.config import SandboxConfig, SeedUser
from im_slack.sandbox.core import Sandbox
from im_slack.sandbox.server import SandboxServer
from im_slack.sandbox.signing import signature

__all__ = ["Sandbox", "SandboxConfig", "SandboxServer", "SeedUser", "create_app", "signature"]
