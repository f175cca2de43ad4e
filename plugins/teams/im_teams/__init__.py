"""Microsoft Teams for im: the workflow action `teams.notify`, which posts an incident's
Adaptive Card to a Teams channel through a Workflows (Power Automate) webhook.

This module is imported whenever im starts, so it stays light: the action (and httpx) is
imported inside the hook that registers it.
"""

from im import hookimpl

IM_SDK = "1.0"  # the im plugin SDK this plugin is built for (see `im plugins`)


@hookimpl
def register_workflow_actions(register):
    from im_teams.notify import TeamsNotify

    register(TeamsNotify)
