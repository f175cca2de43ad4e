"""`im demo` end to end: the real command in a subprocess, as a newcomer runs it."""

import os
import subprocess
import sys
from pathlib import Path

IM = str(Path(sys.executable).parent / "im")


def test_demo_walks_through_the_spec_and_cleans_up(tmp_path):
    home = tmp_path / "demo-home"
    started_in = tmp_path / "my-home"  # the IM_HOME `im demo` is run with
    result = subprocess.run([IM, "demo", "--home", str(home)], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "IM_USER": "alice",
                                              "IM_HOME": str(started_in)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    for expected in (
        "✓ Connected to PagerDuty API\n✓ Service PXXXXXX accessible\n"
        "✓ User ops@company.com valid\n✓ Escalation policy PXXXXXX found\n",
        "✓ Webhook endpoint configured",
        "Declared INC-2: SEV-1 Database cluster failure (database, api, payments)",
        "Signed webhooks arrived: INC-2 is mitigated and has John's note.",
        "Current On-Call: john.doe@company.com (until ",
        "Escalation: After 15 minutes → team-lead@company.com",
        "Health: Healthy",
        "Acknowledged by john.doe@company.com (demo-pagerduty)",
        "Failing over to the replica (demo-pagerduty)",
        "Resolved by alice: Cluster healthy again after failover (im)",
        # the spec's automated response workflows
        "Added workflow management-notice: when declared, if severity SEV-1 or SEV-2: run"
        " email.notify\nAdded workflow teams-notice: when declared, if severity SEV-1 or"
        " SEV-2: run teams.notify\nAdded workflow war-room: when declared, if severity SEV-1:"
        " run slack.war_room\n",
        "Declared INC-3: SEV-1 Payment API Down (payments)\n",
        "(Slack) #inc-3-payment-api-down: topic 'SEV-1 · Payment API Down · payments', members"
        " John Doe\n",
        "(Teams) a card: 'SEV-1 INC-3: Payment API Down'\n",
        "(Mail) to cto@company.com, vp-eng@company.com: '[SEV-1] INC-3 Payment API Down'\n",
        "im answered Slack in ",
        " and told John: 'INC-3 acknowledged'\nINC-3 is mitigated in im (by"
        " john.doe@company.com); PagerDuty #5 is acknowledged; the Slack message says"
        " Mitigated\n",
    ):
        assert expected in out, expected
    assert out.count("PagerDuty incident #") >= 8
    assert "status resolved" in out and "Traceback" not in result.stderr
    assert (home / "im-report.pdf").read_bytes().startswith(b"%PDF")
    assert "Demo finished in" in out
    # the payments SEV-1's timeline has each response, once
    timeline = out[out.index("$ ./im timeline INC-3 --brief"):]
    for line in ("Slack message in #incidents (demo-slack)",
                 "War room #inc-3-payment-api-down created (slack)",
                 "Invited John Doe (on call for payments) (slack)",
                 "Teams notified: #incidents (teams)",
                 "Management notified: cto@company.com, vp-eng@company.com (email)",
                 "Acknowledged by john.doe@company.com (demo-slack)",
                 "PagerDuty incident #5 acknowledged (demo-pagerduty)",
                 "Slack message updated (Mitigated) (demo-slack)"):
        assert timeline.count(line) == 1, line
    # what the demo's servers logged is in the demo's home, as `IM_HOME=... im logs` reads it
    logs = subprocess.run([IM, "logs", "--component", "webhook"], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "IM_HOME": str(home)})
    assert "webhook/demo-pagerduty: incident.acknowledged " in logs.stdout
    assert not (started_in / "im.db").exists()


def test_a_demo_in_a_throwaway_folder_says_it_removed_it():
    result = subprocess.run([IM, "demo"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    last = result.stdout.splitlines()[-1]
    assert last.startswith("Removed the demo's folder ") and last.endswith(
        " (its database and report); `./im demo --home DIR` keeps them.")
    folder = last.removeprefix("Removed the demo's folder ").split(" (")[0]
    assert f"Wrote {folder}/im-report.pdf" in result.stdout
    assert not Path(folder).exists()
