"""`im workflow add/list/show/remove/test`: rules that run plugins' actions when something
happens to an incident (`im.app.workflows` does each; this formats)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from im.cli.context import runtime as runtime_of

if TYPE_CHECKING:
    from im.app.workflows import RuleView
    from im.workflows import Rule

TRIGGERS = "declared, severity_changed, acknowledged, resolved, closed, sla_breached, note_added"


def register(app: typer.Typer) -> None:
    """Add the `workflow` group to the root command line."""
    workflow_app = typer.Typer(
        help="Workflows: rules that run actions (a war room, a notice) when something happens"
             " to an incident.", no_args_is_help=True, rich_markup_mode=None)
    workflow_app.command()(add)
    workflow_app.command(name="list")(list_)
    workflow_app.command()(show)
    workflow_app.command()(remove)
    workflow_app.command()(test)
    workflow_app.command()(defaults)
    app.add_typer(workflow_app, name="workflow")


def conditions_text(rule: Rule) -> str:
    conditions = rule.conditions
    parts = []
    if conditions.severities:
        parts.append("severity " + " or ".join(s.value for s in conditions.severities))
    if conditions.services:
        parts.append("service " + " or ".join(conditions.services))
    if conditions.systems:
        parts.append("from " + " or ".join(conditions.systems))
    return ", ".join(parts) or "any incident"


def _state(view: RuleView) -> str:
    if not view.rule.enabled:
        return "disabled"
    if view.missing:
        return "not installed: " + ", ".join(view.missing)
    return "active"


def add(ctx: typer.Context, name: str = typer.Argument(..., help="The rule's name."),
        on: str = typer.Option(..., "--on", help=f"The trigger: {TRIGGERS}."),
        actions: list[str] = typer.Option(
            ..., "--action", help="An action to run, with its settings as JSON if it has any:"
                                  " chat.war_room, 'mail.notify={\"to\": [\"cto@company.com\"]}'."
                                  " Repeat for several, run in this order."),
        severity: list[str] = typer.Option([], "--severity", "--sev",
                                           help="Only incidents of this severity (repeat)."),
        service: list[str] = typer.Option([], "--service",
                                          help="Only incidents of this service (repeat)."),
        source: list[str] = typer.Option([], "--source",
                                         help="Only changes from this system: im, or a"
                                              " connector's name (repeat)."),
        replace: bool = typer.Option(False, "--replace", help="Replace a rule of that name."),
        disabled: bool = typer.Option(False, "--disabled", help="Save it without running it."),
        ) -> None:
    """Add a workflow rule: when TRIGGER happens to an incident matching the conditions, run
    the actions. Each action's settings are checked now."""
    from im.app import workflows

    steps = [workflows.parse_step(text) for text in actions]
    rule = workflows.add(runtime_of(ctx), name, trigger=on, steps=steps, severities=severity,
                         services=service, systems=source, replace=replace,
                         enabled=not disabled)
    typer.echo(f"{'Replaced' if replace else 'Added'} workflow {rule.name}: when"
               f" {rule.trigger.value}, if {conditions_text(rule)}: run"
               f" {', '.join(step.action for step in rule.steps)}")


def defaults(ctx: typer.Context,
             add: list[str] = typer.Option(
                 [], "--add", help="Add this default rule (repeat), or `all` of them not added"
                                   " yet."),
             settings: list[str] = typer.Option(
                 [], "--settings", help="A default rule's settings, NAME=JSON, laid over what"
                                        " its action fills in: 'management-notice={\"to\":"
                                        " [\"cto@company.com\"]}'. Repeat for several."),
             json_output: bool = typer.Option(False, "--json", help="Print JSON."),
             ) -> None:
    """The rules the installed actions offer for the common case (a war room for every SEV-1,
    management told of every SEV-1 and SEV-2), and whether each is ready to add; --add adds
    them as ordinary rules, to change or remove like any other."""
    from im.app import workflows

    given = workflows.parse_settings(settings)
    if add:
        for rule in workflows.add_defaults(runtime_of(ctx), add, given):
            typer.echo(f"Added workflow {rule.name}: when {rule.trigger.value}, if"
                       f" {conditions_text(rule)}: run"
                       f" {', '.join(step.action for step in rule.steps)}")
        return
    views = workflows.defaults(runtime_of(ctx), given)
    if json_output:
        import msgspec

        from im.cli.output import print_json

        print_json(msgspec.to_builtins(views))
        return
    if not views:
        typer.echo("No installed action offers a default rule (im plugins lists the actions).")
        return
    from im.cli.output import table

    def state(view: workflows.DefaultView) -> str:
        if view.added:
            return "added"
        return f"needs settings: {view.problem}" if view.problem else "ready"

    typer.echo(table(["Name", "When", "If", "Action", "State"],
                     [[view.name, view.trigger.value,
                       ("severity " + " or ".join(view.severities)) if view.severities
                       else "any incident", view.action, state(view)] for view in views]))
    if any(not view.added for view in views):
        typer.echo("Add them with: im workflow defaults --add all (or --add NAME), giving"
                   " settings with --settings 'NAME={...}'")


