"""`im connector test` for PagerDuty: each check says what it found and, if it failed, the fix."""

from __future__ import annotations

from typing import TYPE_CHECKING

from im import Check, CheckRequest
from im_pagerduty.client import PagerDutyError

if TYPE_CHECKING:
    from im_pagerduty.connector import PagerDutyConnector


LATE = ": not checked, no time left"


def _failure(name: str, error: PagerDutyError, connector: PagerDutyConnector,
             what: str) -> Check:
    critical = name == "api"  # nothing else can work without it
    if error.out_of_time:  # earlier answers were slow: this one was not asked
        return Check(name=name, critical=critical, ok=False, detail=f"{what}{LATE}")
    if error.status == 401:
        return Check(name=name, critical=critical, ok=False,
                     detail=f"{what}: PagerDuty rejected the API key (401 Unauthorized)",
                     fix="check the key (Account Settings → API Access Keys, admin role) and"
                         f" run: im connector update {connector.name} --api-key - (the key on standard input)")
    if error.status == 403:
        return Check(name=name, critical=critical, ok=False,
                     detail=f"{what}: access denied (403)",
                     fix="use an API key with admin permissions")
    if error.status is None:
        return Check(name=name, critical=critical, ok=False, detail=f"{what}: {error}",
                     fix=f"check base_url ({connector.settings.base_url}) and the network")
    return Check(name=name, critical=critical, ok=False, detail=f"{what}: {error}")


def connection_checks(connector: PagerDutyConnector, request: CheckRequest) -> list[Check]:
    client = connector.client
    custom = connector.settings.custom
    checks: list[Check] = []
    try:
        client.get("/users", limit=1)
    except PagerDutyError as error:
        # Nothing else can work without a connection and a valid key.
        return [_failure("api", error, connector, "Cannot use the PagerDuty API")]
    checks.append(Check(name="api", critical=True, ok=True,
                        detail="Connected to PagerDuty API"))

    services = [custom.service_id] + sorted(
        set(custom.service_mappings.values()) - {custom.service_id})
    for service_id in services:
        try:
            client.get(f"/services/{service_id}")
            if service_id == custom.service_id:
                checks.append(Check(name="service", ok=True,
                                    detail=f"Service {service_id} accessible"))
        except PagerDutyError as error:
            if error.status == 404:
                mapped = [k for k, v in custom.service_mappings.items() if v == service_id]
                fix = (f"im connector config {connector.name} --service-id CORRECT_SERVICE_ID"
                       if service_id == custom.service_id else
                       f"im connector map-service {connector.name} --im-service {mapped[0]}"
                       " --pd-service CORRECT_SERVICE_ID")
                checks.append(Check(name="service", ok=False,
                                    detail=f"Service {service_id} not found (404)", fix=fix))
            else:
                checks.append(_failure("service", error, connector, f"Service {service_id}"))

    try:
        users = client.get("/users", query=custom.from_email).get("users", [])
        if any(u.get("email", "").lower() == custom.from_email.lower() for u in users):
            checks.append(Check(name="user", ok=True, detail=f"User {custom.from_email} valid"))
        else:
            checks.append(Check(
                name="user", ok=False,
                detail=f"User {custom.from_email} is not a PagerDuty user",
                fix=f"im connector config {connector.name} --from-email"
                    " EMAIL_OF_A_PAGERDUTY_USER"))
    except PagerDutyError as error:
        checks.append(_failure("user", error, connector, f"User {custom.from_email}"))

    policies = ([custom.escalation_policy_id] if custom.escalation_policy_id else []) + sorted(
        set(custom.escalation_mappings.values()) - {custom.escalation_policy_id})
    for policy_id in policies:
        try:
            client.get(f"/escalation_policies/{policy_id}")
            checks.append(Check(name="escalation_policy", ok=True,
                                detail=f"Escalation policy {policy_id} found"))
        except PagerDutyError as error:
            if error.status == 404:
                checks.append(Check(
                    name="escalation_policy", ok=False,
                    detail=f"Escalation policy {policy_id} not found (404)",
                    fix=f"im connector config {connector.name} --escalation-policy POLICY_ID"))
            else:
                checks.append(_failure("escalation_policy", error, connector,
                                       f"Escalation policy {policy_id}"))

    priorities = _priority_check(connector)
    if priorities is not None:
        checks.append(priorities)
    if connector.wants_webhooks:  # an outbound connector ignores PagerDuty's events
        checks.append(_webhook_check(connector, request))
    return _late_in_one(checks)


def _priority_check(connector: PagerDutyConnector) -> Check | None:
    """Each name `priority_mapping` sets exists in PagerDuty. An account without priorities
    passes (im then sends urgency alone), said here once rather than on every change."""
    from im import Severity
    from im_pagerduty.priorities import forget, listed
    from im_pagerduty.settings import priority_names

    mapping = connector.settings.custom.priority_mapping
    wanted = [priority_names(mapping, severity)[0] for severity in Severity
              if priority_names(mapping, severity)]
    if not wanted:
        return None  # the mapping is off: severity goes by urgency alone
    forget(connector.client)  # a test reads PagerDuty as it is now
    try:
        found = listed(connector.client)
    except PagerDutyError as error:
        if error.status not in (402, 403, 404):
            return _failure("priorities", error, connector, "Priorities")
        found = []
    if not found:
        return Check(name="priorities", ok=True,
                     detail="Priorities not enabled in PagerDuty: severity is sent as urgency"
                            " alone")
    names = [str(p.get("name") or "") for p in found]
    missing = [name for name in wanted if name.lower() not in {n.lower() for n in names}]
    if missing:
        return Check(name="priorities", ok=False,
                     detail=f"Priority mapping: no priority named {', '.join(missing)} in"
                            f" PagerDuty (has: {', '.join(names)})",
                     fix=f"im connector config {connector.name} --priority-mapping"
                         " '{\"SEV-1\": \"NAME\", ...}' (PagerDuty's names)")
    return Check(name="priorities", ok=True,
                 detail=f"Priorities {', '.join(wanted)} found")


