"""`im demo`: the whole product, offline, in about a minute.

It starts the PagerDuty sandbox and `im serve` on free loopback ports, configures a
`demo-pagerduty` connector with the spec's advanced configuration, and walks through the spec's
workflows with real calls: every `./im ...` line it prints is run through the real CLI, and
every PagerDuty action goes through the sandbox's REST API and comes back as a signed webhook.
"""


import json
import os
import shutil
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import typer

NAME = "demo-pagerduty"
API_KEY = "demo-sandbox-key"
SERVICE_MAPPINGS = {"api": "PAPI001", "db": "PDAT001", "database": "PDAT001", "web": "PWEB001",
                    "payments": "PPAY001", "default": "PGEN001"}


SLACK_NAME = "demo-slack"
SLACK_SIGNING_SECRET = "demo-slack-signing-secret"
ONCALL_EMAIL = "john.doe@company.com"  # on call for payments in the sandbox's demo account
MANAGEMENT = ["cto@company.com", "vp-eng@company.com"]


class DemoFailed(Exception):
    pass


def response_plugins() -> bool:
    """Whether the Slack, Teams and e-mail plugins (and the mail server of the e-mail plugin's
    tests) are installed, as `./im` installs them in a clone."""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None
               for name in ("im_slack", "im_teams", "im_email", "aiosmtpd", "trustme"))


def config(base_url: str) -> dict[str, Any]:
    """The spec's advanced configuration, pointed at the sandbox."""
    return {
        "base_url": base_url, "api_key": API_KEY, "sync_direction": "bidirectional",
        "sync_interval": "2m", "enable_webhook": True,
        "custom": {
            "service_id": "PXXXXXX", "from_email": "ops@company.com",
            "escalation_policy_id": "PXXXXXX",
            "urgency_mapping": {"SEV-1": "high", "SEV-2": "high", "SEV-3": "low",
                                "SEV-4": "low"},
            "service_mappings": SERVICE_MAPPINGS,
            "escalation_mappings": {"api": "PAPI_ESCALATION"},
            "sla_mapping": {"SEV-1": {"ack": "15m", "resolve": "1h"},
                            "SEV-2": {"ack": "30m", "resolve": "4h"},
                            "SEV-3": {"ack": "2h", "resolve": "24h"},
                            "SEV-4": {"ack": "8h", "resolve": "72h"}},
            "auto_resolve": True, "sync_notes": True,
        },
    }


