"""im-jsonl: mirror im incidents into a JSON Lines file, one line per change.

The first line written for an incident's service (action "declare") stands for the remote
incident: its line number is the remote id, and every later line of that incident and
service refers to it as "remote".

im imports this module on every run, `im --help` included, so only `im` and msgspec (which
im loads for every command that touches incidents) are imported here; anything else is
imported where it is used.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

import im
import msgspec

if TYPE_CHECKING:
    from datetime import datetime
    from typing import BinaryIO

# The im plugin SDK this plugin is built for: an im whose SDK has another major version, or an
# older minor one, refuses to load it and says so in one line (`im plugins` shows both).
IM_SDK = "1.0"

# The status an incident has after each action: lines say it, whenever they are written.
STATUS_AFTER = {"ack": "mitigated", "unack": "open", "resolve": "resolved", "close": "closed",
                "reopen": "open"}
# The file's words in im's (im.RemoteStatus), which are all the core reads of a remote state.
REMOTE_STATUS = {"open": im.RemoteStatus.OPEN, "mitigated": im.RemoteStatus.ACKNOWLEDGED,
                 "resolved": im.RemoteStatus.RESOLVED, "closed": im.RemoteStatus.RESOLVED}


class JsonlSettings(im.ConnectorSettings, frozen=True, kw_only=True):
    # `im connector add jsonl NAME` asks for the fields marked with im.prompt, in order.
    path: Annotated[str, im.prompt(1, "JSONL file")]
    fsync: bool = False
    # A file never changes incidents: only outbound makes sense, so it is not asked.
    sync_direction: im.SyncDirection = im.SyncDirection.OUTBOUND

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sync_direction is not im.SyncDirection.OUTBOUND:
            raise ValueError("a jsonl connector only writes; use outbound"
                             " - at `$.sync_direction`")


class JsonlConnector(im.Connector):
    type = "jsonl"
    Settings = JsonlSettings
    description = "Mirrors incidents into a JSON Lines file, one line per change"
    options: ClassVar[dict[str, str]] = {"path": "path", "fsync": "fsync"}
    settings: JsonlSettings

    @property
    def file(self) -> Path:
        """The file; a relative path is taken from IM_HOME, wherever im runs."""
        return self.runtime.home / Path(self.settings.path).expanduser()

    # -- outbound: one outbox row at a time --------------------------------------------------

    def push(self, request: im.PushRequest) -> im.PushResult:
        incident, service = request.incident, request.service
        entry: dict[str, Any] = {"incident": incident.id, "service": service,
                                 "action": request.action}
        if request.action == "declare":
            entry.update(status="open", severity=incident.severity.value,
                         title=incident.title, key=request.idempotency_key)
            number, new = self._append(entry, key=request.idempotency_key)
            said = "" if new else ", written by an earlier attempt"
            return im.PushResult(
                link=im.RemoteRef(remote_id=str(number), remote_number=str(number),
                                  remote_status=im.RemoteStatus.OPEN),
                timeline=[f"Line {number} of {self.settings.path}: declare ({service}){said}"])
        if request.link is None:
            # An incident's rows come in order, so its declare failed for good (or it was
            # declared before this connector was added): retrying cannot help.
            raise im.ConnectorError(f"{incident.id} has no declare line for {service} in"
                                    f" {self.settings.path}")
        entry["remote"] = int(request.link.remote_id)
        status = STATUS_AFTER.get(request.action)
        if status:
            entry["status"] = status
        # The payload: {"note": ...} for transitions and notes, {"assignee": ...}, ...
        entry.update({key: value for key, value in request.payload.items() if value})
        # A retry (after a crash) finds the line an earlier attempt wrote: the incident's
        # changes come in order, so it is the last line of that incident and service.
        since = request.queued_at if request.attempt > 1 else None
        number, new = self._append(entry, written_since=since)
        said = "" if new else ", written by an earlier attempt"
        return im.PushResult(
            link=im.RemoteRef(remote_id=request.link.remote_id,
                              remote_status=REMOTE_STATUS.get(status or "")),
            timeline=[f"Line {number} of {self.settings.path}: {request.action}"
                      f" ({service}){said}"])

    def _append(self, entry: dict[str, Any], *, key: str | None = None,
                written_since: datetime | None = None) -> tuple[int, bool]:
        """Append `entry` as the next line: (its number, True). With `key`, when a line
        already carries that key: (that line's number, False), and nothing is written; so too
        with `written_since` when the last line of the entry's incident and service is the
        same entry, written since then."""
        import fcntl  # POSIX only: imported here so that importing the plugin never fails

        try:
            with self.file.open("a+b") as handle:
                # im serve and the CLI may write at the same time: number lines under a lock.
                fcntl.flock(handle, fcntl.LOCK_EX)
                lines = self._lines(handle)
                if key is not None:
                    # Lines are written compactly by this code, so the bytes are enough.
                    needle = b'"key":' + msgspec.json.encode(key)
                    for number, raw in enumerate(lines, 1):
                        if needle in raw:
                            return number, False
                if written_since is not None:
                    found = self._last_of(lines, entry)
                    since = f"{written_since:%Y-%m-%dT%H:%M:%SZ}"  # as lines say times
                    if found is not None and found[1]["at"] >= since:
                        return found[0], False
                number = len(lines) + 1
                now = self.runtime.clock()
                line = {"line": number, "at": f"{now:%Y-%m-%dT%H:%M:%SZ}", **entry}
                handle.write(msgspec.json.encode(line) + b"\n")
                handle.flush()
                if self.settings.fsync:
                    os.fsync(handle.fileno())
                return number, True
        except OSError as error:
            # A missing folder or a full disk can be fixed without losing the change:
            # the core keeps the row queued and tries again with backoff.
            raise im.ConnectorError(f"cannot write {self.file}: {error.strerror}",
                                    retryable=True) from error

    @staticmethod
    def _last_of(lines: list[bytes], entry: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        """The last line of `entry`'s incident and service, if it says what `entry` says:
        (its number, the line)."""
        for number in range(len(lines), 0, -1):
            try:
                line = msgspec.json.decode(lines[number - 1])
            except msgspec.DecodeError:
                continue
            if (line.get("incident"), line.get("service")) == (entry["incident"],
                                                               entry["service"]):
                said = {k: v for k, v in line.items() if k not in ("line", "at")}
                return (number, line) if said == entry else None
        return None

    @staticmethod
    def _lines(handle: BinaryIO) -> list[bytes]:
        handle.seek(0)
        return handle.read().splitlines()

    def read(self) -> list[bytes]:
        """Every line of the file, as written (none when it does not exist yet)."""
        try:
            with self.file.open("rb") as handle:
                return self._lines(handle)
        except FileNotFoundError:
            return []

    # -- `im connector test NAME` -----------------------------------------------------------

    def test(self, request: im.CheckRequest) -> list[im.Check]:
        import tempfile

        folder = self.file.parent
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as error:
            return [im.Check(name="folder", label="Folder", ok=False,
                             detail=f"Cannot write to {folder}: {error.strerror}",
                             fix=f"create {folder} and let the user running im write to it")]
        checks = [im.Check(name="folder", label="Folder", ok=True,
                           detail=f"Can write to {folder}")]
        lines = self.read()
        for number, raw in enumerate(lines, 1):
            try:
                msgspec.json.decode(raw)
            except msgspec.DecodeError:
                return [*checks, im.Check(
                    name="file", label="File", ok=False,
                    detail=f"Line {number} of {self.settings.path} is not JSON",
                    fix="repair or remove that line")]
        detail = (f"{self.settings.path} has {len(lines)} line(s)" if self.file.exists()
                  else f"{self.settings.path} will be created by the first change")
        return [*checks, im.Check(name="file", label="File", ok=True, detail=detail)]


def describe(raw: bytes) -> str:
    """One line of the file, as `im jsonl tail` prints it."""
    try:
        entry = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return raw.decode(errors="replace")
    text = f"{entry['line']:>4}  {entry['at']}  {entry['incident']} [{entry['service']}]" \
           f" {entry['action']}"
    if "status" in entry:
        text += f" -> {entry['status']}"
    details = entry.get("note") or entry.get("title")
    return f"{text}: {details}" if details else text


# -- hooks -----------------------------------------------------------------------------------


@im.hookimpl
def register_connectors(register: Any) -> None:
    register(JsonlConnector)


@im.hookimpl
def register_commands(cli: Any, runtime: im.Runtime) -> None:
    import typer

    app = typer.Typer(help="Tools for jsonl connectors.", no_args_is_help=True,
                      rich_markup_mode=None)

    @app.command()
    def tail(name: str = typer.Argument(..., help="The jsonl connector."),
             lines: int = typer.Option(10, "--lines", "-n", min=1, help="How many lines.")
             ) -> None:
        """Print the last lines a jsonl connector wrote."""
        connector = runtime.connector(name)
        if not isinstance(connector, JsonlConnector):
            raise im.InvalidInputError(f"{name} is a {connector.type} connector, not jsonl")
        for raw in connector.read()[-lines:]:
            typer.echo(describe(raw))

    cli.add_typer(app, name="jsonl")
