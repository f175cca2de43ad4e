"""How a Slack sandbox is started; fields marked runtime can change under /_sandbox/config."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

PositiveInt = Annotated[int, msgspec.Meta(ge=1)]

# What a bot token of an incident app is typically granted (Slack's bot scopes of today).
DEFAULT_SCOPES = (
    "chat:write",
    "channels:manage",
    "channels:join",
    "channels:read",
    "channels:history",
    "groups:write",
    "groups:read",
    "groups:history",
    "pins:write",
    "users:read",
    "users:read.email",
    "commands",
)


class SeedUser(msgspec.Struct, frozen=True, kw_only=True):
    name: str  # the handle, such as "jane.smith"
    real_name: str
    email: str


DEMO_USERS = (
    SeedUser(name="jane.smith", real_name="Jane Smith", email="jane.smith@company.com"),
    SeedUser(name="john.doe", real_name="John Doe", email="john.doe@company.com"),
    SeedUser(name="ops", real_name="Ops Team", email="ops@company.com"),
)

# "slack": Slack's published tiers, and about one message a second per channel with a short
# burst; "strict": the same without the burst and with every tier at `strict_limit` calls a
# minute, so that a test meets a 429 in a few calls; "off": no limits.
RateLimitMode = Literal["slack", "strict", "off"]


class SandboxConfig(msgspec.Struct, frozen=True, kw_only=True):
    # the bot token clients send as `Authorization: Bearer xoxb-...`
    token: str
    # the app's signing secret: what the sandbox sends to the app is signed with it
    signing_secret: str
    # runtime: the token's scopes; a method needing another answers `missing_scope`
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    users: tuple[SeedUser, ...] = DEMO_USERS
    team: str = "Sandbox Workspace"
    workspace_url: str = "https://sandbox.slack.invalid/"
    # runtime
    rate_limits: RateLimitMode = "slack"
    # runtime: messages a channel takes at once before the one-a-second pace applies
    post_message_burst: PositiveInt = 4
    # runtime: calls a minute of every tier in the strict mode
    strict_limit: PositiveInt = 1
    # runtime: the Retry-After of a 429; None: the seconds until the window has room again
    retry_after_seconds: Annotated[int, msgspec.Meta(ge=0)] | None = None
    # runtime: Slack wants an app's answer within 3 seconds
    app_timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] = 3.0
    request_log_size: PositiveInt = 100_000


class RuntimeSettings(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A PATCH of /_sandbox/config: only the fields given change."""

    scopes: tuple[str, ...] | None = None
    rate_limits: RateLimitMode | None = None
    post_message_burst: PositiveInt | None = None
    strict_limit: PositiveInt | None = None
    retry_after_seconds: Annotated[int, msgspec.Meta(ge=0)] | None = None
    app_timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] | None = None


def apply_settings(config: SandboxConfig, changes: RuntimeSettings) -> SandboxConfig:
    given = {k: v for k, v in msgspec.structs.asdict(changes).items() if v is not None}
    return msgspec.structs.replace(config, **given)