class Demo:
    def __init__(self, home: Path, echo: Callable[[str], None]) -> None:
        self.home = home
        self.echo = echo

    def step(self, title: str) -> None:
        self.echo("")
        self.echo(typer.style(f"== {title}", bold=True))

    def im(self, *args: str, shown: str | None = None) -> None:
        """Run `im ARGS` through the real CLI, as a user would type it."""
        from im import run_command

        self.echo(typer.style(f"$ ./im {shown or _quote(args)}", fg="cyan"))
        code = run_command(self.runtime, args)
        if code != 0:
            raise DemoFailed(f"`./im {' '.join(args)}` failed (exit code {code})")

    def wait(self, what: str, condition: Callable[[], Any], timeout: float = 15.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(0.05)
        raise DemoFailed(f"timed out waiting for {what}")

    def run(self, keep_running: bool) -> None:
        from im import Runtime
        from im.testing import serve
        from im_pagerduty.testing import run_sandbox

        started = time.monotonic()
        with ExitStack() as stack:
            self.step("Start a local PagerDuty (the sandbox) and `im serve`")
            pd = stack.enter_context(run_sandbox(api_key=API_KEY, seed="demo"))
            self.echo(f"PagerDuty sandbox listening on {pd.url}")
            self.runtime = Runtime(self.home)
            _log_to(self.runtime)  # `IM_HOME=... im logs` shows what the demo did
            url = stack.enter_context(serve(self.runtime))
            self.echo(f"im serve listening on {url}  (IM_HOME={self.home})")
            self.pd = pd

            self.step("Add the PagerDuty connector (the spec's advanced configuration)")
            # im's public URL known: adding a connector with webhooks sets them up itself
            os.environ["IM_PUBLIC_URL"] = url
            self.echo(typer.style(f"$ export IM_PUBLIC_URL={url}", fg="cyan"))
            self.im("connector", "add", "pagerduty", NAME, "--config",
                    json.dumps(config(pd.url)), shown=f"connector add pagerduty {NAME}"
                    " --config '{...}'")
            self.im("connector", "test", NAME)
            self.im("connector", "webhook", NAME, "--enable")
            self.im("connector", "list-mappings", NAME)

            self.step("Declare incidents: each creates PagerDuty incidents")
            self.im("declare", "--sev", "SEV-2", "--title", "Database performance issue",
                    "--service", "db")
            self.im("declare", "--sev", "SEV-1", "--title", "Database cluster failure",
                    "--service", "database,api,payments")

            self.step("A responder works in PagerDuty: John Doe acknowledges and adds a note")
            self.responder_acknowledges()

            self.step("Acknowledge and resolve from im: PagerDuty follows")
            self.im("ack", "--incident", "INC-1", "--note", "Investigating database locks")
            self.im("resolve", "--incident", "INC-1", "--note",
                    "Database locks cleared after index optimization")
            self.show_pagerduty("INC-1")

            self.step("Coordinate the SEV-1 from im: a status update, then the resolution")
            self.im("note", "--incident", "INC-2", "Replica promoted; error rates falling")
            self.im("resolve", "--incident", "INC-2", "--note",
                    "Cluster healthy again after failover")
            self.show_pagerduty("INC-2")

            self.step("On call, and the connector's health")
            self.im("oncall", "--service", "api")
            self.im("connector", "status", NAME)
            self.im("connector", "health", NAME)
            self.im("metrics", "connector", NAME)
            self.im("sla")

            if response_plugins():
                self.response_workflows(stack, url)
            else:
                self.echo("")
                self.echo("(The Slack, Teams and e-mail plugins are not installed: the spec's"
                          " automated response workflows are left out.)")

            self.step("A unified report")
            today = time.strftime("%Y-%m-%d", time.gmtime())
            report = self.home / "im-report.pdf"
            self.im("report", "--start", today, "--end", today, "--include-pagerduty",
                    "--format", "pdf", "--output", str(report))

            self.step("The unified timeline of the SEV-1, across both platforms")
            self.im("timeline", "INC-2", "--brief")
            if response_plugins():
                self.step("The unified timeline of the payments SEV-1: PagerDuty, Slack,"
                          " Teams, e-mail")
                self.im("timeline", "INC-3", "--brief")
            self.echo("")
            self.echo(f"Demo finished in {time.monotonic() - started:.1f}s.")
            if keep_running:
                self.keep_running(pd.url, url)
            else:
                self.echo("Run `./im demo --keep-running` to keep the servers up and explore.")

    def response_workflows(self, stack: ExitStack, im_url: str) -> None:
        """The spec's automated response workflows: a SEV-1 for payments opens a war room in
        a local Slack with the on-call engineer invited, posts a Teams card and mails
        management; John acknowledges from the Slack button."""
        from im_email.testing import PASSWORD, USER, SmtpServer
        from im_slack.testing import run_sandbox as run_slack
        from im_teams.testing import WorkflowsEndpoint

        self.step("Automated response workflows: a local Slack, a Teams channel, a mail"
                  " server")
        slack = stack.enter_context(run_slack(signing_secret=SLACK_SIGNING_SECRET))
        if not any(u["profile"].get("email") == ONCALL_EMAIL for u in slack.users()):
            slack.add_user("john.doe", "John Doe", ONCALL_EMAIL)
        teams = stack.enter_context(WorkflowsEndpoint())
        smtp = stack.enter_context(SmtpServer(self.home))
        self.slack, self.teams, self.smtp = slack, teams, smtp
        self.echo(f"Slack sandbox listening on {slack.url} (John Doe is {ONCALL_EMAIL} there"
                  " too)")
        self.echo(f"Teams Workflows webhook on {teams.url.split('/workflows')[0]}; mail"
                  f" server (STARTTLS, login) on 127.0.0.1:{smtp.port}")
        os.environ["DEMO_SLACK_TOKEN"] = slack.token
        os.environ["DEMO_SMTP_PASSWORD"] = PASSWORD
        self.echo(typer.style("$ export DEMO_SLACK_TOKEN=... DEMO_SLACK_SIGNING_SECRET=..."
                              " DEMO_SMTP_PASSWORD=...", fg="cyan"))
        os.environ["DEMO_SLACK_SIGNING_SECRET"] = SLACK_SIGNING_SECRET
        self.im("connector", "add", "slack", SLACK_NAME, "--config", json.dumps({
            "api_key": "env:DEMO_SLACK_TOKEN", "base_url": slack.api_url,
            "custom": {"channel": "#incidents", "im_url": im_url,
                       "signing_secret": "env:DEMO_SLACK_SIGNING_SECRET"}}),
            shown=f"connector add slack {SLACK_NAME} --config '{{...}}'")
        self.im("connector", "test", SLACK_NAME)
        self.im("workflow", "defaults")
        teams_settings = {"webhook_url": teams.url, "channel": "#incidents"}
        mail_settings = {"host": "127.0.0.1", "port": smtp.port, "ca_file": str(smtp.ca_file),
                         "username": USER, "password": "env:DEMO_SMTP_PASSWORD",
                         "from": "im@company.com", "to": MANAGEMENT}
        self.im("workflow", "defaults", "--add", "all",
                "--settings", f"teams-notice={json.dumps(teams_settings)}",
                "--settings", f"management-notice={json.dumps(mail_settings)}",
                shown="workflow defaults --add all --settings 'teams-notice={...}'"
                      " --settings 'management-notice={...}'")

        self.step("The spec's example: a SEV-1 for payments")
        self.im("declare", "--sev", "SEV-1", "--title", "Payment API Down", "--service",
                "payments")
        # what the command left (its few seconds up), `im serve` runs
        self.wait("the war room, the Teams card and the mail", lambda: (
            teams.received and smtp.delivered
            and any(c["name"].startswith("inc-3-") and len(c["members"]) > 1
                    for c in slack.channels())), timeout=30.0)
        room = next(c for c in slack.channels() if c["name"].startswith("inc-3-"))
        members = sorted(u["real_name"] for u in slack.users() if u["id"] in
                         slack.channel(room["name"])["members"] and not u.get("is_bot"))
        self.echo(typer.style(f"(Slack) #{room['name']}: topic {room['topic']['value']!r},"
                              f" members {', '.join(members)}", fg="magenta"))
        card = teams.received[-1].json()["attachments"][0]["content"]
        self.echo(typer.style(f"(Teams) a card: {card['body'][0]['text']!r}", fg="magenta"))
        mail = smtp.delivered[-1]
        self.echo(typer.style(f"(Mail) to {', '.join(mail.rcpt_tos)}:"
                              f" {mail.message['Subject']!r}", fg="magenta"))

        self.step("John acknowledges from the Slack button; PagerDuty follows")
        store = self.runtime.store
        [link] = [link for link in store.links("INC-3") if link.connector == SLACK_NAME]
        message_ts = link.remote_id.partition("/")[2]
        self.echo(typer.style("(Slack, as John Doe) clicks Acknowledge on INC-3's message in"
                              " #incidents", fg="magenta"))
        clicked = slack.click(f"{im_url}/slack/{SLACK_NAME}/interactions", "im.ack",
                              value="INC-3", user_id=slack.user_id(ONCALL_EMAIL),
                              message_ts=message_ts)
        if clicked.get("status") != 200:
            raise DemoFailed(f"the Acknowledge button was answered {clicked.get('status')}"
                             f" ({clicked.get('outcome')})")
        [remote] = [link for link in store.links("INC-3") if link.connector == NAME]
        self.wait("INC-3 acknowledged in PagerDuty", lambda: self.pd.client().get(
            f"/incidents/{remote.remote_id}").json()["incident"]["status"] == "acknowledged")
        self.wait("the Slack message to say Mitigated", lambda: any(
            m["ts"] == message_ts and "(Mitigated)" in m["text"]
            for m in slack.channel("incidents")["messages"]))
        answer = self.wait("the answer to John", lambda: slack.responses())[-1]
        self.echo(f"im answered Slack in {clicked['seconds']:.2f}s and told John:"
                  f" {answer['body'].get('text')!r}")
        self.echo(f"INC-3 is {store.get_incident('INC-3').status.value} in im (by"  # type: ignore[union-attr]
                  f" {ONCALL_EMAIL}); PagerDuty #{remote.remote_number} is acknowledged; the"
                  " Slack message says Mitigated")

    def responder_acknowledges(self) -> None:
        store = self.runtime.store
        link = next(l for l in store.links("INC-2") if l.service == "database")
        self.echo(typer.style(
            f"(PagerDuty API, as john.doe@company.com) PUT /incidents/{link.remote_id}"
            " status=acknowledged; POST /incidents/{id}/notes", fg="magenta"))
        with self.pd.client(from_email="john.doe@company.com") as john:
            john.put(f"/incidents/{link.remote_id}", json={"incident": {
                "type": "incident_reference", "status": "acknowledged"}}).raise_for_status()
            john.post(f"/incidents/{link.remote_id}/notes", json={"note": {
                "content": "Failing over to the replica"}}).raise_for_status()
        self.wait("the webhook to mitigate INC-2", lambda: (
            store.get_incident("INC-2").status.value == "mitigated"  # type: ignore[union-attr]
            and any(e.kind == "note" for e in store.timeline("INC-2"))))
        self.echo("Signed webhooks arrived: INC-2 is mitigated and has John's note.")
        self.im("show", "INC-2")

    def show_pagerduty(self, incident_id: str) -> None:
        for link in self.runtime.store.links(incident_id):
            remote = self.pd.client().get(f"/incidents/{link.remote_id}").json()["incident"]
            notes = self.pd.client().get(f"/incidents/{link.remote_id}/notes").json()["notes"]
            self.echo(f"PagerDuty #{remote['incident_number']} ({remote['service']['id']}):"
                      f" status {remote['status']}, notes: "
                      + "; ".join(repr(n["content"]) for n in notes))

    def keep_running(self, pd_url: str, im_url: str) -> None:
        from im import tokens

        token = tokens.create(self.runtime.store, "demo", read_only=False,
                              now=self.runtime.clock())
        self.echo("")
        self.echo("The servers keep running until Ctrl-C:")
        self.echo(f"  PagerDuty sandbox  {pd_url}  (API key {API_KEY})")
        self.echo(f"  im serve           {im_url}  (API token {token})")
        self.echo("Try, in another terminal:")
        self.echo(f"  export IM_HOME={self.home}")
        self.echo("  ./im list --all")
        self.echo("  ./im timeline INC-2")
        self.echo(f"  ./im connector health {NAME}")
        self.echo(f"  ./im logs --component webhook --filter {NAME}")
        self.echo(f"  curl -H 'Authorization: Bearer TOKEN' {im_url}/api/incidents")
        import signal

        def stop(_signum: int, _frame: object) -> None:
            raise KeyboardInterrupt  # SIGTERM stops as Ctrl-C does: servers down, folder kept

        previous = signal.signal(signal.SIGTERM, stop)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            self.echo("Stopping.")
        finally:
            signal.signal(signal.SIGTERM, previous)


def _quote(args: tuple[str, ...]) -> str:
    import shlex

    return " ".join(shlex.quote(a) for a in args)


def add_commands(cli: typer.Typer) -> None:
    @cli.command()
    def demo(
        keep_running: bool = typer.Option(False, "--keep-running",
                                          help="Leave the servers up and print how to"
                                               " explore."),
        home: Path = typer.Option(None, "--home", help="Keep the demo's data here (default:"
                                  " a throw-away folder)."),
    ) -> None:
        """Walk through the PagerDuty integration offline, against a local PagerDuty."""
        import tempfile  # here: every `im` run imports this module to add the command

        throwaway = home is None
        folder = Path(tempfile.mkdtemp(prefix="im-demo-")) if home is None else home
        folder.mkdir(parents=True, exist_ok=True)
        os.environ["IM_HOME"] = str(folder)  # commands run here act on the demo's data
        try:
            Demo(folder, typer.echo).run(keep_running)
        except DemoFailed as error:
            typer.echo(f"Error: demo failed: {error}", err=True)
            raise typer.Exit(1) from None
        finally:
            if throwaway and not keep_running:
                shutil.rmtree(folder, ignore_errors=True)
                typer.echo(f"Removed the demo's folder {folder} (its database and report);"
                           " `./im demo --home DIR` keeps them.")


def _log_to(runtime: Any) -> None:
    """Keep im's log records in the demo's home, not in the home `im demo` was started from."""
    from im import keep_logs_in

    keep_logs_in(runtime.store)
