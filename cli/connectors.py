"""`im connector ...`: configure connectors of any type and run their generic operations.

Each command reads the command line (settings as JSON or `--set PATH=VALUE`, secrets from
standard input or a file, answers to prompts), calls `im.app.connectors`, which holds the
rules, and prints what it returns. The commands are module-level functions that find the
runtime on their context (im.cli.context); `register` puts them in the `connector` group.
"""


import json
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from im.cli.context import runtime
from im.errors import ImError, InvalidInputError
from im.humanize import printable  # remote systems' words reach the terminal without controls

if TYPE_CHECKING:
    from im.app.connectors import SyncBacklog, WebhookSetUp

EXTRA_ARGS = {"allow_extra_args": True, "ignore_unknown_options": True}
OPTION_HELP = ("The connector's options are listed below; any setting can be given with --set"
               " PATH=VALUE. A secret given as `-` is read from standard input, as @FILE"
               " from a file: a value on the command line can be read by other users of the"
               " machine (in the process list) while the command runs.")


def register(app: typer.Typer) -> None:
    """Add the `connector` group to the root command line, its commands in the order `im
    connector --help` lists them (plugins add theirs after)."""
    from im.cli import observe

    connector_app = typer.Typer(help="Configure connectors and keep incidents in step with"
                                     " them.", no_args_is_help=True, rich_markup_mode=None)
    connector_app.command()(add)
    connector_app.command("list")(list_)
    connector_app.command()(show)
    connector_app.command()(remove)
    connector_app.command(context_settings=EXTRA_ARGS, cls=ConnectorOptionsCommand,
                          help=f"Change a connector's settings. {OPTION_HELP}")(update)
    connector_app.command(context_settings=EXTRA_ARGS, cls=ConnectorOptionsCommand,
                          help=f"Configure a connector (same as update). {OPTION_HELP}",
                          )(config)
    connector_app.command()(test)
    connector_app.command()(sync)
    connector_app.command()(preview)
    connector_app.command()(webhook)
    connector_app.command()(replay)
    connector_app.command()(observe.status)
    connector_app.command()(observe.health)
    app.add_typer(connector_app, name="connector")


def _connector_options_command() -> type:
    """The Click command class of `update` and `config`: its help lists, for each installed
    connector type, the options it takes and the setting each sets (they are not Click options:
    a connector type's options are known only once its name is read)."""
    from typer.core import TyperCommand

    class ConnectorOptionsCommand(TyperCommand):
        def format_epilog(self, ctx: Any, formatter: Any) -> None:
            from im.connector_config import option_rows

            for type_name, cls in sorted(runtime(ctx).connector_types.items()):
                with formatter.section(f"Options of {type_name} connectors"):
                    formatter.write_dl(option_rows(cls.Settings, cls.options))
            super().format_epilog(ctx, formatter)

    return ConnectorOptionsCommand


ConnectorOptionsCommand = _connector_options_command()


# -- configuring ---------------------------------------------------------------------------


def add(
    ctx: typer.Context,
    type_name: str = typer.Argument(..., metavar="TYPE", help="Connector type (installed"
                                    " plugins provide them)."),
    name: str = typer.Argument(..., help="A name for this connector, e.g. prod-paging."),
    config: str = typer.Option(None, "--config", help="Settings as JSON (no prompts);"
                               " `-` reads them from standard input, @FILE from a file"
                               " (a key on the command line shows in the process list)."),
) -> None:
    """Add a connector, asking for its settings (or taking them as --config JSON). One
    that pulls gets its remote's webhooks set up when im's public URL is known."""
    from im.app import connectors
    from im.cli import waiting
    from im.connector_config import prompts, set_path

    cls = connectors.new_connector_type(runtime(ctx), type_name, name)
    if config is not None:
        data = _parse_json(_config_text(config), "--config")
        if not isinstance(data, dict):
            raise InvalidInputError("--config must be a JSON object")
    else:
        data = {}
        questions = prompts(cls.Settings)
        for question in questions:
            data = _ask(data, question, set_path, cls.Settings)
        # A check that needs later answers (a struct's own, run once it is complete):
        # the answer at fault is asked again; the others are kept.
        while (problem := _problem(cls.Settings, data)) is not None:
            at = next((q for q in questions if q.path == problem[0]), None)
            if at is None:
                break  # not an answer's fault: adding it says what is wrong
            typer.echo(problem[1], err=True)
            data = _ask(data, at, set_path, cls.Settings)
    added = connectors.add(runtime(ctx), type_name, name, data)
    typer.echo(f"Added connector {added.name} ({added.type}, {added.direction.value})")
    _print_webhook_setup(connectors.set_up_webhooks(runtime(ctx), name, busy=waiting.spinner),
                         name)
    typer.echo(f"Check it with: im connector test {name}")


