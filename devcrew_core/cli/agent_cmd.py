"""The ``devcrew agent`` commands: the agent registry, from any process."""

from __future__ import annotations

from typing import Any

import click

from devcrew_core.cli.common import csv_list, delegation_manager, json_option
from devcrew_core.cli.groups import agent
from devcrew_core.cli.output import output_option, render
from devcrew_core.errors import NotFoundError, UsageError

LIST_COLUMNS = ("agent_id", "agent_type", "available", "expired", "current_load",
                "max_concurrent_tasks", "load_percentage", "priority_weight", "capabilities")
BOOL = click.Choice(["true", "false"], case_sensitive=False)


def _runner(value: str | None) -> Any:
    """``--runner``: a JSON declaration, or ``module:function`` for a python runner."""
    if value is None:
        return None
    if value.lstrip().startswith("{"):
        return json_option(value, "--runner")
    return value


@agent.command("register")
@click.option("--id", "agent_id", required=True, help="Unique agent ID.")
@click.option("--type", "agent_type", required=True, help="Agent type, e.g. Backend-Engineer.")
@click.option("--capabilities", required=True, help="Comma-separated capabilities.")
@click.option("--max-tasks", type=click.IntRange(min=1), default=3, show_default=True,
              help="Maximum concurrent tasks.")
@click.option("--priority", type=click.IntRange(1, 100), default=10, show_default=True,
              help="Priority weight (1-100): higher is preferred.")
@click.option("--cpu-cores", type=click.FloatRange(min=0, min_open=True),
              help="CPU cores the agent has (resource limit).")
@click.option("--memory-mb", type=click.FloatRange(min=0, min_open=True),
              help="Memory in MB the agent has (resource limit).")
@click.option("--disk-mb", type=click.FloatRange(min=0), help="Disk in MB (resource limit).")
@click.option("--network-mbps", type=click.FloatRange(min=0),
              help="Network bandwidth in Mbit/s (resource limit).")
@click.option("--metadata", help="Extra metadata as a JSON object.")
@click.option("--runner", help='How it runs: "module:function", or a JSON declaration such '
                               'as \'{"kind": "command", "argv": ["make", "test"]}\'.')
