"""Every hook of im. A hook's docstring is its contract; call hooks with keyword arguments."""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("im")
hookimpl = pluggy.HookimplMarker("im")


@hookspec
def register_connectors(register: Any) -> None:
    """Add connector types.

    Called once per Runtime, the first time a connector type is needed. Call
    `register(ConnectorClass)` for each connector type the plugin provides; the class subclasses
    `im.Connector` and its `type` attribute is the name users give to `im connector add TYPE
    NAME`. Registering a type name twice is an error that names both plugins. Return nothing.
    """


@hookspec
def register_commands(cli: Any, runtime: Any) -> None:
    """Add commands to the `im` command line.

    Called once when the CLI is built, after the core commands. `cli` is the root `typer.Typer`;
    add a group with `cli.add_typer(app, name="...")` or a command with `@cli.command()`. The
    core's own groups can be extended too: `im.command_group(cli, "connector")` returns the
    Typer of `im connector`. `runtime` is the `im.Runtime` the commands run against. Import heavy modules
    inside the command functions, not at module level: every `im` invocation runs this hook.
    Return nothing.
    """


@hookspec
def register_routes(register: Any, runtime: Any) -> None:
    """Add HTTP routes to `im serve`.

    Called once when the server app is built (and by `im plugins`, which lists the routes).
    Call `register(handler)` with Litestar route handlers, controllers or routers. `runtime`
    is the `im.Runtime` the server runs against. Paths must not collide with the core's
    (`/health`, `/metrics`, `/api/...`, `/connectors/{name}/webhook`). A route open to the
    internet is open to anyone: protect one with the API tokens by giving it
    `guards=[im.api_token_guard(runtime)]`. A handler that changes incidents (through
    `im.app`) takes the dependency `after_change` and calls it after each change: `im serve`
    then delivers the change at once, as it does the HTTP API's. An exception stops `im
    serve` with a line naming the plugin. Return nothing.
    """


@hookspec
def register_workflow_actions(register: Any) -> None:
    """Add actions that workflow rules can run (`im workflow add ... --action NAME`).

    Called once per Runtime, the first time actions are needed. Call `register(ActionClass)`
    for each action; the class subclasses `im.WorkflowAction`, and its `name` (dotted, starting
    with the plugin's own name: `chat.war_room`) is what rules name it by. Registering a name
    twice is an error that names both plugins. Return nothing.
    """


@hookspec
def incident_changed(incident: Any, event: Any, runtime: Any) -> None:
    """Announce a change to an incident, after it has been committed.

    `incident` is the `im.Incident` as it is now, `event` the `im.TimelineEvent` that records the
    change (its `kind` says what happened: declared, acknowledged, resolved, note, ...; its
    `system` says where it came from: "im" or a connector's name), `runtime` the `im.Runtime`.
    Called in the process that made the change, for every implementation; results are ignored
    and an exception in one implementation is logged, not raised, so a broken notifier never
    fails an incident change.
    """


@hookspec
def sla_breached(incident: Any, timer: Any, runtime: Any) -> None:
    """Announce that an incident missed an SLA target, once per breach, after it is recorded.

    `incident` is the `im.Incident`; `timer` the `im.sla.Timer` that ran out (its `kind` is
    "ack" or "resolve", with `target_seconds`, `started_at` and `due_at`); `runtime` the
    `im.Runtime`. Called in the process that detected the breach (`im serve`, or
    `im sla check`). Results are ignored; an exception in one implementation is logged and
    the others still run. Connectors are told through the outbox (a note on every linked
    remote incident), not through this hook.
    """
