"""email.notify through a real im runtime, against a real SMTP server on loopback with
STARTTLS and a login."""

import json
import logging
import re
import time

import msgspec
import pytest

from im import incidents
from im.testing import run_cli
# run_queued: what `im serve` does with queued runs; im.testing does not export it yet
from im.workflows import run_queued
from smtp_server import PASSWORD, USER, SmtpServer, free_port

RULE = ["workflow", "add", "management-notice", "--on", "declared", "--sev", "SEV-1", "--sev",
        "SEV-2"]


def im(runtime, *args):
    return run_cli(runtime, list(args))


def settings_for(smtp, **more):
    return {"host": "127.0.0.1", "port": smtp.port, "username": USER,
            "password": "env:SMTP_PASSWORD", "ca_file": str(smtp.ca_file),
            "from": "im@company.com", "to": ["cto@company.com", "vp-eng@company.com"],
            "to_by_severity": {"SEV-1": ["ceo@company.com", "cto@company.com"]}, **more}


def add_rule(runtime, settings):
    result = im(runtime, *RULE, "--action", f"email.notify={json.dumps(settings)}")
    assert result.exit_code == 0, result.stdout + result.stderr
    return result


def declare(runtime, sev="SEV-1", *extra):
    result = im(runtime, "declare", "--sev", sev, "--title", "Payment API Down", "--service",
                "payments", *extra)
    assert result.exit_code == 0, result.stderr
    return result


def workflow_lines(runtime, incident="INC-1"):
    return [e.text for e in runtime.store.timeline(incident) if e.kind == "workflow"]


def test_a_sev1_mails_management_over_starttls_with_a_login(runtime, smtp):
    add_rule(runtime, settings_for(smtp, view_url="https://im.example.com/incidents/{id}"))
    result = declare(runtime, "SEV-1", "--description", "Card payments fail <since> 08:50")
    assert result.stdout.splitlines() == [
        "Declared INC-1: SEV-1 Payment API Down (payments)",
        "  workflow management-notice: Management notified: cto@company.com,"
        " vp-eng@company.com, ceo@company.com",
    ]
    [mail] = smtp.delivered
    assert mail.tls and mail.auth == USER
    assert smtp.handler.logins == [("PLAIN", USER)]
    assert mail.mail_from == "im@company.com"
    assert mail.rcpt_tos == ["cto@company.com", "vp-eng@company.com", "ceo@company.com"]
    message = mail.message
    assert message["Subject"] == "[SEV-1] INC-1 Payment API Down"
    assert message["From"] == "im@company.com"
    assert message["To"] == "cto@company.com, vp-eng@company.com, ceo@company.com"
    assert message["Date"] == "Sat, 23 Aug 2025 14:30:00 +0000"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-IM-Incident"] == "INC-1"
    incident = runtime.store.get_incident("INC-1")
    [event] = [e for e in runtime.store.timeline("INC-1") if e.kind == "declared"]
    assert re.fullmatch(rf"<INC-1\.e{event.id}\.[0-9a-f]{{20}}@company\.com>",
                        message["Message-ID"])
    assert message["References"] == f"<INC-1.{incident.correlation_id[:20]}@company.com>"
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",)).get_content()
    assert text.splitlines() == [
        "SEV-1 INC-1: Payment API Down",
        "",
        "Incident declared: SEV-1 Payment API Down (payments)",
        "",
        "Severity:  SEV-1",
        "Status:    open",
        "Services:  payments",
        "Assignee:  nobody yet",
        "Declared:  2025-08-23 14:30 UTC by alice",
        "",
        "Card payments fail <since> 08:50",
        "",
        "View INC-1: https://im.example.com/incidents/INC-1",
        "",
        "Sent by im for the workflow management-notice.",
    ]
    page = message.get_body(("html",)).get_content()
    assert "<h2 style=\"color: #b91c1c\">SEV-1 INC-1: Payment API Down</h2>" in page
    assert "<tr><th align=\"left\">Services</th><td>payments</td></tr>" in page
    assert "Card payments fail &lt;since&gt; 08:50" in page
    assert "<a href=\"https://im.example.com/incidents/INC-1\">View INC-1</a>" in page
    assert workflow_lines(runtime) == [
        "Management notified: cto@company.com, vp-eng@company.com, ceo@company.com"]


