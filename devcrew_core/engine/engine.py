"""The one engine behind ``TaskOrchestrator``, ``WorkflowEngine`` and the CLI.

It owns the stores, the executor and the agent matcher; stores workflow definitions,
registers agents, creates runs, executes and resumes them, and answers status queries
from any process that shares the store.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import hashlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from datetime import datetime, timezone
from typing import Any, TypeVar

from devcrew_core.config import Settings, load_settings
from devcrew_core.engine.dag import validate_dag
from devcrew_core.engine.matching import AgentMatcher
from devcrew_core.engine.report import run_document
from devcrew_core.engine.resources import ResourceDefaults
from devcrew_core.engine.run import FailurePolicy, RunOptions, WorkflowRun, slot_key
from devcrew_core.errors import DefinitionError, NotFoundError, StoreError, UsageError
from devcrew_core.ids import validate_id
from devcrew_core.models import AgentSpec, ExecutionMode, Workflow
from devcrew_core.plugin_types import Notification
from devcrew_core.plugins import PluginManager, get_plugin_manager, resolve_ref
from devcrew_core.stores import open_store
from devcrew_core.stores.base import Store
from devcrew_core.stores.records import (
    AgentRecord,
    RunRecord,
    RunStatus,
    TaskState,
    TaskStatus,
    WorkflowDefinition,
)

T = TypeVar("T")
logger = logging.getLogger("devcrew.engine")

#: How long the engine trusts its cached view of eligible agents (loads are tracked).
MATCHER_CACHE_SECONDS = 0.5
#: A run whose heartbeat is older than this many heartbeat intervals is presumed dead.
STALE_HEARTBEATS = 3
#: Parsed workflow snapshots an engine keeps (they are immutable, so never stale).
DEFINITION_CACHE_SIZE = 64


_gc_lock = threading.Lock()
_gc_users = 0
_gc_saved: tuple[int, int, int] | None = None
#: While a run executes, the cyclic GC's first generation waits for this many new
#: objects instead of 700: a 10,000-task run otherwise spends a third of its time
#: walking its own live tasks and futures (see docs/performance.md).
GC_GEN0_THRESHOLD = 50_000


@contextlib.contextmanager
def relaxed_gc() -> Iterator[None]:
    """Raise the GC's generation-0 threshold while at least one run executes; the
    previous thresholds come back when the last run in the process ends."""
    global _gc_users, _gc_saved
    with _gc_lock:
        if _gc_users == 0:
            _gc_saved = gc.get_threshold()
            gc.set_threshold(max(GC_GEN0_THRESHOLD, _gc_saved[0]), *_gc_saved[1:])
        _gc_users += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_users -= 1
            if _gc_users == 0 and _gc_saved is not None:
                gc.set_threshold(*_gc_saved)


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from synchronous code, even inside a running loop
    (e.g. Jupyter), by using a private thread in that case."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def snapshot_id(document: str) -> str:
    """The ID of a workflow snapshot: a digest of its JSON document."""
    return "wf-" + hashlib.blake2b(document.encode(), digest_size=16).hexdigest()


def new_run_id(workflow_id: str) -> str:
    """A readable, unique run ID: ``<workflow_id>.<UTC time>.<random>``."""
    stamp = datetime.now(tz=timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"{workflow_id[:96]}.{stamp}.{uuid.uuid4().hex[:6]}"


class Engine:
    """Definitions, agents and runs over one state store and one audit store."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        state_store: Store | None = None,
        audit_store: Store | None = None,
        plugins: PluginManager | None = None,
        executor: Any = None,
    ) -> None:
        self.settings = settings or load_settings()
        self.plugins = plugins or get_plugin_manager()
        state_url = str(self.settings.state_url)
        audit_url = str(self.settings.audit_url)
        self.state_store = state_store or open_store(state_url, self.settings, self.plugins)
        if audit_store is not None:
            self.audit_store = audit_store
        elif state_store is None and audit_url == state_url:
            self.audit_store = self.state_store
        elif state_store is not None and audit_url == state_url:
            self.audit_store = state_store
        else:
            self.audit_store = open_store(audit_url, self.settings, self.plugins)
        if executor is None:
            record = self.plugins.executor(self.settings.executor)
            factory = resolve_ref(record.factory, owner=f"executor {record.name!r}")
            executor = factory(self.settings, self.plugins)
        self.executor = executor
        self.matcher = AgentMatcher(self.state_store, self.plugins.scorer(self.settings.scorer),
                                    cache_seconds=MATCHER_CACHE_SECONDS)
        self._definitions: dict[str, Workflow] = {}
        #: Agents registered through this engine: its runs keep them alive.
        self.own_agents: set[str] = set()

    def close(self) -> None:
        """Close the executor and the stores."""
        close = getattr(self.executor, "close", None)
        if callable(close):
            close()
        self.state_store.close()
        if self.audit_store is not self.state_store:
            self.audit_store.close()

    # -- definitions and agents -------------------------------------------------------
    def save_workflow(self, workflow: Workflow) -> str:
        """Validate the DAG and store the definition (replacing an older one)."""
        validate_dag(workflow)
        self.state_store.put_workflow(WorkflowDefinition(
            workflow_id=workflow.workflow_id,
            definition=workflow.model_dump(mode="json"),
        ))
        return workflow.workflow_id

    def load_workflow(self, workflow_id: str) -> Workflow:
        """The stored definition of ``workflow_id``."""
        validate_id(workflow_id, "workflow_id")
        stored = self.state_store.get_workflow(workflow_id)
        if stored is None:
            raise NotFoundError(
                f"workflow {workflow_id!r} does not exist; create it first "
                "(devcrew workflow create --file FILE)"
            )
        return Workflow.model_validate(stored.definition)

    def register_agent(self, spec: AgentSpec, runner: Any = None) -> AgentRecord:
        """Register (or re-register) an agent. ``runner`` may be a Python callable that
        lives in this process; its declaration then says so."""
        declaration = spec.runner
        if runner is not None:
            if declaration is not None:
                raise DefinitionError(
                    f"agent {spec.agent_id!r}: give either runner= or a runner declaration"
                )
            if isinstance(runner, (str, dict)):
                declaration = ({"kind": "python", "callable": runner}
                               if isinstance(runner, str) else dict(runner))
            else:
                from devcrew_core.runners.python import register_local_callable

                declaration = register_local_callable(spec.agent_id, runner)
        existing = self.state_store.get_agent(spec.agent_id)
        now = time.time()
        record = AgentRecord(
            **spec.model_dump(exclude={"runner"}),
            runner=declaration,
            registered_at=existing.registered_at if existing else now,
            last_heartbeat=now,
            expires_at=now + self.settings.agent_ttl_seconds,
        )
        if declaration is not None:
            # Refuse a runner that cannot be built before anything is stored.
            self.plugins.build_runner(declaration)
        self.state_store.put_agent(record)
        self.own_agents.add(record.agent_id)
        self.matcher.invalidate()
        return record

    def heartbeat_agent(self, agent_id: str) -> AgentRecord | None:
        """Extend an agent's TTL from now; None if it is not registered."""
        validate_id(agent_id, "agent_id")
        now = time.time()
        return self.state_store.update_agent(agent_id, {
            "last_heartbeat": now, "expires_at": now + self.settings.agent_ttl_seconds})

    def heartbeat_own_agents(self) -> None:
        """Heartbeat every agent this engine registered (runs do this periodically, so
        the agents of a live process never expire); forget those deregistered since."""
        for agent_id in sorted(self.own_agents):
            if self.heartbeat_agent(agent_id) is None:
                self.own_agents.discard(agent_id)

    # -- runs ------------------------------------------------------------------------------
    def create_run(self, workflow_id: str, options: RunOptions | None = None) -> RunRecord:
        """Create a pending run of a stored workflow (a snapshot of its definition)."""
        return self._new_run(self.load_workflow(workflow_id), options)

    def _new_run(self, workflow: Workflow, options: RunOptions | None) -> RunRecord:
        opts = options or self.default_options()
        # The definition is kept once per distinct content and the run refers to it, so
        # the run record stays small however large the workflow.
        document = workflow.model_dump_json()
        snapshot = snapshot_id(document)
        self.state_store.put_snapshot(snapshot, document)
        self._definitions[snapshot] = workflow
        run = RunRecord(
            run_id=new_run_id(workflow.workflow_id),
            workflow_id=workflow.workflow_id,
            data={
                "snapshot": snapshot,
                "mode": ExecutionMode(opts.mode).value,
                "failure_policy": FailurePolicy(opts.failure_policy).value,
            },
        )
        # No task states yet: a task without a stored state is pending, which saves a
        # write per task (readers fill the gaps, see _states_of).
        self.state_store.create_run(run)
        return run

    def default_options(self, **changes: Any) -> RunOptions:
        """Run options from the settings, with ``changes`` applied."""
        base = RunOptions(task_timeout=self.settings.task_timeout_default,
                          workflow_timeout=self.settings.workflow_timeout_default,
                          resources=ResourceDefaults(
                              cpu_cores=self.settings.default_cpu_cores,
                              memory_mb=self.settings.default_memory_mb,
                              aging_seconds=self.settings.resource_aging_seconds))
        clean = {k: v for k, v in changes.items() if v is not None}
        return RunOptions(**{**base.__dict__, **clean})

    def _options_of(self, run: RunRecord, options: RunOptions | None) -> RunOptions:
        if options is not None:
            return options
        return self.default_options(
            mode=ExecutionMode(run.data.get("mode", "parallel")),
            failure_policy=FailurePolicy(run.data.get("failure_policy", "fail-fast")),
        )

    async def execute_run(self, run_id: str, options: RunOptions | None = None) -> RunRecord:
        """Execute a pending (or resumable) run to its end."""
        with relaxed_gc():
            return await self._execute_run(run_id, options)

    async def _execute_run(self, run_id: str, options: RunOptions | None) -> RunRecord:
        run = self.get_run(run_id)
        workflow = self.definition_of(run)
        return await self._run_workflow(run, workflow, self._states_of(run, workflow), options)

    async def _run_workflow(self, run: RunRecord, workflow: Workflow,
                            states: dict[str, TaskState],
                            options: RunOptions | None) -> RunRecord:
        executor = WorkflowRun(
            run=run, workflow=workflow, states=states, state_store=self.state_store,
            audit_store=self.audit_store, matcher=self.matcher, executor=self.executor,
            options=self._options_of(run, options), notify=self._notify,
            beat_agents=self.heartbeat_own_agents,
            agent_beat_interval=self.settings.agent_heartbeat_interval,
        )
        return await executor.execute()

    def definition_of(self, run: RunRecord) -> Workflow:
        """The workflow definition a run executes (its snapshot, taken at creation)."""
        if "workflow" in run.data:  # runs created before snapshots carried it inline
            return Workflow.model_validate(run.data["workflow"])
        snapshot = run.data.get("snapshot")
        if not isinstance(snapshot, str):
            raise StoreError(f"run {run.run_id!r} names no workflow snapshot")
        cached = self._definitions.get(snapshot)
        if cached is not None:
            return cached
        document = self.state_store.get_snapshot(snapshot)
        if document is None:
            raise StoreError(f"run {run.run_id!r}: its workflow snapshot {snapshot!r} is "
                             f"missing from {self.state_store.url}")
        workflow = Workflow.model_validate_json(document)
        if len(self._definitions) >= DEFINITION_CACHE_SIZE:
            self._definitions.pop(next(iter(self._definitions)))
        self._definitions[snapshot] = workflow  # immutable: safe to keep
        return workflow

    def _states_of(self, run: RunRecord, workflow: Workflow) -> dict[str, TaskState]:
        """Every task's state in workflow order; tasks with none stored are pending."""
        stored = {s.task_id: s for s in self.state_store.get_task_states(run.run_id)}
        return {t.task_id: stored.get(t.task_id) or TaskState(run_id=run.run_id,
                                                               task_id=t.task_id)
                for t in workflow.tasks}

    def execute(self, workflow_id: str, options: RunOptions | None = None) -> RunRecord:
        """Create a run of ``workflow_id`` and execute it (blocking)."""
        workflow = self.load_workflow(workflow_id)
        run = self._new_run(workflow, options)
        # A new run: its definition is the one just loaded and every task is pending, so
        # nothing is read back from the store.
        states = {t.task_id: TaskState(run_id=run.run_id, task_id=t.task_id)
                  for t in workflow.tasks}

        async def go() -> RunRecord:
            with relaxed_gc():
                return await self._run_workflow(run, workflow, states, options)

        return run_sync(go())

    def resume(self, run_or_workflow_id: str, force: bool = False) -> RunRecord:
        """Continue a run whose process died: completed tasks stay completed, every other
        task (including those that were running) runs again under a new attempt."""
        run = self.prepare_resume(run_or_workflow_id, force=force)
        return run_sync(self.execute_run(run.run_id))

    def prepare_resume(self, run_or_workflow_id: str, force: bool = False) -> RunRecord:
        """Check that a run may be resumed and reset its unfinished tasks to pending."""
        run = self.get_run(run_or_workflow_id)
        if run.status is RunStatus.COMPLETED:
            raise UsageError(f"run {run.run_id!r} already completed; nothing to resume")
        if run.status is RunStatus.RUNNING and not force and self._looks_alive(run):
            owner = run.data.get("owner", {})
            raise UsageError(
                f"run {run.run_id!r} is still running (host {owner.get('host')}, pid "
                f"{owner.get('pid')}); cancel it first, or pass --force if that process "
                "is gone"
            )
        states = self.state_store.get_task_states(run.run_id)
        self._free_slots_of(run)
        reset = [
            s.model_copy(update={"status": TaskStatus.PENDING, "updated_at": time.time()})
            for s in states if s.status is not TaskStatus.COMPLETED
        ]
        self.state_store.put_task_states(reset)
        updated = self.state_store.update_run(run.run_id, {
            "status": RunStatus.PENDING, "error": None, "completed_at": None,
            "cancel_requested": False,
        })
        assert updated is not None
        return updated

    def _free_slots_of(self, run: RunRecord) -> None:
        """Free every load slot, allocation and wait a dead process left for ``run``.

        Slot IDs are per run and task, so this cannot touch another run's slots. Every
        busy agent is asked, not only those named in task states: a slot taken (or
        handed over) just before the crash may not have its task's state written yet.
        """
        keys = {slot_key(run.run_id, task.task_id) for task in self.definition_of(run).tasks}
        held: list[tuple[str, str]] = []
        for agent in self.state_store.list_agents():
            if agent.current_load:
                full = self.state_store.get_agent(agent.agent_id)
                held += [(agent.agent_id, key) for key in (full.running_tasks if full else [])
                         if key in keys]
        if held:
            self.state_store.release_slots(held)
        for allocation in self.state_store.list_allocations():
            if allocation.task_id in keys:
                self.state_store.release_allocation(allocation.agent_id, allocation.task_id)
        for wait in self.state_store.list_waits():
            if wait.task_id in keys:
                self.state_store.delete_wait(wait.agent_id, wait.task_id)

    def _looks_alive(self, run: RunRecord) -> bool:
        owner = run.data.get("owner") or {}
        if owner.get("host") == socket.gethostname() and isinstance(owner.get("pid"), int):
            try:
                os.kill(owner["pid"], 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                return True
            return True
        beat = run.data.get("heartbeat")
        interval = RunOptions().heartbeat_interval
        return isinstance(beat, (int, float)) and time.time() - beat < (
            STALE_HEARTBEATS * interval)

    def cancel(self, run_or_workflow_id: str) -> bool:
        """Ask a run to stop; the process executing it stops its attempts within a poll
        interval. A run that has not started is cancelled at once. False if finished."""
        run = self.get_run(run_or_workflow_id)
        if run.status in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED):
            return False
        if run.status is RunStatus.PENDING:
            states = self._states_of(run, self.definition_of(run))
            self.state_store.put_task_states([
                s.model_copy(update={"status": TaskStatus.CANCELLED, "error": "cancelled"})
                for s in states.values() if s.status is not TaskStatus.COMPLETED
            ])
            self.state_store.update_run(run.run_id, {
                "status": RunStatus.CANCELLED, "cancel_requested": True,
                "completed_at": time.time(), "error": "cancelled on request"})
            return True
        self.state_store.update_run(run.run_id, {"cancel_requested": True})
        return True

    # -- queries ---------------------------------------------------------------------------
    def get_run(self, run_or_workflow_id: str) -> RunRecord:
        """A run by run ID, or the latest run of a workflow ID."""
        validate_id(run_or_workflow_id, "id")
        run = self.state_store.get_run(run_or_workflow_id)
        if run is not None:
            return run
        runs = self.state_store.list_runs(workflow_id=run_or_workflow_id)
        if runs:
            return runs[-1]
        if self.state_store.get_workflow(run_or_workflow_id) is not None:
            raise NotFoundError(
                f"workflow {run_or_workflow_id!r} has not been started yet "
                f"(devcrew workflow start --id {run_or_workflow_id})"
            )
        raise NotFoundError(f"no run or workflow with ID {run_or_workflow_id!r}")

    def status(self, run_or_workflow_id: str) -> dict[str, Any]:
        """The status document of a run (or of a workflow's latest run)."""
        run = self.get_run(run_or_workflow_id)
        return self.document(run)

    def document(self, run: RunRecord) -> dict[str, Any]:
        """The status document of ``run``, tasks in the workflow's order."""
        states = {s.task_id: s for s in self.state_store.get_task_states(run.run_id)}
        order = [t.task_id for t in self.definition_of(run).tasks]
        ordered = [states.get(t) or TaskState(run_id=run.run_id, task_id=t) for t in order]
        known = set(order)
        ordered += [s for t, s in sorted(states.items()) if t not in known]
        return run_document(run, ordered)

    # -- notifications ---------------------------------------------------------------------
    def _notify(self, workflow: Workflow, run: RunRecord) -> None:
        event = "on_complete" if run.status is RunStatus.COMPLETED else "on_failure"
        recipients = tuple(workflow.notification.get(event, ()))
        if not recipients:
            return
        note = Notification(
            event=event, recipients=recipients, workflow_id=workflow.workflow_id,
            subject=f"workflow {workflow.workflow_id} {run.status.value}",
            payload={"run_id": run.run_id, "status": run.status.value, "error": run.error},
        )
        for notifier in self.plugins.notifiers().values():
            chosen = tuple(r for r in recipients if notifier.accepts is None or notifier.accepts(r))
            if chosen:
                try:
                    notifier.notify(Notification(**{**note.__dict__, "recipients": chosen}))
                except Exception as exc:  # a broken notifier must not fail the run
                    logger.warning("notifier %r failed: %s", notifier.name, exc)