def _print_webhook_setup(setup: "WebhookSetUp", name: str) -> None:
    """What setting up webhooks after `add` or `update` came to, and what to run when it
    could not be done."""
    if setup.outcome == "connector unusable":
        typer.echo(f"! Webhooks not set up: {setup.error}; run: im connector webhook {name}"
                   " --enable")
    elif setup.outcome == "bad public url":
        typer.echo(f"! Webhooks not set up: {setup.error}")
    elif setup.outcome == "no public url":
        typer.echo(f"Webhooks: not set up yet (im's public URL is not known); run: im"
                   f" connector webhook {name} --enable --url https://YOUR-DOMAIN")
    elif setup.outcome == "remote failed":
        typer.echo(f"! Webhooks not set up: {setup.error}; polling covers meanwhile; run: im"
                   f" connector webhook {name} --enable")
    elif setup.outcome == "set up":
        for line in setup.lines:
            typer.echo(printable(line))
        typer.echo(f"Webhook URL will be: {setup.url}")


def list_(ctx: typer.Context,
          json_output: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List configured connectors with their status and last sync."""
    from im.app import connectors
    from im.cli.output import ago, print_json, table

    now = runtime(ctx).clock()
    rows = connectors.list_connectors(runtime(ctx))
    if json_output:
        print_json(rows)
        return
    if not rows:
        typer.echo("No connectors. Add one with: im connector add TYPE NAME")
        return
    typer.echo(table(["Name", "Type", "Status", "Direction", "Last Sync"],
                     [[r.name, r.type, r.status, r.direction.value, ago(r.last_sync, now)]
                      for r in rows]))


def show(ctx: typer.Context, name: str = typer.Argument(..., help="The connector."),
         json_output: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show a connector's settings (secrets redacted)."""
    from im.app import connectors
    from im.cli.output import print_json

    view = connectors.show(runtime(ctx), name)
    if json_output:
        print_json(view)
        return
    typer.echo(f"Connector: {view.name} ({view.type})")
    typer.echo(json.dumps(view.settings, indent=2, sort_keys=True))


def remove(ctx: typer.Context, name: str = typer.Argument(..., help="The connector."),
           yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask.")) -> None:
    """Remove a connector, and the webhook subscriptions it made in its remote system. Links
    stay on the incidents' history; queued changes are dropped."""
    from im.app import connectors

    connectors.get(runtime(ctx), name)
    queued = len(connectors.queued_changes(runtime(ctx), name))
    if not yes:
        warning = f" {queued} queued change(s) will not be delivered." if queued else ""
        typer.confirm(f"Remove connector {name}?{warning}", abort=True)
    removed = connectors.remove(runtime(ctx), name)
    if removed.unsubscribe_error is not None:
        typer.echo(printable(f"! Its webhook subscriptions were not removed:"
                             f" {removed.unsubscribe_error}; delete them in {removed.type}"),
                   err=True)
    for line in removed.lines:
        typer.echo(printable(line))
    typer.echo(f"Removed connector {name}")


def update(ctx: typer.Context, name: str = typer.Argument(..., help="The connector."),
           set_: list[str] = typer.Option([], "--set", help="PATH=VALUE, e.g."
                                          " custom.service_id=PXXXXXX."),
           config: str = typer.Option(None, "--config", help="JSON to merge in.")) -> None:
    _update(ctx, name, set_, config)


def config(ctx: typer.Context, name: str = typer.Argument(..., help="The connector."),
           set_: list[str] = typer.Option([], "--set", help="PATH=VALUE."),
           config_json: str = typer.Option(None, "--config", help="JSON to merge in."),
           ) -> None:
    _update(ctx, name, set_, config_json)


def _update(ctx: typer.Context, name: str, sets: list[str], config: str | None) -> None:
    """`update` and `config`: the settings the command line gives, read into values (the
    connector type's options, --set, --config), then changed by im.app.connectors.update."""
    from im.app import connectors
    from im.cli import waiting

    record = connectors.get(runtime(ctx), name)
    cls = runtime(ctx).connector_type(record.type)
    merge = None
    if config is not None:
        merge = _parse_json(_config_text(config), "--config")
        if not isinstance(merge, dict):
            raise InvalidInputError("--config must be a JSON object")
    values: list[tuple[str, Any]] = []
    for item in sets:
        path, sep, raw = item.partition("=")
        if not sep or not path:
            raise InvalidInputError(f"--set takes PATH=VALUE, not {item!r}")
        values.append((path, _coerce(cls.Settings, path, raw)))
    for option, path, raw in _option_values(list(ctx.args), dict(cls.options)):
        try:
            value = _coerce(cls.Settings, path, raw)
        except ImError as error:
            raise InvalidInputError(f"{option}: {error}") from None
        values.append((path, value))
    try:
        updated = connectors.update(runtime(ctx), name, merge=merge, values=values,
                                    busy=waiting.spinner)
    except connectors.NothingToChangeError:
        known = ", ".join(f"--{o}" for o in sorted(cls.options))
        raise InvalidInputError(f"nothing to change; give {known + ', ' if known else ''}"
                                "--set PATH=VALUE or --config JSON") from None
    for warning in updated.warnings:
        typer.echo(f"Warning: {warning}", err=True)
    for change in updated.changed:
        typer.echo(f"Updated {name}: {change.path} = {json.dumps(change.value)}")
    if updated.webhooks == "set up":
        _print_webhook_setup(connectors.set_up_webhooks(runtime(ctx), name,
                                                        busy=waiting.spinner), name)
    elif updated.webhooks == "tear down":
        removed = connectors.tear_down_webhooks(runtime(ctx), name)
        if removed.outcome == "failed":
            typer.echo(f"! Webhook subscriptions not removed: {removed.error}; run: im"
                       f" connector webhook {name} --disable")
        for line in removed.lines:
            typer.echo(printable(line))


# -- checking, syncing ---------------------------------------------------------------------


def test(ctx: typer.Context, name: str = typer.Argument(..., help="The connector."),
         json_output: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Check that a connector can reach and use its remote system."""
    from im.app import connectors
    from im.cli import waiting

    checked = connectors.check(runtime(ctx), name, deadline=waiting.deadline(),
                               busy=waiting.spinner)
    if json_output:
        from im.cli.output import print_json

        print_json(checked)
        if not checked.ok:
            raise typer.Exit(1)
        return
    from im.cli.output import mark

    for check in checked.checks:
        typer.echo(f"{mark('✓') if check.ok else mark('✗')} {printable(check.detail)}")
        if not check.ok and check.fix:
            typer.echo(printable(f"  Fix: {check.fix}"))
    for problem in checked.warnings:  # the public URL may not loop back from this machine
        typer.echo(f"{mark('!')} {problem}")
    if not checked.ok:
        raise typer.Exit(1)


def sync(ctx: typer.Context, name: str = typer.Argument(..., help="The connector."),
         incident: str = typer.Option(None, "--incident", "-i",
                                      help="Only this incident, e.g. INC-12."),
         retry_failed: bool = typer.Option(False, "--retry-failed",
                                           help="Also try again the changes that failed"
                                                " for good (after fixing the cause)."),
         json_output: bool = typer.Option(False, "--json", help="Print JSON.")
         ) -> None:
    """Deliver queued changes now (without waiting for backoff), then reconcile: for
    bidirectional and inbound connectors, apply what changed remotely."""
    from im.app import connectors
    from im.cli import waiting

    if json_output:
        _sync_json(ctx, name, incident, retry_failed)
        return
    scope = connectors.sync_scope(runtime(ctx), name, incident)
    if retry_failed:
        count = connectors.requeue_failed(runtime(ctx), scope)
        typer.echo(f"{name}: {count} failed change(s) queued again")
    pending = connectors.queued_changes(runtime(ctx), scope.connector, scope.incident_id)
    # one deadline for the whole command: delivering, then reconciling
    until = waiting.deadline()
    try:
        with waiting.spinner(f"Delivering to {name}", total=len(pending)) as step:
            report = connectors.deliver(runtime(ctx), scope, deadline=until,
                                        progress=lambda _row: step())
    except connectors.DeliveryInterrupted as interrupted:
        waiting.interrupted(interrupted.queued)
    typer.echo(f"{name}: {report.delivered} delivered, {report.retrying} queued for retry,"
               f" {report.failed} failed")
    for error in report.errors:
        typer.echo(printable(f"  ! {error}"), err=True)
    if report.failed:
        typer.echo(f"  {report.failed} change(s) refused for good and set aside; the"
                   f" changes stay in im. Fix the cause, then `im connector sync {name}"
                   " --retry-failed` sends them again", err=True)
    left = connectors.backlog(runtime(ctx), scope, report.tried)
    _print_backlog(left, name)
    with waiting.spinner(f"Reconciling with {name}"):
        reconciled = connectors.reconcile(runtime(ctx), scope, deadline=until)
    if reconciled.error is not None:
        typer.echo(f"  ! reconciling failed: {reconciled.error}", err=True)
    outcomes = dict(reconciled.outcomes or {})
    if outcomes:
        # "confirmed": what the remote said im knew already; the rest are changes
        known = outcomes.pop("confirmed", 0)
        if outcomes:
            summary = ", ".join(f"{count} {outcome}" for outcome, count in sorted(
                outcomes.items()))
            line = f"{name}: reconciled {sum(outcomes.values())} remote change(s): {summary}"
            if known:
                line += f"; {known} already in step"
        else:
            line = f"{name}: no remote changes; {known} already in step"
        typer.echo(line)
    if report.failed:
        from im.cli import EXIT_REFUSED

        raise typer.Exit(EXIT_REFUSED)
    if report.retrying or left.not_done or reconciled.error is not None:
        raise typer.Exit(1)


def _print_backlog(left: "SyncBacklog", name: str) -> None:
    """Say why the changes still waiting after a sync were not delivered."""
    from im.cli.output import when
    from im.cli.waiting import BUDGET, describe

    if left.held:
        until = describe(left.held, limit=len(left.held), suffix=lambda group: " until " + when(
            max(row.lease_until for row in group)))
        typer.echo(f"{name}: {len(left.held)} change(s) held by another process that is"
                   f" delivering them (`im serve` or another command), not tried here: {until}")
    if left.behind_held:
        typer.echo(f"{name}: {len(left.behind_held)} change(s) wait behind those, in order:"
                   f" {describe(left.behind_held)}")
    if left.behind_retry:
        typer.echo(f"{name}: {len(left.behind_retry)} change(s) wait behind the ones queued"
                   f" for retry, in order: {describe(left.behind_retry)}")
    if left.not_tried:
        typer.echo(f"{name}: {len(left.not_tried)} change(s) not tried: the command's"
                   f" {BUDGET:g} s ran out; `im serve` or another sync delivers them:"
                   f" {describe(left.not_tried)}")
    if left.set_aside:  # `status` counts them as failed: not silently "0 failed" here
        typer.echo(f"{name}: {len(left.set_aside)} change(s) set aside earlier, refused for"
                   f" good: {describe(left.set_aside)}; after fixing the cause, `im connector"
                   f" sync {name} --retry-failed` sends them again")


def _sync_json(ctx: typer.Context, name: str, incident: str | None,
               retry_failed: bool) -> None:
    """`connector sync --json`: what was queued again, what delivery did (the counts
    and errors), what reconciling applied (by outcome), and its error; exit 1 as the
    text output does."""
    import msgspec

    from im.app import connectors
    from im.cli import EXIT_REFUSED, waiting
    from im.cli.output import print_json

    try:
        result = connectors.sync(runtime(ctx), name, incident=incident,
                                 retry_failed=retry_failed, deadline=waiting.deadline(),
                                 busy=waiting.spinner)
    except connectors.DeliveryInterrupted as interrupted:
        waiting.interrupted(interrupted.queued)
    report, left = result.delivery, result.backlog
    delivery = msgspec.structs.asdict(report)
    delivery.pop("tried")
    delivery.update({kind: [{"incident": row.incident_id, "action": row.action,
                             "service": row.service, "lease_until": row.lease_until
                             if kind == "held" else None} for row in rows]
                     for kind, rows in (("held", left.held), ("behind_held", left.behind_held),
                                        ("behind_retry", left.behind_retry),
                                        ("not_tried", left.not_tried),
                                        ("set_aside", left.set_aside))})
    error = (f"reconciling failed: {result.reconciled.error}"
             if result.reconciled.error is not None else None)
    print_json({"connector": result.scope.connector, "incident": result.scope.incident_id,
                "requeued": result.requeued, "delivery": delivery,
                "reconciled": result.reconciled.outcomes, "error": error})
    if report.failed:
        raise typer.Exit(EXIT_REFUSED)
    if error or report.retrying or left.behind_retry or left.not_tried:
        raise typer.Exit(1)


def preview(ctx: typer.Context, name: str = typer.Argument(..., help="The connector."),
            incident: str = typer.Option(..., "--incident", "-i",
                                         help="The incident, e.g. INC-12.")) -> None:
    """Show what the connector sends to create an incident, per service (no remote call):
    a way to check mappings."""
    from im.app import connectors
    from im.cli.output import print_json

    print_json(connectors.preview(runtime(ctx), name, incident))


def webhook(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The connector."),
    enable: bool = typer.Option(False, "--enable", help="Subscribe to the remote's events."),
    disable: bool = typer.Option(False, "--disable", help="Remove every subscription"
                                 " the connector made."),
    test: bool = typer.Option(False, "--test", help="Send a signed test event through the"
                              " real route (and ask the remote for its ping)."),
    url: str = typer.Option(None, "--url", help="im's public base URL, e.g."
                            " https://im.example.com (default: IM_PUBLIC_URL, else the"
                            " last one given); a new one replaces the subscription."),
) -> None:
    """Set up, remove or test real-time webhooks from the connector's system."""
    from im.app import connectors
    from im.cli import waiting

    if enable + disable + test != 1:
        raise InvalidInputError("give one of --enable, --disable or --test")
    if disable:
        for line in connectors.disable_webhooks(runtime(ctx), name, url=url):
            typer.echo(printable(line))
        return
    try:
        if enable:
            enabled = connectors.enable_webhooks(runtime(ctx), name, url=url,
                                                 busy=waiting.spinner)
        else:
            checks = connectors.check_webhooks(runtime(ctx), name, url=url)
    except connectors.PublicUrlUnknownError:
        mode = "--enable" if enable else "--test"
        raise InvalidInputError(
            f"im's public URL is not known; run: im connector webhook {name} {mode} --url"
            " https://YOUR-DOMAIN (where `im serve` is reached), or set"
            " IM_PUBLIC_URL=https://YOUR-DOMAIN") from None
    if enable:
        for line in enabled.lines:
            typer.echo(printable(line))
        typer.echo(f"Webhook URL will be: {enabled.url}")
        if not enabled.direction.pulls:
            options = runtime(ctx).connector_type(enabled.type).options
            typer.echo(f"! {name} is {enabled.direction.value}: it ignores the events webhooks"
                       " bring until its direction changes; run: im connector update"
                       f" {name} {_direction_option(options)}bidirectional")
        return
    ok = True
    for step in checks:  # each as it is done: a step may wait for seconds
        typer.echo(f"{_STEP_MARKS[step.outcome]} {step.detail}")
        if step.fix:
            typer.echo(f"  Fix: {step.fix}")
        ok = ok and step.outcome != "failed"
    if not ok:
        raise typer.Exit(1)


_STEP_MARKS = {"passed": "✓", "failed": "✗", "skipped": "-"}


def _direction_option(options: dict[str, str]) -> str:
    """How `im connector update` sets a connector type's sync direction (with its space)."""
    option = next((o for o, path in options.items() if path == "sync_direction"), None)
    return f"--{option} " if option else "--set sync_direction="


def replay(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The connector."),
    event: list[int] = typer.Option([], "--id", help="Only this stored event (repeatable)."),
) -> None:
    """Process quarantined events again (after an upgrade or a settings fix)."""
    from im.app import connectors

    replayed = connectors.replay(runtime(ctx), name, event)
    if not replayed.waiting:
        typer.echo(f"{name}: no quarantined events")
        return
    typer.echo(f"{name}: {replayed.processed} processed, {replayed.quarantined} still"
               " quarantined")
    for row in replayed.remaining:
        typer.echo(f"  #{row.id} {row.event_type} {row.delivery_id}: {row.error}")


# -- reading the command line --------------------------------------------------------------


def _parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as error:
        raise InvalidInputError(f"{what} is not valid JSON: {error}") from None


def _option_values(args: list[str], options: dict[str, str]) -> list[tuple[str, str, str]]:
    """(option, settings path, raw value) for `--name value` / `--name=value` arguments."""
    found = []
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise InvalidInputError(f"unexpected argument {arg!r}")
        name, sep, value = arg[2:].partition("=")
        if name not in options:
            known = ", ".join(f"--{o}" for o in sorted(options)) or "none"
            raise InvalidInputError(f"unknown option --{name}; this connector takes {known},"
                                    " --set PATH=VALUE and --config JSON")
        if not sep:
            if i + 1 >= len(args):
                raise InvalidInputError(f"--{name} needs a value")
            i += 1
            value = args[i]
        found.append((f"--{name}", options[name], value))
        i += 1
    return found


def _coerce(settings_type: type, path: str, raw: str) -> Any:
    """A command-line value for a setting: text for text fields, JSON for everything else."""
    import msgspec.inspect as mi

    from im.connector_config import (
        container_paths,
        field_type,
        parse_bool,
        secret_paths,
        suggest_path,
    )

    kind = field_type(settings_type, path)
    if kind is None and path not in container_paths(settings_type):
        parent, _, leaf = path.rpartition(".")
        better = suggest_path(settings_type, parent or None, leaf)
        raise InvalidInputError(f"unknown setting {path!r}"
                                + (f"; did you mean {better}?" if better else ""))
    if path in secret_paths(settings_type):
        raw = _secret(raw, path)  # read from stdin or a file; converted as any other value
    if isinstance(kind, mi.StrType | mi.EnumType):
        return raw
    if isinstance(kind, mi.BoolType):
        return parse_bool(raw, path)
    try:
        return json.loads(raw)
    except ValueError:
        if kind is None or isinstance(kind, mi.UnionType | mi.AnyType):
            return raw
        raise InvalidInputError(f"{path} takes JSON, e.g. {path}='{{...}}'") from None


def _secret(raw: str, what: str) -> str:
    """A secret's value as given: `-` reads it from standard input (asked for, unseen, on a
    terminal), `@FILE` from a file; anything else is the value itself, which other users of the
    machine can read in the process list while the command runs."""
    if raw == "-":
        if sys.stdin.isatty():
            value = typer.prompt(what, hide_input=True)
        else:
            value = sys.stdin.readline()
    elif raw.startswith("@"):
        value = _read_file(raw[1:], what)
    else:
        return raw
    value = value.strip()  # the line end of a pipe or a file is not part of a key
    if not value:
        raise InvalidInputError(f"{what}: nothing was read from"
                                f" {'standard input' if raw == '-' else raw[1:]}")
    return value


def _read_file(path: str, what: str) -> str:
    try:
        return Path(path).expanduser().read_text()
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise InvalidInputError(f"cannot read {what} from {path}: {reason}") from None


def _config_text(config: str) -> str:
    """--config as given: JSON, `-` (standard input) or `@FILE`."""
    if config == "-":
        return sys.stdin.read()
    if config.startswith("@"):
        return _read_file(config[1:], "--config")
    return config


def _ask(data: dict[str, Any], question: Any, set_path: Any,
         settings_type: Any) -> dict[str, Any]:
    if question.yes_no:
        from im.connector_config import parse_bool

        hint = "[Y/n]" if question.default else "[y/N]"
        while True:
            reply = typer.prompt(f"{question.title} {hint}", default="",
                                 show_default=False)
            try:
                answer = (parse_bool(reply, question.title) if reply.strip()
                          else bool(question.default))
            except InvalidInputError:
                typer.echo("Answer yes or no (or true or false).", err=True)
                continue
            return set_path(data, question.path, answer)
    optional = not question.required and question.default is None
    label = question.title + (" (optional)" if optional else "")
    if question.choices:
        label += f" ({', '.join(question.choices)})"
    while True:
        with warnings.catch_warnings():  # input from a pipe cannot be hidden; fine
            warnings.simplefilter("ignore")
            answer = typer.prompt(label, default=question.default if not optional else "",
                                  hide_input=question.secret, show_default=not optional)
        answer = str(answer).strip()
        if not answer and question.required and question.default is None:
            typer.echo(f"{question.title} is required.", err=True)  # blanks: asked again
            continue
        if question.choices and answer and answer not in question.choices:
            typer.echo(f"Choose one of: {', '.join(question.choices)}.", err=True)
            continue
        problem = _problem(settings_type, set_path(data, question.path, answer))
        if answer and problem and problem[0] == question.path:  # asked again at once
            typer.echo(problem[1], err=True)
            continue
        break  # an empty answer to a required question is asked again by the prompt
    return set_path(data, question.path, answer) if answer else data


def _problem(settings_type: Any, data: dict[str, Any]) -> tuple[str, str] | None:
    """(path, what is wrong there) when the settings so far are refused at a field."""
    from im.connector_config import InvalidSettingsError, validate

    try:
        validate(settings_type, data)
    except InvalidSettingsError as error:
        if error.path:
            return error.path, error.problem
    return None
