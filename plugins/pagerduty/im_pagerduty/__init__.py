"""PagerDuty connector for im.

This module is imported whenever im starts, so it stays light: heavy modules (the HTTP client,
the sandbox server) are imported inside the hooks and commands that use them.
"""

from im import hookimpl

IM_SDK = "1.0"  # the im plugin SDK this plugin is built for (see `im plugins`)


@hookimpl
def register_connectors(register):
    from im_pagerduty.connector import PagerDutyConnector

    register(PagerDutyConnector)


@hookimpl
def register_commands(cli, runtime):
    from im_pagerduty import commands, connector_commands, demo

    connector_commands.add_commands(cli, runtime)
    commands.add_commands(cli)
    demo.add_commands(cli)