def test_a_notice_sent_again_after_a_crash_has_the_same_message_id(runtime, smtp):
    """SMTP has no idempotency: what was sent and not recorded is sent again, recognizably."""
    from im import ActionRequest
    from im import Trigger
    from im_email.notify import EmailNotify, EmailSettings

    add_rule(runtime, settings_for(smtp))
    declare(runtime)
    incident = runtime.store.get_incident("INC-1")
    [event] = [e for e in runtime.store.timeline("INC-1") if e.kind == "declared"]
    # as the core hands it to the action: env:SMTP_PASSWORD read
    settings = msgspec.convert(settings_for(smtp, password=PASSWORD), EmailSettings)
    request = ActionRequest(incident=incident, trigger=Trigger.DECLARED,
                            rule="management-notice", event=event, attempt=2)
    EmailNotify(settings, runtime).run(request)
    first, again = smtp.delivered
    assert again.message["Message-ID"] == first.message["Message-ID"]
    other_rule = msgspec.structs.replace(request, rule="exec-notice")
    EmailNotify(settings, runtime).run(other_rule)
    assert smtp.delivered[-1].message["Message-ID"] != first.message["Message-ID"]


@pytest.mark.parametrize("mechanism", ["LOGIN", "PLAIN"])
def test_either_login_mechanism_works(runtime, tmp_path, mechanism):
    other = "PLAIN" if mechanism == "LOGIN" else "LOGIN"
    with SmtpServer(tmp_path, exclude=[other]) as server:
        add_rule(runtime, settings_for(server, to_by_severity={}))
        result = declare(runtime, "SEV-2")
        assert result.stdout.splitlines()[-1] == (
            "  workflow management-notice: Management notified: cto@company.com,"
            " vp-eng@company.com")
        assert server.handler.logins == [(mechanism, USER)]
        [mail] = server.delivered
        assert mail.message["Subject"] == "[SEV-2] INC-1 Payment API Down"


def test_a_severity_without_recipients_mails_nothing(runtime, smtp):
    add_rule(runtime, settings_for(smtp, to=[]))
    result = declare(runtime, "SEV-2")
    assert result.stdout == "Declared INC-1: SEV-2 Payment API Down (payments)\n"
    assert smtp.delivered == [] and workflow_lines(runtime) == []
    assert im(runtime, "workflow", "test", "management-notice", "--incident", "INC-1"
              ).stdout.splitlines()[-1] == (
        "    1. email.notify: mail nothing (no recipients for SEV-2)")


def test_workflow_test_says_what_it_would_mail_without_mailing(runtime, smtp):
    add_rule(runtime, settings_for(smtp))
    im(runtime, "declare", "--sev", "SEV-3", "--title", "Slow receipts", "--service", "api")
    smtp.delivered.clear()
    assert im(runtime, "severity", "--incident", "INC-1", "--sev", "SEV-1").exit_code == 0
    result = im(runtime, "workflow", "test", "management-notice", "--incident", "INC-1")
    assert result.stdout.splitlines() == [
        "Workflow management-notice for INC-1 (when declared, from im):",
        "  Would run:",
        "    1. email.notify: mail \"[SEV-1] INC-1 Slow receipts\" to cto@company.com,"
        f" vp-eng@company.com, ceo@company.com through 127.0.0.1:{smtp.port}",
    ]
    assert smtp.delivered == []


def test_one_refused_recipient_is_said_and_the_others_are_mailed(runtime, smtp):
    smtp.handler.refuse["vp-eng@company.com"] = "550 5.1.1 No such user here"
    add_rule(runtime, settings_for(smtp))
    declare(runtime)
    assert workflow_lines(runtime) == [
        "Management notified: cto@company.com, ceo@company.com",
        "Management notice refused for vp-eng@company.com: 550 5.1.1 No such user here",
    ]
    assert smtp.delivered[0].rcpt_tos == ["cto@company.com", "ceo@company.com"]


def test_every_recipient_refused_for_good_is_set_aside(runtime, smtp, clock):
    for address in ("cto@company.com", "vp-eng@company.com"):
        smtp.handler.refuse[address] = "550 5.1.1 No such user here"
    add_rule(runtime, settings_for(smtp, to_by_severity={}))
    result = declare(runtime)
    assert result.exit_code == 0
    [run] = runtime.store.read().workflow_runs.find()
    assert run.status == "failed"
    assert workflow_lines(runtime) == [
        "Workflow management-notice: email.notify failed: the SMTP server"
        f" 127.0.0.1:{smtp.port} refused every recipient: cto@company.com (550 5.1.1 No such"
        " user here); vp-eng@company.com (550 5.1.1 No such user here)"]
    clock.advance(minutes=30)
    assert run_queued(runtime).done == 0 and smtp.delivered == []


