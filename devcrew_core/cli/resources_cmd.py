"""Resource commands: ``devcrew monitor resources`` and the reservation commands of
``devcrew agent``."""

from __future__ import annotations

from typing import Any

import click

from devcrew_core.cli.common import cached_face
from devcrew_core.cli.groups import agent, monitor
from devcrew_core.cli.output import output_option, render
from devcrew_core.errors import NoCapacityError, NotFoundError

USAGE_COLUMNS = ("agent_id", "agent_type", "cpu_used", "cpu_limit", "cpu_utilization",
                 "memory_used", "memory_limit", "memory_utilization", "cpu_reserved",
                 "memory_reserved", "active_tasks", "max_tasks", "task_utilization")
RESERVATION_COLUMNS = ("reservation_id", "agent_id", "task_id", "cpu_cores", "memory_mb",
                       "expires_at")


def allocator(ctx: click.Context) -> Any:
    """A :class:`ResourceAllocator` configured from the root options (``--config``)."""
    from devcrew_core.allocator import ResourceAllocator

    return cached_face(ctx, "allocator", ResourceAllocator)


@monitor.command("resources")
@click.option("--allocations", "show_allocations", is_flag=True,
              help="Also list every allocation.")
@output_option()
@click.pass_context
def resources(ctx: click.Context, show_allocations: bool, output: str) -> None:
    """Resource usage per agent: used, limit and utilisation of CPU, memory and tasks,
    and what reservations hold."""
    face = allocator(ctx)
    rows = face.usage_table()
    for row in rows:
        for name in ("cpu_utilization", "memory_utilization", "task_utilization"):
            row[name] = round(row[name], 1)
    if not show_allocations:
        render(rows, output, columns=USAGE_COLUMNS, title="resources")
        return
    allocations = face.list_allocations()
    if output == "table":
        render(rows, output, columns=USAGE_COLUMNS, title="resources")
        render(allocations, output, title="allocations",
               columns=("agent_id", "task_id", "cpu_allocated", "memory_allocated",
                        "priority", "preemptable", "allocated_at"))
        return
    render({"agents": rows, "allocations": allocations}, output)


@agent.command("reserve")
@click.option("--id", "agent_id", required=True, help="Agent ID.")
@click.option("--cpu-cores", type=click.FloatRange(min=0), required=True)
@click.option("--memory-mb", type=click.FloatRange(min=0), required=True)
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), required=True,
              help="Seconds the capacity is held.")
@click.option("--task-id", help="The task that will redeem it (by allocating).")
@output_option()
@click.pass_context
def reserve(ctx: click.Context, agent_id: str, cpu_cores: float, memory_mb: float,
            duration: float, task_id: str | None, output: str) -> None:
    """Hold an agent's capacity for a future task (exit 1 when it does not fit)."""
    made = allocator(ctx).reserve(agent_id, cpu_cores, memory_mb, duration, task_id)
    if made is None:
        raise NoCapacityError(f"agent {agent_id!r} does not have {cpu_cores:g} cores and "
                              f"{memory_mb:g} MB free to reserve")
    render(made, output, title="reservation")


@agent.command("reservations")
@click.option("--id", "agent_id", help="Only this agent's reservations.")
@output_option()
@click.pass_context
def reservations(ctx: click.Context, agent_id: str | None, output: str) -> None:
    """List reservations (expired ones until they are cleaned up)."""
    render(allocator(ctx).list_reservations(agent_id), output, columns=RESERVATION_COLUMNS,
           title="reservations")


@agent.command("cancel-reservation")
@click.option("--reservation-id", required=True, help="Reservation ID.")
@click.pass_context
def cancel_reservation(ctx: click.Context, reservation_id: str) -> None:
    """Give a reservation's capacity back."""
    if not allocator(ctx).cancel_reservation(reservation_id):
        raise NotFoundError(f"no reservation {reservation_id!r} (devcrew agent reservations)")
    click.echo(f"cancelled {reservation_id}")