@click.option("--unavailable", is_flag=True, help="Register it as unavailable.")
@output_option()
@click.pass_context
def register(ctx: click.Context, agent_id: str, agent_type: str, capabilities: str,
             max_tasks: int, priority: int, cpu_cores: float | None, memory_mb: float | None,
             disk_mb: float | None, network_mbps: float | None, metadata: str | None,
             runner: str | None, unavailable: bool, output: str) -> None:
    """Register (or re-register) an agent. Re-registering keeps its running tasks.

    The agent expires agent_ttl_seconds (config) after its last heartbeat.
    """
    from devcrew_core.models import ResourceLimits

    extra = json_option(metadata, "--metadata")
    if extra is not None and not isinstance(extra, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--metadata")
    limits = None
    if cpu_cores is not None or memory_mb is not None:
        if cpu_cores is None or memory_mb is None:
            raise UsageError("--cpu-cores and --memory-mb go together (resource limits "
                             "need both)")
        limits = ResourceLimits(cpu_cores=cpu_cores, memory_mb=memory_mb, disk_mb=disk_mb,
                                network_mbps=network_mbps, max_tasks=max_tasks)
    manager = delegation_manager(ctx)
    manager.register_agent(agent_id=agent_id, agent_type=agent_type,
                           capabilities=csv_list(capabilities), max_concurrent_tasks=max_tasks,
                           priority_weight=priority, available=not unavailable,
                           resource_limits=limits, metadata=extra, runner=_runner(runner))
    render(manager.get_agent_status(agent_id), output, title=f"registered {agent_id}")


@agent.command("list")
@click.option("--type", "agent_type", help="Only agents of this type.")
@click.option("--available", "available_only", is_flag=True,
              help="Only available, unexpired agents.")
@click.option("--has-capacity", is_flag=True, help="Only agents with a free slot.")
@output_option()
@click.pass_context
def list_agents(ctx: click.Context, agent_type: str | None, available_only: bool,
                has_capacity: bool, output: str) -> None:
    """List registered agents with their load."""
    rows = delegation_manager(ctx).list_agents(filter_type=agent_type,
                                               available_only=available_only,
                                               has_capacity=has_capacity)
    render(rows, output, columns=LIST_COLUMNS, title="agents")


def _status_or_fail(manager: Any, agent_id: str) -> dict[str, Any]:
    status = manager.get_agent_status(agent_id)
    if status is None:
        raise NotFoundError(f"agent {agent_id!r} is not registered (devcrew agent list)")
    result: dict[str, Any] = status
    return result


@agent.command("status")
@click.option("--id", "agent_id", required=True, help="Agent ID.")
@output_option()
@click.pass_context
def status(ctx: click.Context, agent_id: str, output: str) -> None:
    """Show one agent: load, capacity, running tasks, heartbeat, expiry."""
    render(_status_or_fail(delegation_manager(ctx), agent_id), output, title=agent_id)


@agent.command("set-availability")
@click.option("--id", "agent_id", required=True, help="Agent ID.")
@click.option("--available", required=True, type=BOOL, help="true or false.")
@output_option()
@click.pass_context
def set_availability(ctx: click.Context, agent_id: str, available: str, output: str) -> None:
    """Make an agent (un)available for new tasks; running tasks go on."""
    manager = delegation_manager(ctx)
    if not manager.set_agent_availability(agent_id, available.lower() == "true"):
        raise NotFoundError(f"agent {agent_id!r} is not registered (devcrew agent list)")
    render(_status_or_fail(manager, agent_id), output, title=agent_id)


@agent.command("heartbeat")
@click.option("--id", "agent_id", required=True, help="Agent ID.")
@output_option()
@click.pass_context
def heartbeat(ctx: click.Context, agent_id: str, output: str) -> None:
    """Extend an agent's TTL from now."""
    manager = delegation_manager(ctx)
    if not manager.heartbeat_agent(agent_id):
        raise NotFoundError(f"agent {agent_id!r} is not registered (devcrew agent list)")
    info = _status_or_fail(manager, agent_id)
    render({k: info[k] for k in ("agent_id", "last_heartbeat", "expires_at", "expired")},
           output, title=agent_id)


@agent.command("deregister")
@click.option("--id", "agent_id", required=True, help="Agent ID.")
@click.option("--confirm", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def deregister(ctx: click.Context, agent_id: str, confirm: bool) -> None:
    """Remove an agent from the registry (its running tasks are reported)."""
    manager = delegation_manager(ctx)
    info = _status_or_fail(manager, agent_id)
    if not confirm:
        click.confirm(f"Deregister agent {agent_id}?", abort=True, err=True)
    manager.deregister_agent(agent_id)
    running = info["running_tasks"]
    note = f"; it was running {', '.join(running)}" if running else ""
    click.echo(f"deregistered {agent_id}{note}")


@agent.command("stats")
@output_option()
@click.pass_context
def stats(ctx: click.Context, output: str) -> None:
    """Registry and delegation statistics."""
    render(delegation_manager(ctx).get_statistics(), output, title="delegation statistics")


@agent.command("cleanup")
@output_option()
@click.pass_context
def cleanup(ctx: click.Context, output: str) -> None:
    """Remove expired agents; report the tasks they were running."""
    removed = delegation_manager(ctx).cleanup_expired_agents()
    rows = [{"agent_id": r["agent_id"], "agent_type": r["agent_type"],
             "last_heartbeat": r["last_heartbeat"], "running_tasks": r["running_tasks"]}
            for r in removed]
    if output == "table" and not rows:
        click.echo("no expired agents")
        return
    render(rows, output, title="removed expired agents")
