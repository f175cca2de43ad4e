"""Slack for im: the `slack` connector (each incident as a message in a channel, kept up to
date, its changes in the message's thread), the message's buttons and a slash command served
by `im serve` (im_slack.routes), the workflow actions `slack.war_room` and
`slack.archive_war_room`, and a local Slack (`im slack sandbox`, `im_slack.testing`) that all
of it is built and tested against.

This module is imported whenever im starts, so it stays light: the connector, the routes, the
actions and the sandbox are imported inside the hooks and the command that use them.
"""

from im import hookimpl

IM_SDK = "1.0"  # the im plugin SDK this plugin is built for (see `im plugins`)


@hookimpl
def register_connectors(register):
    from im_slack.connector import SlackConnector

    register(SlackConnector)


@hookimpl
def register_workflow_actions(register):
    from im_slack.war_room import ArchiveWarRoom, WarRoom

    register(WarRoom)
    register(ArchiveWarRoom)


@hookimpl
def register_routes(register, runtime):
    from im_slack.routes import routes

    for handler in routes(runtime):
        register(handler)


@hookimpl
def register_commands(cli, runtime):
    from im_slack import commands

    commands.add_commands(cli)