def list_(ctx: typer.Context,
          json_output: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the workflow rules."""
    from im.app import workflows
    from im.cli.output import print_json, table

    views = workflows.list_rules(runtime_of(ctx))
    if json_output:
        import msgspec

        print_json([{**msgspec.to_builtins(v.rule), "missing": v.missing} for v in views])
        return
    if not views:
        typer.echo("No workflows. Add one with: im workflow add NAME --on declared --action"
                   " ACTION")
        return
    typer.echo(table(["Name", "When", "If", "Actions", "State"],
                     [[v.rule.name, v.rule.trigger.value, conditions_text(v.rule),
                       ", ".join(step.action for step in v.rule.steps), _state(v)]
                      for v in views]))


def show(ctx: typer.Context, name: str = typer.Argument(..., help="The rule's name."),
         json_output: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show a workflow rule, its actions' settings and its latest runs."""
    import json

    from im.app import workflows
    from im.cli.output import print_json, table
    from im.humanize import when

    view = workflows.show(runtime_of(ctx), name)
    rule = view.rule
    if json_output:
        import msgspec

        print_json({**msgspec.to_builtins(rule), "missing": view.missing,
                    "runs": msgspec.to_builtins(view.runs)})
        return
    typer.echo(f"Workflow: {rule.name} ({_state(view)})")
    typer.echo(f"When: {rule.trigger.value}")
    typer.echo(f"If: {conditions_text(rule)}")
    typer.echo("Actions:")
    for index, step in enumerate(rule.steps, 1):
        settings = f" {json.dumps(step.settings)}" if step.settings else ""
        typer.echo(f"  {index}. {step.action}{settings}")
    if view.runs:
        typer.echo("")
        typer.echo(table(["Incident", "Action", "Status", "Attempts", "Queued", "Error"],
                         [[run.incident_id, run.action, run.status.value, run.attempts,
                           when(run.created_at), run.last_error or "-"]
                          for run in view.runs]))


def remove(ctx: typer.Context, name: str = typer.Argument(..., help="The rule's name.")) -> None:
    """Remove a workflow rule (actions it queued already still run)."""
    from im.app import workflows

    workflows.remove(runtime_of(ctx), name)
    typer.echo(f"Removed workflow {name}")


def test(ctx: typer.Context, name: str = typer.Argument(..., help="The rule's name."),
         incident: str = typer.Option(..., "--incident", "-i", help="The incident, INC-n."),
         source: str = typer.Option("im", "--source",
                                    help="The system the change would come from.")) -> None:
    """Show what the rule would run for an incident if its trigger happened now, without
    running anything."""
    from im.app import workflows

    found = workflows.test(runtime_of(ctx), name, incident, system=source)
    rule = workflows.show(runtime_of(ctx), name).rule
    typer.echo(f"Workflow {found.rule} for {found.incident_id} (when {rule.trigger.value},"
               f" from {source}):")
    if not found.matches:
        for reason in found.why_not:
            typer.echo(f"  Does not apply: {reason}")
        typer.echo("  Would run nothing.")
        return
    typer.echo("  Would run:")
    for index, step in enumerate(found.steps, 1):
        typer.echo(f"    {index}. {step}")
