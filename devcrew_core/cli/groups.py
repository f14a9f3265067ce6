"""The spec's command groups. Each issue adds its subcommands to these groups."""

from __future__ import annotations

import click


@click.group()
def workflow() -> None:
    """Create, start, monitor, cancel and export workflows."""


@click.group()
def agent() -> None:
    """Register agents and inspect their status, capacity and statistics."""


@click.group()
def task() -> None:
    """Delegate tasks to the best agent and follow them to completion."""


@click.group()
def hub() -> None:
    """Register hub agents and execute objectives through hub-and-spoke coordination."""


@click.group()
def spoke() -> None:
    """Register and inspect the spoke agents a hub delegates sub-tasks to."""


@click.group()
def handoff() -> None:
    """Hand context from one agent to the next and inspect the handoff audit trail."""


@click.group()
def monitor() -> None:
    """Platform health, resource usage, agent metrics and capacity planning."""


SPEC_GROUPS = (workflow, agent, task, hub, spoke, handoff, monitor)