def test_a_temporary_refusal_is_tried_again(runtime, smtp, clock):
    smtp.handler.refuse["cto@company.com"] = "451 4.3.0 Mailbox busy, try later"
    add_rule(runtime, settings_for(smtp, to=["cto@company.com"], to_by_severity={}))
    declare(runtime)
    [run] = runtime.store.read().workflow_runs.find()
    assert run.status == "pending" and "451 4.3.0 Mailbox busy" in run.last_error
    smtp.handler.refuse.clear()
    clock.advance(seconds=6)
    assert run_queued(runtime).done == 1
    assert workflow_lines(runtime) == ["Management notified: cto@company.com"]


def test_a_server_down_is_retried_later_once(runtime, tmp_path, clock):
    port = free_port()  # nobody listens there yet
    add_rule(runtime, {**settings_for(SmtpServer(tmp_path), to_by_severity={}), "port": port})
    result = declare(runtime)
    assert "1 workflow action(s) queued" in result.stderr
    [run] = runtime.store.read().workflow_runs.find()
    assert run.status == "pending"
    assert run.last_error == (f"could not reach the SMTP server 127.0.0.1:{port}: Connection"
                              " refused")
    server = SmtpServer(tmp_path, port=port)  # the server is back
    with server:
        clock.advance(seconds=6)
        assert run_queued(runtime).done == 1
        assert run_queued(runtime).done == 0
        assert len(server.delivered) == 1
    assert workflow_lines(runtime) == [
        "Management notified: cto@company.com, vp-eng@company.com"]


def test_a_slow_server_is_left_when_the_runs_time_is_up(runtime, smtp, clock):
    """A server slow to answer each command: the notice keeps to the time the run was given
    (`request.deadline`), not `timeout` for each of a dozen commands, and is tried again later.
    Otherwise it could outlast the run's claim (RUN_LEASE_SECONDS), and another process would
    take the run and mail it a second time while this one still talked."""
    smtp.handler.pace = 1.0  # MAIL and three RCPTs: four seconds and more
    add_rule(runtime, settings_for(smtp))
    incidents.declare(runtime, title="Payment API Down", severity="SEV-1",
                      services=["payments"])
    started = time.monotonic()
    assert run_queued(runtime, budget=2.0).retrying == 1
    assert time.monotonic() - started < 3.0
    [run] = runtime.store.read().workflow_runs.find()
    assert (run.status, run.last_error) == ("pending", f"the SMTP server 127.0.0.1:{smtp.port}"
                                            " is too slow: the time this attempt had ran out")
    assert smtp.delivered == []
    smtp.handler.pace = 0.0
    clock.advance(seconds=6)
    assert run_queued(runtime).done == 1
    assert len(smtp.delivered) == 1


def test_a_mail_taken_is_done_whatever_becomes_of_quit(runtime, smtp, clock):
    """The server took the mail (250 to its end of data): a QUIT answered late, or not at all,
    changes nothing of that, and must not have the mail sent again."""
    smtp.handler.hold_quit = 5.0
    add_rule(runtime, settings_for(smtp, to_by_severity={}, timeout=1))
    result = declare(runtime)
    assert result.stdout.splitlines()[1:] == [
        "  workflow management-notice: Management notified: cto@company.com,"
        " vp-eng@company.com"]
    [run] = runtime.store.read().workflow_runs.find()
    assert (run.status, run.attempts) == ("done", 1)
    clock.advance(minutes=10)
    assert run_queued(runtime).done == 0
    assert len(smtp.delivered) == 1


@pytest.mark.parametrize("written", ["literal", "env"])
def test_a_wrong_password_is_set_aside_with_a_clear_message(runtime, smtp, monkeypatch,
                                                            caplog, written):
    monkeypatch.setenv("SMTP_PASSWORD", "hunter2-wrong")
    password = "hunter2-wrong" if written == "literal" else "env:SMTP_PASSWORD"
    add_rule(runtime, settings_for(smtp, password=password))
    with caplog.at_level(logging.DEBUG):
        result = declare(runtime)
    [line] = workflow_lines(runtime)
    assert line == (
        "Workflow management-notice: email.notify failed: the SMTP server"
        f" 127.0.0.1:{smtp.port} refused the login of {USER} (535 5.7.8 Authentication"
        " credentials invalid): check username and the password")
    assert smtp.delivered == []
    [run] = runtime.store.read().workflow_runs.find()
    for text in (caplog.text, line, run.last_error, result.stdout, result.stderr,
                 im(runtime, "workflow", "show", "management-notice").stdout,
                 im(runtime, "workflow", "show", "management-notice", "--json").stdout):
        assert "hunter2-wrong" not in text and PASSWORD not in text