def _late_in_one(checks: list[Check]) -> list[Check]:
    """The checks the command's time ran out for, as one line where the first was."""
    late = [check for check in checks if check.detail.endswith(LATE)]
    if not late:
        return checks
    merged = Check(name=late[0].name, ok=False,
                   detail="Not checked, no time left (PagerDuty answered slowly): "
                          + ", ".join(check.detail.removesuffix(LATE) for check in late))
    first = checks.index(late[0])
    return [merged if index == first else check for index, check in enumerate(checks)
            if index == first or check not in late]


def _enable_command(connector: PagerDutyConnector, request: CheckRequest) -> str:
    """The command that sets up webhooks: with --url only when im's public URL is unknown."""
    url = "" if request.public_url else " --url https://YOUR-DOMAIN"
    return f"im connector webhook {connector.name} --enable{url}"


def _webhook_check(connector: PagerDutyConnector, request: CheckRequest) -> Check:
    """The subscription `im connector webhook --enable` made exists, is enabled, and delivers
    to im's public URL (when that is known)."""
    subscription_id = connector.settings.custom.webhook_subscription_id
    enable = _enable_command(connector, request)
    if not subscription_id or not connector.settings.custom.webhook_secrets:
        return Check(name="webhook", ok=False, detail="Webhook endpoint not configured",
                     fix=f"run: {enable}")
    try:
        subscription = connector.client.get(
            f"/webhook_subscriptions/{subscription_id}")["webhook_subscription"]
    except PagerDutyError as error:
        if error.status == 404:
            return Check(name="webhook", ok=False,
                         detail=f"Webhook subscription {subscription_id} no longer exists",
                         fix=f"run: {enable}")
        return _failure("webhook", error, connector, "Webhook subscription")
    url = (subscription.get("delivery_method") or {}).get("url")
    expected = connector.webhook_url(request.public_url)
    if expected and url != expected:
        return Check(name="webhook", ok=False,
                     detail=f"Webhook delivers to {url}, but im's public URL gives {expected}",
                     fix=f"run: im connector webhook {connector.name} --enable")
    from im_pagerduty.subscriptions import disabled

    if disabled(subscription):
        return Check(name="webhook", ok=False,
                     detail=f"Webhook endpoint {url} is disabled in PagerDuty",
                     fix=f"run: im connector webhook {connector.name} --enable")
    return Check(name="webhook", ok=True, detail="Webhook endpoint configured")


def health_checks(connector: PagerDutyConnector, request: CheckRequest) -> list[Check]:
    """The live half of `im connector health`: connectivity (timed), authentication, service
    access, and the webhook subscription when PagerDuty has disabled it."""
    import time

    client = connector.client
    custom = connector.settings.custom
    started = time.perf_counter()
    try:
        client.get("/users", limit=1)
    except PagerDutyError as error:
        elapsed = round((time.perf_counter() - started) * 1000)
        if error.status in (401, 403):
            return [Check(name="api", critical=True, label="API Connectivity", ok=True,
                          detail=f"Connected ({elapsed}ms response time)"),
                    Check(name="auth", critical=True, label="Authentication", ok=False,
                          detail=f"API key refused ({error.status})",
                          fix=f"im connector update {connector.name} --api-key - (the key on standard input)")]
        return [Check(name="api", critical=True, label="API Connectivity", ok=False,
                      detail=str(error), fix=f"check base_url ({connector.settings.base_url}) and the network")]
    elapsed = round((time.perf_counter() - started) * 1000)
    checks = [Check(name="api", critical=True, label="API Connectivity", ok=True,
                    detail=f"Connected ({elapsed}ms response time)"),
              Check(name="auth", critical=True, label="Authentication", ok=True,
                    detail="Valid API key")]
    try:
        client.get(f"/services/{custom.service_id}")
        checks.append(Check(name="service", label="Service Access", ok=True,
                            detail=f"{custom.service_id} accessible"))
    except PagerDutyError as error:
        checks.append(Check(name="service", label="Service Access", ok=False,
                            detail=f"{custom.service_id}: {error}",
                            fix=f"check base_url ({connector.settings.base_url}) and the"
                                " network" if error.retryable else
                                f"im connector config {connector.name} --service-id"
                                " CORRECT_SERVICE_ID"))
    if connector.wants_webhooks and not custom.webhook_subscription_id:
        checks.append(Check(
            name="webhook", label="Webhook", ok=False,
            detail="Not set up in PagerDuty yet (polling covers meanwhile)",
            fix=_enable_command(connector, request)))
    elif connector.wants_webhooks:
        try:
            subscription = client.get(f"/webhook_subscriptions/{custom.webhook_subscription_id}"
                                      )["webhook_subscription"]
            from im_pagerduty.subscriptions import disabled

            if disabled(subscription):
                checks.append(Check(
                    name="webhook", label="Webhook", ok=False,
                    detail="PagerDuty disabled the subscription (deliveries kept failing)",
                    fix=f"im connector webhook {connector.name} --enable"))
        except PagerDutyError as error:
            if error.status == 404:
                checks.append(Check(name="webhook", label="Webhook", ok=False,
                                    detail="The webhook subscription no longer exists",
                                    fix=f"im connector webhook {connector.name} --enable"))
    return checks
