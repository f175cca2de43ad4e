"""The application layer: one function per user operation, every rule enforced here.

The CLI, the HTTP API and plugins' front ends (chat buttons and commands) call these functions
with plain arguments and an actor, and only format what they return: a rule that lives here is
a rule every front end keeps, so none can skip one (only the CLI asked linked systems whether
an assignee exists, for one, while the rule lived in the command).

    from im.app import incidents
    from im.models import Origin

    incident = incidents.ack(runtime, "INC-12", note="on it", actor=Origin(actor="alice"))

- `im.app.incidents`: declare, ack, resolve, close, reopen, note, assign, severity; list, show,
  timeline; delivering what a change queued, for front ends that wait for it.
- `im.app.sla`: the targets in force and what set them, running timers, breach checks.
- `im.app.reports`: a report of a period, rendered in one of its formats.
- `im.app.connectors`: connector add, update, remove, show, test, status, health and metrics;
  webhook set-up and checks; sync with its summary; preview and replay.
- `im.app.oncall`: who is on call for a service, asked of the connectors that keep schedules.
- `im.app.tokens`: the HTTP API's tokens: create, list, rotate, revoke.
- `im.app.logs`: the log lines `im serve` and the CLI recorded, filtered.
- `im.app.database`: the database's size by table, and what is kept how long.

Operations that wait on a remote system take a deadline and `busy` (`im.app.busy.Busy`), which
a front end shows the wait with.

The actor is an `im.models.Origin`: who acts (`actor`) and in which system (`system`: "im"
for im's own front ends; a connector's name for what that connector applies, and for a
plugin's front end that takes requests from that connector's remote system, such as a chat's
buttons: the change then goes to every other connector, and back to that one only where its
class asks for its own changes, `Connector.receives_own_changes`). Results are msgspec Structs
(or the core's own, such as `Incident`); errors are `im.errors.ImError`s, whose message is the
one line a front end shows and whose `http_status` is the answer the HTTP API gives.

The modules load on first use, as everything a command needs does: `import im.app` costs
nothing, so building the command line never loads msgspec or the store.
"""
