"""Helpers shared by CLI commands: building the engine face, showing run progress."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import click

from devcrew_core.cli.output import render


def cached_face(ctx: click.Context, name: str, build: Any) -> Any:
    """One face of each kind per CLI invocation, built from the root options and closed
    when the command ends."""
    root = ctx.find_root()
    if not isinstance(root.obj, dict):
        root.obj = {}
    if name not in root.obj:
        face = build(config_file=root.params.get("config_file"))
        root.obj[name] = face
        root.call_on_close(face.close)
    return root.obj[name]


def orchestrator(ctx: click.Context) -> Any:
    """A :class:`TaskOrchestrator` configured from the root options (``--config``)."""
    from devcrew_core.orchestrator import TaskOrchestrator

    return cached_face(ctx, "orchestrator", TaskOrchestrator)


def delegation_manager(ctx: click.Context) -> Any:
    """A :class:`DelegationManager` configured from the root options (``--config``)."""
    from devcrew_core.delegation import DelegationManager

    return cached_face(ctx, "delegation", DelegationManager)


def csv_list(value: str | None) -> list[str]:
    """``"a, b,c"`` -> ``["a", "b", "c"]`` (empty items dropped)."""
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def json_option(value: str | None, option: str) -> Any:
    """Parse a JSON option value, or fail naming the option and the value."""
    import json

    if value is None:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON ({exc.msg} at column {exc.colno}): "
                                 f"{value!r}", param_hint=option) from None


FINISHED_RUN = frozenset({"completed", "failed", "cancelled"})
STATE_ORDER = ("pending", "waiting", "running", "completed", "failed", "skipped", "cancelled")
STATE_STYLE = {"running": "cyan", "waiting": "yellow", "completed": "green", "failed": "red",
               "skipped": "magenta", "cancelled": "red"}


def progress_table(doc: dict[str, Any], started: float) -> Any:
    """A rich renderable: tasks by state, elapsed time, and the active tasks."""
    from rich.table import Table

    counts = Counter(task["status"] for task in doc["tasks"])
    summary = "  ".join(
        f"[{STATE_STYLE.get(s, 'white')}]{s} {counts[s]}[/]" for s in STATE_ORDER if counts[s]
    )
    elapsed = time.monotonic() - started
    table = Table(title=f"{doc['workflow_id']}  run {doc['run_id']}  {doc['status']}  "
                        f"{elapsed:.1f}s", caption=summary, expand=False)
    for column in ("task", "status", "attempt", "agent", "error"):
        table.add_column(column, overflow="fold")
    for task in doc["tasks"]:
        style = STATE_STYLE.get(task["status"], "")
        table.add_row(task["task_id"], f"[{style}]{task['status']}[/]" if style else
                      task["status"], str(task["attempt"]), task["agent_id"] or "-",
                      (task["error"] or "")[:120])
    return table


def follow(face: Any, run_id: str, refresh: float, quiet: bool,
           done: Any = None) -> dict[str, Any]:
    """Show live progress of a run (from the store, so it works from any process) until it
    finishes, or until ``done()`` is true; returns the final status document."""
    from rich.console import Console
    from rich.live import Live

    started = time.monotonic()
    doc: dict[str, Any] = face.get_workflow_status(run_id)
    if quiet:
        while doc["status"] not in FINISHED_RUN and not (done and done()):
            time.sleep(refresh)
            doc = face.get_workflow_status(run_id)
        final: dict[str, Any] = face.get_workflow_status(run_id)
        return final
    console = Console(stderr=True)
    with Live(progress_table(doc, started), console=console, refresh_per_second=4,
              transient=False) as live:
        while doc["status"] not in FINISHED_RUN and not (done and done()):
            time.sleep(refresh)
            doc = face.get_workflow_status(run_id)
            live.update(progress_table(doc, started))
        doc = face.get_workflow_status(run_id)
        live.update(progress_table(doc, started))
    return doc


def show_summary(doc: dict[str, Any], output: str) -> None:
    """Print a run's final document: the whole dict for json/yaml, a table otherwise."""
    if output != "table":
        render(doc, output)
        return
    keys = ("workflow_id", "run_id", "status", "tasks_total", "tasks_completed",
            "tasks_failed", "tasks_skipped", "tasks_cancelled", "duration_seconds", "error")
    render({k: doc[k] for k in keys}, "table")
