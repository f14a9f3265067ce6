"""``devcrew run`` and the ``devcrew workflow`` commands."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any

import click

from devcrew_core.cli.common import follow, orchestrator, show_summary
from devcrew_core.cli.groups import workflow
from devcrew_core.cli.output import output_option, render

MODES = click.Choice(["parallel", "sequential"], case_sensitive=False)
POLICIES = click.Choice(["fail-fast", "continue"], case_sensitive=False)


def _register_file(face: Any, file: str, crews: tuple[str, ...]) -> Any:
    """Load crew files and a workflow file; register their agents; store the workflow."""
    from devcrew_core.engine.definition import load_crew, load_definition

    definition = load_definition(file)
    agents = [agent for crew in crews for agent in load_crew(crew)] + list(definition.agents)
    for agent in agents:
        face.engine.register_agent(agent)
    face.create_workflow(definition.workflow)
    return definition.workflow, agents


def _execute_with_progress(face: Any, run_id: str, quiet: bool, options: Any) -> dict[str, Any]:
    """Execute a run in a worker thread while this thread shows its progress."""
    from devcrew_core.engine.engine import run_sync

    failure: list[BaseException] = []

    def work() -> None:
        try:
            run_sync(face.engine.execute_run(run_id, options))
        except BaseException as exc:  # reported in the main thread
            failure.append(exc)

    worker = threading.Thread(target=work, name=f"devcrew-run-{run_id}", daemon=True)
    worker.start()
    doc = follow(face, run_id, refresh=0.25, quiet=quiet, done=lambda: not worker.is_alive())
    worker.join()
    if failure:
        raise failure[0]
    return doc


def _exit_for(doc: dict[str, Any]) -> None:
    if doc["status"] != "completed":
        sys.exit(1)


@click.command("run")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--crew", "crews", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="A crew file with more agents (repeatable).")
@click.option("--mode", type=MODES, default="parallel", show_default=True,
              help="Run ready tasks in parallel or one at a time.")
@click.option("--failure-policy", type=POLICIES, default="fail-fast", show_default=True,
              help="fail-fast stops the run at the first failed task; continue keeps "
                   "independent branches running.")
@click.option("--quiet", "-q", is_flag=True, help="No live progress, only the result.")
@output_option()
@click.pass_context
def run_command(ctx: click.Context, file: str, crews: tuple[str, ...], mode: str,
                failure_policy: str, quiet: bool, output: str) -> None:
    """Create and run the workflow in FILE with the agents it (and --crew) declares.

    Shows live progress, then the result. Exits 0 only if the workflow completed.
    """
    face = orchestrator(ctx)
    workflow_def, _ = _register_file(face, file, crews)
    options = face.engine.default_options(mode=mode, failure_policy=failure_policy)
    run = face.engine.create_run(workflow_def.workflow_id, options)
    doc = _execute_with_progress(face, run.run_id, quiet, options)
    show_summary(doc, output)
    _exit_for(doc)


@workflow.command("create")
@click.option("--file", "file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Workflow definition (YAML or JSON).")
@click.option("--crew", "crews", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="A crew file with more agents (repeatable).")
@output_option()
@click.pass_context
def create(ctx: click.Context, file: str, crews: tuple[str, ...], output: str) -> None:
    """Validate a workflow file, register the agents it declares, and store it."""
    workflow_def, agents = _register_file(orchestrator(ctx), file, crews)
    render({
        "workflow_id": workflow_def.workflow_id,
        "name": workflow_def.name,
        "tasks": len(workflow_def.tasks),
        "agents_registered": [a.agent_id for a in agents],
    }, output)


@workflow.command("start")
@click.option("--id", "workflow_id", required=True, help="Workflow ID.")
@click.option("--priority", type=click.Choice(["low", "medium", "high", "critical"],
                                              case_sensitive=False),
              help="Override the workflow's priority for this run.")
@click.option("--mode", type=MODES, default="parallel", show_default=True)
@click.option("--failure-policy", type=POLICIES, default="fail-fast", show_default=True)
@click.option("--detach", is_flag=True,
              help="Run in a background process and return the run ID at once.")
@click.option("--quiet", "-q", is_flag=True, help="No live progress.")
@output_option()
@click.pass_context
def start(ctx: click.Context, workflow_id: str, priority: str | None, mode: str,
          failure_policy: str, detach: bool, quiet: bool, output: str) -> None:
    """Start a run of a stored workflow (in the foreground unless --detach)."""
    face = orchestrator(ctx)
    if priority:
        stored = face.engine.load_workflow(workflow_id)
        face.create_workflow(stored.model_copy(update={"priority": priority}))
    options = face.engine.default_options(mode=mode, failure_policy=failure_policy)
    run = face.engine.create_run(workflow_id, options)
    if detach:
        _spawn_background(ctx, run.run_id)
        render({"workflow_id": workflow_id, "run_id": run.run_id, "status": "started"},
               output)
        return
    doc = _execute_with_progress(face, run.run_id, quiet, options)
    show_summary(doc, output)
    _exit_for(doc)


def _spawn_background(ctx: click.Context, run_id: str) -> None:
    args = [sys.executable, "-m", "devcrew_core"]
    config = ctx.find_root().params.get("config_file")
    if config:
        args += ["--config", str(config)]
    args += ["workflow", "execute-run", "--run-id", run_id]
    # A new session, so the run survives the terminal that started it.
    import subprocess  # only here: keeps `devcrew --version` light

    subprocess.Popen(args, start_new_session=True, stdin=subprocess.DEVNULL,  # noqa: S603
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     env=dict(os.environ))


@workflow.command("execute-run", hidden=True)
@click.option("--run-id", required=True)
@click.pass_context
def execute_run(ctx: click.Context, run_id: str) -> None:
    """Execute an already created run (used by ``start --detach``)."""
    from devcrew_core.engine.engine import run_sync

    face = orchestrator(ctx)
    run = run_sync(face.engine.execute_run(run_id))
    _exit_for(face.engine.document(run))


@workflow.command("status")
@click.option("--id", "run_id", required=True, help="Run ID, or workflow ID for its latest run.")
@output_option()
@click.pass_context
def status(ctx: click.Context, run_id: str, output: str) -> None:
    """Status of a run and of each of its tasks."""
    doc = orchestrator(ctx).get_workflow_status(run_id)
    if output != "table":
        render(doc, output)
        return
    show_summary(doc, "table")
    render(doc["tasks"], "table",
           columns=("task_id", "status", "attempt", "agent_id", "duration_seconds", "error"))


@workflow.command("monitor")
@click.option("--id", "run_id", required=True, help="Run ID, or workflow ID for its latest run.")
@click.option("--refresh", type=click.FloatRange(min=0.05), default=2.0, show_default=True,
              help="Seconds between refreshes.")
@output_option()
@click.pass_context
def monitor(ctx: click.Context, run_id: str, refresh: float, output: str) -> None:
    """Follow a run live until it finishes (exit 0 only if it completed)."""
    face = orchestrator(ctx)
    doc = follow(face, face.engine.get_run(run_id).run_id, refresh=refresh,
                 quiet=output != "table")
    show_summary(doc, output)
    _exit_for(doc)


@workflow.command("list")
@click.option("--status", "status_filter",
              type=click.Choice(["pending", "running", "completed", "failed", "cancelled"]),
              help="Only runs in this state.")
@output_option()
@click.pass_context
def list_runs(ctx: click.Context, status_filter: str | None, output: str) -> None:
    """List workflow runs, oldest first."""
    rows = orchestrator(ctx).list_workflows(status=status_filter)
    render(rows, output, columns=("workflow_id", "run_id", "status", "tasks_total",
                                  "tasks_completed", "tasks_failed", "started_at",
                                  "duration_seconds"))


@workflow.command("cancel")
@click.option("--id", "run_id", required=True, help="Run ID, or workflow ID for its latest run.")
@click.option("--confirm", is_flag=True, help="Do not ask for confirmation.")
@output_option()
@click.pass_context
def cancel(ctx: click.Context, run_id: str, confirm: bool, output: str) -> None:
    """Cancel a run; the process executing it stops its running attempts."""
    face = orchestrator(ctx)
    run = face.engine.get_run(run_id)
    if not confirm:
        click.confirm(f"Cancel run {run.run_id} of workflow {run.workflow_id}?", abort=True)
    cancelled = face.cancel_workflow(run.run_id)
    render({"run_id": run.run_id, "cancelled": cancelled,
            "status": face.engine.get_run(run.run_id).status.value}, output)
    if not cancelled:
        sys.exit(1)


@workflow.command("result")
@click.option("--id", "run_id", required=True, help="Run ID, or workflow ID for its latest run.")
@output_option(default="json")
@click.pass_context
def result(ctx: click.Context, run_id: str, output: str) -> None:
    """The outputs of a run's tasks."""
    doc = orchestrator(ctx).get_workflow_status(run_id)
    render({k: doc[k] for k in ("workflow_id", "run_id", "status", "error", "results")}, output)


