"""Slack for im. For now: a local Slack (`im slack sandbox`, `im_slack.testing`) that the Slack
connector (war rooms, notices, buttons, a slash command) is built and tested against.

This module is imported whenever im starts, so it stays light: the sandbox is imported inside
the command that runs it.
"""

from im import hookimpl

IM_SDK = "1.0"  # the im plugin SDK this plugin is built for (see `im plugins`)


@hookimpl
def register_commands(cli, runtime):
    from im_slack import commands

    commands.add_commands(cli)
