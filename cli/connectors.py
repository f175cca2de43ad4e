"""`im connector ...`: configure connectors of any type and run their generic operations."""


import json
import re
import sys
import warnings
from pathlib import Path
from typing import Any

import typer

from im.errors import ImError, InvalidInputError, NotFoundError
from im.humanize import printable  # remote systems' words reach the terminal without controls
from im.runtime import Runtime

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
EXTRA_ARGS = {"allow_extra_args": True, "ignore_unknown_options": True}


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


def _options_command(runtime: Runtime) -> type:
    """The Click command class of `update` and `config`: its help lists, for each installed
    connector type, the options it takes and the setting each sets (they are not Click options:
    a connector type's options are known only once its name is read)."""
    from typer.core import TyperCommand

    class ConnectorOptionsCommand(TyperCommand):
        def format_epilog(self, ctx: Any, formatter: Any) -> None:
            from im.connector_config import option_rows

            for type_name, cls in sorted(runtime.connector_types.items()):
                with formatter.section(f"Options of {type_name} connectors"):
                    formatter.write_dl(option_rows(cls.Settings, cls.options))
            super().format_epilog(ctx, formatter)

    return ConnectorOptionsCommand


def make_app(runtime: Runtime) -> typer.Typer:
    app = typer.Typer(help="Configure connectors and keep incidents in step with them.",
                      no_args_is_help=True, rich_markup_mode=None)

    def _record(name: str):  # type: ignore[no-untyped-def]
        record = runtime.store.get_connector(name)
        if record is None:
            names = ", ".join(r.name for r in runtime.store.list_connectors()) or "none"
            raise NotFoundError(f"no connector named {name!r} (configured: {names})")
        return record

    def _save(name: str, type_name: str, data: dict[str, Any], created_at: Any = None,
              before: dict[str, Any] | None = None) -> None:
        from im.connector_config import validate
        from im.models import ConnectorRecord
        from im.sla import TargetOrderError, sourced_policy

        cls = runtime.connector_type(type_name)
        _refuse_shared_account(cls(name, validate(cls.Settings, data), runtime), before)
        if before is not None:  # an update: what the remote system must know, checked last
            _check_remotely(name, type_name, before, data)
        now = runtime.clock()
        with runtime.store.transaction():
            runtime.store.save_connector(ConnectorRecord(
                name=name, type=type_name, settings=data, created_at=created_at or now,
                updated_at=now,
            ))
            # SLA targets from two places (this connector, the defaults) must agree too:
            # an ack target longer than the resolve target rolls the change back
            if _sets_sla_targets(name, type_name, data):
                try:
                    sourced_policy(runtime, strict=True)
                except TargetOrderError as error:
                    raise InvalidInputError(f"invalid settings: {error}") from None
                except ImError:
                    pass  # said by every command that reads the targets

    def _sets_sla_targets(name: str, type_name: str, data: dict[str, Any]) -> bool:
        from im.connectors import Connector, SlaPolicyRequest

        try:
            connector = runtime.build_connector(name, type_name, data, debug_overrides=False)
        except ImError:
            return False  # such as an env: secret not set here
        if type(connector).sla_policy is Connector.sla_policy:
            return False
        return bool(connector.sla_policy(SlaPolicyRequest()))

    def _refuse_shared_account(connector: Any, before: dict[str, Any] | None) -> None:
        """Two connectors of one remote account, either of them pulling, would duplicate
        incidents (in im, or back in the remote): refused, with the reason. An update of a
        connector that shared its account already (made before this rule) is not refused:
        it may be the step that ends the sharing."""
        from im.connector_config import validate

        account = connector.remote_account()
        if account is None:
            return
        previous = None
        if before is not None:
            try:
                previous = type(connector)(connector.name, validate(connector.Settings, before),
                                           runtime)
            except ImError:
                pass
        for record in runtime.store.list_connectors():
            other_type = runtime.connector_types.get(record.type)
            if record.name == connector.name or other_type is None:
                continue
            try:
                other = other_type(record.name, validate(other_type.Settings, record.settings),
                                   runtime)
            except ImError:
                continue
            reason = _sharing(connector, other)
            if reason is None or (previous is not None and _sharing(previous, other)):
                continue
            raise InvalidInputError(
                f"{other.name} already syncs {account.label}: {reason}; keep one connector"
                f" per account (change {other.name}: im connector update {other.name}), or"
                " make both outbound")

    @app.command()
    def add(
        type_name: str = typer.Argument(..., metavar="TYPE", help="Connector type (installed plugins provide them)."),
        name: str = typer.Argument(..., help="A name for this connector, e.g. prod-paging."),
        config: str = typer.Option(None, "--config", help="Settings as JSON (no prompts);"
                                   " `-` reads them from standard input, @FILE from a file"
                                   " (a key on the command line shows in the process list)."),
    ) -> None:
        """Add a connector, asking for its settings (or taking them as --config JSON). One
        that pulls gets its remote's webhooks set up when im's public URL is known."""
        from im.connector_config import prompts, set_path

        cls = runtime.connector_type(type_name)
        if not NAME.match(name):
            raise InvalidInputError(f"invalid connector name {name!r}: use lower-case letters,"
                                    " digits, '-' or '_'")
        if runtime.store.get_connector(name) is not None:
            raise InvalidInputError(f"connector {name} exists already; change it with"
                                    f" `im connector update {name}`")
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
                    break  # not an answer's fault: _save says what is wrong
                typer.echo(problem[1], err=True)
                data = _ask(data, at, set_path, cls.Settings)
        _save(name, type_name, data)
        direction = data.get("sync_direction", "outbound")
        typer.echo(f"Added connector {name} ({type_name}, {direction})")
        _set_up_webhook(name)
        typer.echo(f"Check it with: im connector test {name}")

    def _wants_webhooks(name: str) -> bool:
        """Whether the connector pulls and takes webhooks it sets up itself (from its stored
        settings alone: nothing is resolved or read for a connector that does not)."""
        from im.connector_config import validate

        record = _record(name)
        cls = runtime.connector_type(record.type)
        try:
            connector = cls(name, validate(cls.Settings, record.settings), runtime)
        except ImError:
            return False
        return connector.wants_webhooks and connector.subscribes_webhooks

    def _set_up_webhook(name: str) -> None:
        """After `add`, or an `update` that turned webhooks or pulling on: a connector that
        pulls and sets up its remote's webhooks itself gets them now when im's public URL is
        known, and is told the command to run when it is not. The settings are saved already:
        a remote that fails here only leaves the webhooks for later."""
        from im.connectors import WebhookSetupRequest
        from im.errors import ConnectorError

        if not _wants_webhooks(name):
            return
        try:
            connector = runtime.connector(name)
        except ImError as error:  # an env: key not set in this shell, say
            typer.echo(f"! Webhooks not set up: {error}; run: im connector webhook {name}"
                       " --enable")
            return
        try:
            base = runtime.public_url_for(name)
            endpoint = _webhook_url(base, name) if base else ""
        except InvalidInputError as error:  # a malformed IM_PUBLIC_URL, say
            typer.echo(f"! Webhooks not set up: {error}")
            return
        if not base:
            typer.echo(f"Webhooks: not set up yet (im's public URL is not known); run: im"
                       f" connector webhook {name} --enable --url https://YOUR-DOMAIN")
            return
        from im.cli import waiting

        try:
            with waiting.spinner(f"Setting up {name}'s webhooks"):
                result = connector.webhook_subscribe(WebhookSetupRequest(url=endpoint))
        except ConnectorError as error:
            typer.echo(f"! Webhooks not set up: {error}; polling covers meanwhile; run: im"
                       f" connector webhook {name} --enable")
            return
        runtime.remember_public_url(name, base)
        for line in result.lines:
            typer.echo(printable(line))
        typer.echo(f"Webhook URL will be: {endpoint}")

    def _tear_down_webhook(name: str) -> None:
        """After an `update` that turned webhooks off: the subscriptions the connector made
        are removed (the settings are saved already; a remote that fails leaves them for
        `webhook --disable`)."""
        from im.connectors import Connector, WebhookSetupRequest

        cls = runtime.connector_type(_record(name).type)
        if cls.webhook_unsubscribe is Connector.webhook_unsubscribe:
            return
        try:
            result = runtime.connector(name).webhook_unsubscribe(WebhookSetupRequest(url=""))
        except ImError as error:  # the remote failed, or an env: key is not set here
            typer.echo(f"! Webhook subscriptions not removed: {error}; run: im connector"
                       f" webhook {name} --disable")
            return
        for line in result.lines:
            typer.echo(printable(line))

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

    @app.command("list")
    def list_(json_output: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """List configured connectors with their status and last sync."""
        from im.cli.output import ago, print_json, table

        now = runtime.clock()
        rows = []
        for record in runtime.store.list_connectors():
            last = runtime.store.last_sync(record.name)
            rows.append({
                "name": record.name, "type": record.type,
                "status": "active" if record.enabled else "disabled",
                "direction": record.settings.get("sync_direction", "outbound"),
                "last_sync": last,
            })
        if json_output:
            print_json(rows)
            return
        if not rows:
            typer.echo("No connectors. Add one with: im connector add TYPE NAME")
            return
        typer.echo(table(["Name", "Type", "Status", "Direction", "Last Sync"],
                         [[r["name"], r["type"], r["status"], r["direction"],
                           ago(r["last_sync"], now)] for r in rows]))

    @app.command()
    def show(name: str = typer.Argument(..., help="The connector."),
             json_output: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """Show a connector's settings (secrets redacted)."""
        from im.cli.output import print_json
        from im.connector_config import redact

        record = _record(name)
        settings = redact(runtime.connector_type(record.type).Settings, record.settings)
        if json_output:
            print_json({"name": record.name, "type": record.type, "enabled": record.enabled,
                        "settings": settings})
            return
        typer.echo(f"Connector: {record.name} ({record.type})")
        typer.echo(json.dumps(settings, indent=2, sort_keys=True))

    @app.command()
    def remove(name: str = typer.Argument(..., help="The connector."),
               yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask.")) -> None:
        """Remove a connector, and the webhook subscriptions it made in its remote system. Links
        stay on the incidents' history; queued changes are dropped."""
        from im.connectors import Connector, WebhookSetupRequest

        record = _record(name)
        queued = len(runtime.store.outbox(connector=name, statuses=("pending", "delivering")))
        if not yes:
            warning = f" {queued} queued change(s) will not be delivered." if queued else ""
            typer.confirm(f"Remove connector {name}?{warning}", abort=True)
        cls = runtime.connector_type(record.type)
        if (cls.webhook_unsubscribe is not Connector.webhook_unsubscribe
                and record.settings.get("enable_webhook", True) is not False):
            # its subscriptions would go on delivering to a route that answers 404
            try:
                result = runtime.connector(name).webhook_unsubscribe(WebhookSetupRequest(url=""))
            except ImError as error:
                typer.echo(printable(f"! Its webhook subscriptions were not removed: {error};"
                                     f" delete them in {record.type}"), err=True)
            else:
                for line in result.lines:
                    typer.echo(printable(line))
        runtime.store.delete_connector(name)
        typer.echo(f"Removed connector {name}")

    def _update(ctx: typer.Context, name: str, sets: list[str], config: str | None) -> None:
        from im.connector_config import redact, set_path

        record = _record(name)
        cls = runtime.connector_type(record.type)
        data = dict(record.settings)
        changed: list[str] = []
        if config is not None:
            merge = _parse_json(_config_text(config), "--config")
            if not isinstance(merge, dict):
                raise InvalidInputError("--config must be a JSON object")
            data = _deep_merge(data, merge)
            changed += sorted(merge)
        for item in sets:
            path, sep, raw = item.partition("=")
            if not sep or not path:
                raise InvalidInputError(f"--set takes PATH=VALUE, not {item!r}")
            data = set_path(data, path, _coerce(cls.Settings, path, raw))
            changed.append(path)
        for option, path, raw in _option_values(list(ctx.args), dict(cls.options)):
            try:
                value = _coerce(cls.Settings, path, raw)
            except ImError as error:
                raise InvalidInputError(f"{option}: {error}") from None
            data = set_path(data, path, value)
            changed.append(path)
        if not changed:
            known = ", ".join(f"--{o}" for o in sorted(cls.options))
            raise InvalidInputError(f"nothing to change; give {known + ', ' if known else ''}"
                                    "--set PATH=VALUE or --config JSON")
        # webhooks, or pulling, turned on: set them up as `add` does
        turned_on = bool({"enable_webhook", "sync_direction"} & set(changed)) and not (
            _wants_webhooks(name))
        # webhooks turned off: the remote stops sending them, as with `webhook --disable`
        turned_off = "enable_webhook" in changed and data.get("enable_webhook") is False and (
            record.settings.get("enable_webhook", True) is not False)
        _save(name, record.type, data, record.created_at, before=record.settings)
        safe = redact(cls.Settings, data)
        from im.connector_config import get_path

        for path in changed:
            typer.echo(f"Updated {name}: {path} = {json.dumps(get_path(safe, path))}")
        if turned_on:
            _set_up_webhook(name)
        elif turned_off:
            _tear_down_webhook(name)

    def _check_remotely(name: str, type_name: str, before: dict[str, Any],
                        after: dict[str, Any]) -> None:
        """Let the connector refuse a changed setting its remote system does not know (a
        service id, say), before the change is saved."""
        from im.connector_config import changed_paths, validate
        from im.connectors import SettingsCheckRequest

        cls = runtime.connector_type(type_name)
        validate(cls.Settings, after)  # the struct's own checks first
        changed = changed_paths(cls.Settings, before, after)
        if not changed:
            return
        try:
            connector = runtime.build_connector(name, type_name, after,
                                                debug_overrides=False)
        except ImError:
            return  # such as an env: secret not set here: nothing to check with
        from im.cli import waiting

        with waiting.spinner(f"Checking the change with {name}"):
            result = connector.check_settings(SettingsCheckRequest(changed=changed))
        for warning in result.warnings:
            typer.echo(f"Warning: {warning}", err=True)

    option_help = ("The connector's options are listed below; any setting can be given with --set"
                   " PATH=VALUE. A secret given as `-` is read from standard input, as @FILE"
                   " from a file: a value on the command line can be read by other users of the"
                   " machine (in the process list) while the command runs.")
    options_command = _options_command(runtime)

    @app.command(context_settings=EXTRA_ARGS, cls=options_command,
                 help=f"Change a connector's settings. {option_help}")
    def update(ctx: typer.Context, name: str = typer.Argument(..., help="The connector."),
               set_: list[str] = typer.Option([], "--set", help="PATH=VALUE, e.g."
                                              " custom.service_id=PXXXXXX."),
               config: str = typer.Option(None, "--config", help="JSON to merge in.")) -> None:
        _update(ctx, name, set_, config)

    @app.command(context_settings=EXTRA_ARGS, cls=options_command,
                 help=f"Configure a connector (same as update). {option_help}")
    def config(ctx: typer.Context, name: str = typer.Argument(..., help="The connector."),
               set_: list[str] = typer.Option([], "--set", help="PATH=VALUE."),
               config_json: str = typer.Option(None, "--config", help="JSON to merge in."),
               ) -> None:
        _update(ctx, name, set_, config_json)

    @app.command()
    def test(name: str = typer.Argument(..., help="The connector."),
             json_output: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """Check that a connector can reach and use its remote system."""
        from im.cli import waiting
        from im.connectors import CheckRequest

        connector = runtime.connector(name)
        public_url = runtime.public_url_for(name)
        problem = None
        with waiting.spinner(f"Checking {name}"):
            checks = connector.test(CheckRequest(public_url=public_url,
                                                 deadline=waiting.deadline()))
            if public_url and connector.wants_webhooks:
                problem = _serve_unreachable(public_url)
        ok = all(check.ok for check in checks)
        if json_output:
            from im.cli.output import print_json

            print_json({"connector": name, "ok": ok, "checks": checks,
                        "warnings": [problem] if problem else []})
            if not ok:
                raise typer.Exit(1)
            return
        from im.cli.output import mark

        for check in checks:
            typer.echo(f"{mark('✓') if check.ok else mark('✗')} {printable(check.detail)}")
            if not check.ok and check.fix:
                typer.echo(printable(f"  Fix: {check.fix}"))
        if problem:  # a warning: the public URL may not loop back from this machine
            typer.echo(f"{mark('!')} {problem}")
        if not ok:
            raise typer.Exit(1)

    @app.command()
    def sync(name: str = typer.Argument(..., help="The connector."),
             incident: str = typer.Option(None, "--incident", "-i",
                                          help="Only this incident, e.g. INC-12."),
             retry_failed: bool = typer.Option(False, "--retry-failed",
                                               help="Also try again the changes that failed"
                                                    " for good (after fixing the cause)."),
             json_output: bool = typer.Option(False, "--json", help="Print JSON.")
             ) -> None:
        """Deliver queued changes now (without waiting for backoff), then reconcile: for
        bidirectional and inbound connectors, apply what changed remotely."""
        import time

        from im.cli import waiting
        from im.errors import ConnectorError
        from im.inbound import poll
        from im.incidents import get
        from im.sync import deliver_outbox

        record = _record(name)
        incident_id = get(runtime, incident).id if incident else None
        if json_output:
            _sync_json(record.name, incident_id, retry_failed)
            return
        if retry_failed:
            count = runtime.store.requeue_failed_outbox(connector=record.name,
                                                        incident_id=incident_id,
                                                        at=runtime.clock())
            typer.echo(f"{name}: {count} failed change(s) queued again")
        pending = runtime.store.outbox(connector=record.name, incident_id=incident_id,
                                       statuses=("pending", "delivering"))

        # one deadline for the whole command: delivering, then reconciling
        until = waiting.deadline()
        try:
            with waiting.spinner(f"Delivering to {name}", total=len(pending)) as step:
                report = deliver_outbox(runtime, connector=record.name,
                                        incident_id=incident_id, due_only=False,
                                        budget=until - time.monotonic(),
                                        progress=lambda _row: step())
        except KeyboardInterrupt:
            waiting.interrupted(runtime.store.outbox(
                connector=record.name, incident_id=incident_id,
                statuses=("pending", "delivering")))
        typer.echo(f"{name}: {report.delivered} delivered, {report.retrying} queued for retry,"
                   f" {report.failed} failed")
        for error in report.errors:
            typer.echo(printable(f"  ! {error}"), err=True)
        if report.failed:
            typer.echo(f"  {report.failed} change(s) refused for good and set aside; the"
                       f" changes stay in im. Fix the cause, then `im connector sync {name}"
                       " --retry-failed` sends them again", err=True)
        not_done = _still_waiting(runtime, record.name, incident_id, report.tried)
        try:
            with waiting.spinner(f"Reconciling with {name}"):
                outcomes = poll(runtime, record.name, incident_id=incident_id, deadline=until)
        except ConnectorError as error:
            typer.echo(f"  ! reconciling failed: {error}", err=True)
            outcomes = None
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
        if report.retrying or not_done or outcomes is None:
            raise typer.Exit(1)

    def _sync_json(name: str, incident_id: str | None, retry_failed: bool) -> None:
        """`connector sync --json`: what was queued again, what delivery did (the counts
        and errors), what reconciling applied (by outcome), and its error; exit 1 as the
        text output does."""
        import time

        import msgspec

        from im.cli import EXIT_REFUSED, waiting
        from im.cli.output import print_json
        from im.errors import ConnectorError
        from im.inbound import poll
        from im.sync import deliver_outbox

        requeued = None
        if retry_failed:
            requeued = runtime.store.requeue_failed_outbox(
                connector=name, incident_id=incident_id, at=runtime.clock())
        until = waiting.deadline()  # one deadline for delivering and reconciling, as in text
        try:
            with waiting.spinner(f"Delivering to {name}"):
                report = deliver_outbox(runtime, connector=name, incident_id=incident_id,
                                        due_only=False, budget=until - time.monotonic())
        except KeyboardInterrupt:
            waiting.interrupted(runtime.store.outbox(
                connector=name, incident_id=incident_id, statuses=("pending", "delivering")))
        reconciled, error = None, None
        try:
            with waiting.spinner(f"Reconciling with {name}"):
                reconciled = poll(runtime, name, incident_id=incident_id, deadline=until)
        except ConnectorError as problem:
            error = f"reconciling failed: {problem}"
        delivery = msgspec.structs.asdict(report)
        waiting_rows = _waiting_after_sync(runtime, name, incident_id, delivery.pop("tried"))
        delivery.update({kind: [{"incident": row.incident_id, "action": row.action,
                                 "service": row.service, "lease_until": row.lease_until
                                 if kind == "held" else None} for row in rows]
                         for kind, rows in waiting_rows.items()})
        print_json({"connector": name, "incident": incident_id, "requeued": requeued,
                    "delivery": delivery, "reconciled": reconciled, "error": error})
        if report.failed:
            raise typer.Exit(EXIT_REFUSED)
        if error or report.retrying or waiting_rows["behind_retry"] or waiting_rows["not_tried"]:
            raise typer.Exit(1)

    @app.command()
    def preview(name: str = typer.Argument(..., help="The connector."),
                incident: str = typer.Option(..., "--incident", "-i",
                                             help="The incident, e.g. INC-12.")) -> None:
        """Show what the connector sends to create an incident, per service (no remote call):
        a way to check mappings."""
        from im.cli.output import print_json
        from im.connectors import MapOutboundRequest
        from im.incidents import get

        connector = runtime.connector(name)
        found = get(runtime, incident)
        print_json({service: connector.map_outbound(MapOutboundRequest(incident=found,
                                                                       service=service))
                    for service in found.services})

    @app.command()
    def webhook(
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
        from im.connectors import WebhookSetupRequest, WebhookTestRequest

        if enable + disable + test != 1:
            raise InvalidInputError("give one of --enable, --disable or --test")
        connector = runtime.connector(name)
        base = url or runtime.public_url_for(name)
        if not base and not disable:  # removing needs no URL
            mode = "--enable" if enable else "--test"
            raise InvalidInputError(
                f"im's public URL is not known; run: im connector webhook {name} {mode} --url"
                " https://YOUR-DOMAIN (where `im serve` is reached), or set"
                " IM_PUBLIC_URL=https://YOUR-DOMAIN")
        endpoint = _webhook_url(base, name) if base else ""
        if enable:
            from im.cli import waiting

            with waiting.spinner(f"Setting up {name}'s webhooks"):
                result = connector.webhook_subscribe(WebhookSetupRequest(url=endpoint))
            assert base is not None
            runtime.remember_public_url(name, base)
            for line in result.lines:
                typer.echo(printable(line))
            typer.echo(f"Webhook URL will be: {endpoint}")
            if not connector.settings.sync_direction.pulls:
                typer.echo(f"! {name} is {connector.settings.sync_direction.value}: it ignores"
                           " the events webhooks bring until its direction changes; run: im"
                           f" connector update {name} {_direction_option(connector)}"
                           "bidirectional")
        elif disable:
            for line in connector.webhook_unsubscribe(WebhookSetupRequest(url=endpoint)).lines:
                typer.echo(printable(line))
        else:
            ok = _test_webhook(runtime, connector, WebhookTestRequest(url=endpoint))
            if not ok:
                raise typer.Exit(1)

    @app.command()
    def replay(
        name: str = typer.Argument(..., help="The connector."),
        event: list[int] = typer.Option([], "--id", help="Only this stored event (repeatable)."),
    ) -> None:
        """Process quarantined events again (after an upgrade or a settings fix)."""
        from im.inbound import replay as replay_events

        _record(name)
        waiting = runtime.store.inbox(connector=name, statuses=("quarantined",))
        if not waiting:
            typer.echo(f"{name}: no quarantined events")
            return
        unknown = sorted(set(event) - {row.id for row in waiting})
        if unknown:
            raise InvalidInputError(
                f"no quarantined event {', '.join(f'#{n}' for n in unknown)} for {name};"
                f" quarantined: {', '.join(f'#{row.id}' for row in waiting)}")
        report = replay_events(runtime, name, event or None)
        typer.echo(f"{name}: {report.processed} processed, {report.quarantined} still"
                   " quarantined")
        for row in runtime.store.inbox(connector=name, statuses=("quarantined",)):
            if not event or row.id in event:
                typer.echo(f"  #{row.id} {row.event_type} {row.delivery_id}: {row.error}")

    return app


def _sharing(connector: Any, other: Any) -> str | None:
    """Why two connectors of one remote account would duplicate incidents, or None (another
    account, or neither of them pulls)."""
    mine, theirs = connector.remote_account(), other.remote_account()
    if mine is None or theirs is None or mine.key != theirs.key:
        return None
    pulls, their_pulls = (connector.settings.sync_direction.pulls,
                          other.settings.sync_direction.pulls)
    if pulls and their_pulls:
        return "both would pull its incidents, and each would become two im incidents"
    if their_pulls:
        return (f"{other.name} pulls its incidents in, and {connector.name} would create each"
                " of them there again")
    if pulls:
        return (f"{connector.name} would pull its incidents in, and {other.name} would create"
                " each of them there again")
    return None


def _direction_option(connector: Any) -> str:
    """How `im connector update` sets this connector's sync direction (with its space)."""
    option = next((o for o, path in connector.options.items() if path == "sync_direction"),
                  None)
    return f"--{option} " if option else "--set sync_direction="


def _waiting_after_sync(runtime: Runtime, name: str, incident_id: str | None,
                        tried: list[int]) -> dict[str, list[Any]]:
    """After a sync's deliveries, why the changes still waiting (those `im connector status`
    counts as queued) were not delivered, beyond the ones it queued for retry: `held` by
    another process (until their lease ends), waiting in order `behind_held` or
    `behind_retry`, `not_tried` for lack of time; and those `set_aside` earlier (failed)."""
    now = runtime.clock()
    rows = runtime.store.outbox(connector=name, incident_id=incident_id,
                                statuses=("pending", "delivering"))
    held = [row for row in rows if row.status == "delivering" and row.lease_until is not None
            and row.lease_until > now]
    held_ids = {row.id for row in held}
    tried_ids = set(tried)
    found: dict[str, list[Any]] = {"held": held, "behind_held": [], "behind_retry": [],
                                   "not_tried": []}
    held_for, tried_for = set(), set()  # incidents with a held / a tried row so far
    for row in rows:  # in queue order
        if row.id in held_ids:
            held_for.add(row.incident_id)
        elif row.id in tried_ids:  # tried here, and counted as queued for retry
            tried_for.add(row.incident_id)
        elif row.incident_id in held_for:
            found["behind_held"].append(row)
        elif row.incident_id in tried_for:
            found["behind_retry"].append(row)
        else:
            found["not_tried"].append(row)
    found["set_aside"] = [row for row in runtime.store.outbox(
        connector=name, incident_id=incident_id, statuses=("failed",)) if row.id not in tried_ids]
    return found


def _still_waiting(runtime: Runtime, name: str, incident_id: str | None,
                   tried: list[int]) -> int:
    """Say what _waiting_after_sync found; returns how many changes this sync should have
    tried but did not."""
    from im.cli.output import when
    from im.cli.waiting import BUDGET, describe

    found = _waiting_after_sync(runtime, name, incident_id, tried)
    held, behind_held = found["held"], found["behind_held"]
    behind_retry, untried, aside = found["behind_retry"], found["not_tried"], found["set_aside"]
    if held:
        until = describe(held, limit=len(held), suffix=lambda group: " until " + when(
            max(row.lease_until for row in group)))
        typer.echo(f"{name}: {len(held)} change(s) held by another process that is delivering"
                   f" them (`im serve` or another command), not tried here: {until}")
    if behind_held:
        typer.echo(f"{name}: {len(behind_held)} change(s) wait behind those, in order:"
                   f" {describe(behind_held)}")
    if behind_retry:
        typer.echo(f"{name}: {len(behind_retry)} change(s) wait behind the ones queued for"
                   f" retry, in order: {describe(behind_retry)}")
    if untried:
        typer.echo(f"{name}: {len(untried)} change(s) not tried: the command's {BUDGET:g} s"
                   f" ran out; `im serve` or another sync delivers them: {describe(untried)}")
    if aside:  # `status` counts them as failed: not silently "0 failed" here
        typer.echo(f"{name}: {len(aside)} change(s) set aside earlier, refused for good:"
                   f" {describe(aside)}; after fixing the cause, `im connector sync {name}"
                   " --retry-failed` sends them again")
    return len(behind_retry) + len(untried)


def _webhook_url(base: str | None, name: str) -> str:
    from urllib.parse import urlsplit

    from im.net import is_http_url, is_loopback

    if not base:
        raise InvalidInputError("im's public URL is not known: give --url https://YOUR-DOMAIN"
                                " or set IM_PUBLIC_URL")
    if not is_http_url(base):
        raise InvalidInputError(f"{base!r} is not a URL; write https://your-domain.com")
    parts = urlsplit(base)
    if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
        raise InvalidInputError("webhook URLs must use https:// (http:// only on loopback)")
    return f"{base.rstrip('/')}/connectors/{name}/webhook"


def _serve_unreachable(public_url: str) -> str | None:
    """A warning when nothing answers at im's public URL (no connection, or none in time);
    None when something does, whatever it says (a proxy, TLS or a redirect in between is
    not for this check to judge)."""
    from urllib.parse import urlsplit

    import httpx

    from im.net import is_loopback

    url = f"{public_url.rstrip('/')}/health"
    # a proxy from the environment is never the way to this machine's own loopback
    direct = is_loopback(urlsplit(url).hostname or "")
    try:
        httpx.get(url, timeout=3, trust_env=not direct)
    except (httpx.ConnectError, httpx.TimeoutException) as error:
        return (f"Nothing answers at {url} ({type(error).__name__}): webhooks fail until"
                " `im serve` runs there (the sender retries for a while; polling catches up)")
    except httpx.HTTPError:
        pass
    return None


def _test_webhook(runtime: Runtime, connector: Any, request: Any) -> bool:
    """Post a signed test event to the real route, then ask the remote for its ping; each
    passes only when the event is found stored in the inbox."""
    import time

    import httpx

    from im.errors import ConnectorError

    def stored(delivery_id: str | None, event_type: str | None, after: int) -> bool:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for row in runtime.store.inbox(connector=connector.name):
                if row.id > after and (row.delivery_id == delivery_id
                                       or row.event_type == event_type):
                    return True
            time.sleep(0.2)
        return False

    last = max((row.id for row in runtime.store.inbox(connector=connector.name)), default=0)
    event = connector.webhook_test_event(request)
    try:
        answer = httpx.post(request.url, content=event.body, headers=event.headers, timeout=10)
    except httpx.HTTPError as error:
        typer.echo(f"✗ Cannot reach {request.url}: {error}")
        typer.echo("  Fix: start `im serve` and check that the URL reaches it")
        return False
    if answer.status_code != 202:
        typer.echo(f"✗ {request.url} answered {answer.status_code}: {answer.text[:200]}")
        return False
    if not stored(event.delivery_id, None, last):
        typer.echo(f"✗ {request.url} accepted the test event but it was not stored here"
                   " (does the URL reach this im's `im serve`?)")
        return False
    typer.echo(f"✓ Signed test event accepted by {request.url} (202) and stored")
    try:
        event_type = connector.webhook_ping(request)
    except ConnectorError as error:
        typer.echo(f"- Remote ping not sent: {error}")
        return True
    if stored(None, event_type, last):
        typer.echo(f"✓ {connector.type} ping received ({event_type})")
        return True
    typer.echo(f"✗ {connector.type} ping not received within 10 s; check that {request.url}"
               " is reachable from the remote system")
    return False


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
