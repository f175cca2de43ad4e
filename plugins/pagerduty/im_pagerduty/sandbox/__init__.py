"""A local PagerDuty: REST API v2 and Webhooks v3 delivery, for demos, tests and offline use.

Importing this package loads Litestar and uvicorn; the CLI imports it only when the sandbox
command runs.
"""

from im_pagerduty.sandbox.app import create_app
from im_pagerduty.sandbox.config import SandboxConfig
from im_pagerduty.sandbox.core import Sandbox
from im_pagerduty.sandbox.server import SandboxServer
from im_pagerduty.sandbox.signing import signature, signature_header, signature_matches

__all__ = [
    "Sandbox",
    "SandboxConfig",
    "SandboxServer",
    "create_app",
    "signature",
    "signature_header",
    "signature_matches",
]