@workflow.command("export")
@click.option("--id", "workflow_id", required=True, help="Workflow ID.")
@click.option("--output", "-o", "destination", type=click.Path(dir_okay=False),
              help="File to write (YAML, or JSON for a .json name); stdout if omitted.")
@click.pass_context
def export(ctx: click.Context, workflow_id: str, destination: str | None) -> None:
    """Export a stored workflow definition in the spec's YAML format."""
    import json

    from devcrew_core.engine.definition import workflow_to_document

    document = workflow_to_document(orchestrator(ctx).engine.load_workflow(workflow_id))
    if destination and destination.endswith(".json"):
        text = json.dumps(document, indent=2) + "\n"
    else:
        import yaml

        text = yaml.safe_dump(document, sort_keys=False)
    if destination:
        Path(destination).write_text(text, encoding="utf-8")
        click.echo(f"exported {workflow_id} to {destination}", err=True)
    else:
        click.echo(text, nl=False)


@workflow.command("resume")
@click.option("--id", "run_id", required=True, help="Run ID, or workflow ID for its latest run.")
@click.option("--force", is_flag=True,
              help="Resume even if the run's process still looks alive.")
@click.option("--quiet", "-q", is_flag=True, help="No live progress.")
@output_option()
@click.pass_context
def resume(ctx: click.Context, run_id: str, force: bool, quiet: bool, output: str) -> None:
    """Continue a run whose process died; completed tasks are not run again."""
    face = orchestrator(ctx)
    run = face.engine.prepare_resume(run_id, force=force)
    doc = _execute_with_progress(face, run.run_id, quiet, None)
    show_summary(doc, output)
    _exit_for(doc)
