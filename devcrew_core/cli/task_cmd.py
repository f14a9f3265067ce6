"""The ``devcrew task`` commands: delegate tasks to the best agent and complete them."""

from __future__ import annotations

from typing import Any

import click

from devcrew_core.cli.common import csv_list, delegation_manager, json_option
from devcrew_core.cli.groups import task
from devcrew_core.cli.output import output_option, render
from devcrew_core.errors import DefinitionError, NotFoundError

PRIORITIES = click.Choice(["low", "medium", "high", "critical"], case_sensitive=False)
LIST_COLUMNS = ("task_id", "agent_id", "status", "task_type", "priority", "delegated_at",
                "completed_at")


def _request(**fields: Any) -> Any:
    # Imported here: `devcrew --version` must not pay for pydantic.
    from pydantic import ValidationError

    from devcrew_core.models import TaskRequest
    from devcrew_core.validation import describe_validation_error

    try:
        return TaskRequest(**{k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        raise DefinitionError(describe_validation_error(exc, prefix="task request")) from exc


@task.command("delegate")
@click.option("--task-id", required=True, help="Unique task ID.")
@click.option("--type", "task_type", required=True, help="Task type, e.g. model-training.")
@click.option("--capabilities", default="", help="Comma-separated required capabilities.")
@click.option("--agent-type", help="Only agents of this type.")
@click.option("--exclude", default="", help="Comma-separated agent IDs not to use.")
@click.option("--priority", type=PRIORITIES, default="medium", show_default=True)
@click.option("--duration", type=click.FloatRange(min=0), help="Estimated seconds.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), help="Seconds.")
@click.option("--context", help="Task context as a JSON object.")
@output_option()
@click.pass_context
def delegate(ctx: click.Context, task_id: str, task_type: str, capabilities: str,
             agent_type: str | None, exclude: str, priority: str, duration: float | None,
             timeout: float | None, context: str | None, output: str) -> None:
    """Delegate a task to the best available agent (a slot is taken atomically; exit 1
    when no eligible agent has room)."""
    ctx_data = json_option(context, "--context")
    if ctx_data is not None and not isinstance(ctx_data, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--context")
    request = _request(task_id=task_id, task_type=task_type,
                       required_capabilities=csv_list(capabilities), priority=priority,
                       estimated_duration=duration, timeout=timeout, context=ctx_data,
                       required_agent_type=agent_type, exclude_agents=csv_list(exclude))
    result = delegation_manager(ctx).delegate_task(request)
    render(result, output, title=f"delegated {task_id}")


@task.command("find-agent")
@click.option("--capabilities", default="", help="Comma-separated required capabilities.")
@click.option("--type", "agent_type", help="Only agents of this type.")
@click.option("--exclude", default="", help="Comma-separated agent IDs not to use.")
@output_option()
@click.pass_context
def find_agent(ctx: click.Context, capabilities: str, agent_type: str | None, exclude: str,
               output: str) -> None:
    """Show the agent a task with these needs would go to now (nothing is delegated;
    exit 1 when no agent fits)."""
    request = _request(task_id="find-agent", task_type=agent_type or "any",
                       required_capabilities=csv_list(capabilities),
                       required_agent_type=agent_type, exclude_agents=csv_list(exclude))
    match = delegation_manager(ctx).find_best_agent(request)
    if match is None:
        caps = ", ".join(request.required_capabilities) or "none"
        kind = f" of type {agent_type!r}" if agent_type else ""
        raise NotFoundError(f"no available agent{kind} with capabilities [{caps}] has a "
                            "free slot")
    render(match.model_dump(mode="json"), output, title="best agent")


@task.command("complete")
@click.option("--agent-id", required=True, help="The agent the task was delegated to.")
@click.option("--task-id", required=True, help="Task ID.")
@click.pass_context
def complete(ctx: click.Context, agent_id: str, task_id: str) -> None:
    """Mark a delegated task complete and free its slot (a repeat changes nothing)."""
    if delegation_manager(ctx).complete_task(agent_id, task_id):
        click.echo(f"completed {task_id} on {agent_id}")
    else:
        click.echo(f"{task_id} was already completed on {agent_id}")


@task.command("list")
@click.option("--status", type=click.Choice(["active", "completed", "all"]), default="all",
              show_default=True, help="Only delegations in this state.")
@click.option("--agent-id", help="Only tasks delegated to this agent.")
@output_option()
@click.pass_context
def list_tasks(ctx: click.Context, status: str, agent_id: str | None, output: str) -> None:
    """List delegated tasks, oldest first."""
    rows = delegation_manager(ctx).list_delegations(
        agent_id=agent_id, status=None if status == "all" else status)
    render(rows, output, columns=LIST_COLUMNS, title="delegated tasks")


@task.command("status")
@click.option("--task-id", required=True, help="Task ID.")
@output_option()
@click.pass_context
def status(ctx: click.Context, task_id: str, output: str) -> None:
    """Show one delegated task: agent, score, state, times, context."""
    record = delegation_manager(ctx).get_delegation(task_id)
    if record is None:
        raise NotFoundError(f"task {task_id!r} was never delegated (devcrew task list)")
    render(record, output, title=task_id)