def test_an_untrusted_certificate_is_refused_not_ignored(runtime, smtp):
    settings = settings_for(smtp)
    del settings["ca_file"]
    add_rule(runtime, settings)
    declare(runtime)
    [line] = workflow_lines(runtime)
    assert line.startswith(
        "Workflow management-notice: email.notify failed: the certificate of the SMTP server"
        f" 127.0.0.1:{smtp.port} is not trusted (")
    assert line.endswith("if it is signed by a private CA, give its certificate as ca_file")
    assert smtp.delivered == []


def test_a_literal_password_is_taken_and_never_printed(runtime, smtp, caplog):
    literal = im(runtime, *RULE, "--action", "email.notify=" + json.dumps(
        settings_for(smtp, password=PASSWORD)))
    assert literal.exit_code == 0, literal.stderr
    with caplog.at_level(logging.DEBUG):
        mailed = declare(runtime)
    assert mailed.stdout.splitlines()[-1] == (
        "  workflow management-notice: Management notified: cto@company.com,"
        " vp-eng@company.com, ceo@company.com")
    assert smtp.handler.logins == [("PLAIN", USER)] and len(smtp.delivered) == 1
    shown = im(runtime, "workflow", "show", "management-notice").stdout
    assert '"password": "********"' in shown
    outputs = [literal.stdout, literal.stderr, mailed.stdout, mailed.stderr, shown,
               im(runtime, "workflow", "show", "management-notice", "--json").stdout,
               im(runtime, "workflow", "list", "--json").stdout,
               im(runtime, "workflow", "list").stdout,
               im(runtime, "workflow", "test", "management-notice", "--incident", "INC-1"
                  ).stdout,
               im(runtime, "timeline", "INC-1").stdout, caplog.text,
               smtp.delivered[0].message.as_string()]
    for text in outputs:
        assert PASSWORD not in text


def test_an_env_reference_is_shown_as_saved_and_the_password_never(runtime, smtp, caplog):
    add_rule(runtime, settings_for(smtp))
    with caplog.at_level(logging.DEBUG):
        declare(runtime)
    assert smtp.handler.logins == [("PLAIN", USER)]
    shown = im(runtime, "workflow", "show", "management-notice").stdout
    assert '"password": "env:SMTP_PASSWORD"' in shown
    for text in (shown, im(runtime, "workflow", "show", "management-notice", "--json").stdout,
                 im(runtime, "workflow", "list", "--json").stdout,
                 im(runtime, "timeline", "INC-1").stdout, caplog.text):
        assert PASSWORD not in text


def test_an_unset_variable_waits_for_a_process_that_has_it(runtime, smtp, clock,
                                                           monkeypatch):
    add_rule(runtime, settings_for(smtp))
    monkeypatch.delenv("SMTP_PASSWORD")
    declare(runtime)
    [run] = runtime.store.read().workflow_runs.find()
    assert (run.status, run.last_error) == (
        "pending", "setting password of email.notify refers to env:SMTP_PASSWORD, which is"
        " not set here")
    assert smtp.delivered == []
    monkeypatch.setenv("SMTP_PASSWORD", PASSWORD)
    clock.advance(seconds=6)
    assert run_queued(runtime).done == 1 and len(smtp.delivered) == 1
    assert smtp.handler.logins == [("PLAIN", USER)]


@pytest.mark.parametrize(("change", "error"), [
    ({"to": [], "to_by_severity": {}}, "no recipients: give to, to_by_severity or both"),
    ({"to": ["cto at company"]}, "'cto at company' is not an e-mail address - at `$.to`"),
    ({"to_by_severity": {"SEV-9": ["a@b.com"]}}, "Invalid enum value 'SEV-9'"),
    ({"from": "im"}, "from must be an e-mail address"),
    ({"tls": "none"}, "a login needs TLS"),
    ({"tls": "maybe"}, "Invalid enum value 'maybe'"),
    ({"username": None}, "username and password go together"),
    ({"password": ""}, "password is empty"),
    ({"password": "env:SMTP-PASSWORD"}, "password must be env:VARIABLE"),
    ({"smtp_host": "x"}, "Object contains unknown field `smtp_host`"),
    ({"ca_file": "ca.pem"}, "ca_file must be an absolute path"),
])
def test_wrong_settings_are_said_when_the_rule_is_saved(runtime, smtp, change, error):
    settings = {k: v for k, v in {**settings_for(smtp), **change}.items() if v is not None}
    result = im(runtime, *RULE, "--action", f"email.notify={json.dumps(settings)}")
    assert result.exit_code != 0
    assert result.stderr.startswith("Error: action email.notify: "), result.stderr
    assert error in result.stderr, result.stderr
