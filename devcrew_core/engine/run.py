"""Executing one workflow run: the scheduler.

One asyncio loop per run. A task starts as soon as all its dependencies completed (in
PARALLEL mode as many at once as the DAG and the agents' ``max_concurrent_tasks``
allow; in SEQUENTIAL mode one at a time, in topological order). Each attempt:

1. claims a load slot on the best eligible agent (waiting, bounded by the task timeout,
   while every eligible agent is busy; failing at once when no agent could ever run it);
2. runs on the executor under the task's timeout (a timeout really stops the attempt);
3. releases the slot, then either completes the task, or retries it with the policy's
   backoff, or fails it.

A failed task either stops the run (``fail-fast``: running attempts are cancelled, tasks
not yet started are skipped) or only skips its dependants (``continue``). Every
transition is persisted in batches through :class:`TransitionWriter`; the run record is
polled for a cancel request from another process and carries a heartbeat, so a resumer
can tell a crashed run from a live one. Later features (conditional branches, dynamic
tasks, approval gates) plug in as new task states and new ways to compute "ready"
inside this one loop.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import heapq
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from devcrew_core.engine.dag import dependants, descendants, validate_dag
from devcrew_core.engine.matching import AgentMatcher, Claim
from devcrew_core.engine.persistence import TransitionWriter, call_store
from devcrew_core.engine.resources import ResourceDefaults, ResourceGate
from devcrew_core.engine.run_resources import RunResources
from devcrew_core.engine.slots import SlotBatcher
from devcrew_core.errors import TaskFailedError
from devcrew_core.models import (
    ExecutionMode,
    RetryBackoff,
    RetryPolicy,
    Task,
    TaskRequest,
    Workflow,
)
from devcrew_core.models._base import LenientEnum
from devcrew_core.runners import TaskCall
from devcrew_core.stores.base import Store
from devcrew_core.stores.records import (
    AgentRecord,
    AuditRecord,
    Event,
    RunRecord,
    RunStatus,
    TaskState,
    TaskStatus,
)

logger = logging.getLogger("devcrew.engine")
T = TypeVar("T")

#: Backoff between retries when a task gives ``retry: N`` without a ``retry_policy``.
DEFAULT_RETRY_POLICY = RetryPolicy(backoff=RetryBackoff.EXPONENTIAL, initial_delay=1.0,
                                   max_delay=60.0)
#: Task transitions that also become system events (the rest live in task states).
NOTABLE = frozenset({TaskStatus.FAILED, TaskStatus.CANCELLED})
#: How often a run holding or waiting for resources looks for deadlocks (seconds).
DEADLOCK_CHECK_SECONDS = 0.5
FINISHED = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.SKIPPED,
                      TaskStatus.CANCELLED})


class FailurePolicy(LenientEnum):
    """What a failed task does to the rest of the run."""

    FAIL_FAST = "fail-fast"
    CONTINUE = "continue"


@dataclass(frozen=True)
class RunOptions:
    """How to execute a run."""

    mode: ExecutionMode = ExecutionMode.PARALLEL
    failure_policy: FailurePolicy = FailurePolicy.FAIL_FAST
    #: How often the run polls for a cancel request and flushes (seconds).
    poll_interval: float = 0.1
    #: How often the run refreshes its heartbeat (seconds).
    heartbeat_interval: float = 2.0
    #: Default per-task timeout when a task gives none.
    task_timeout: float = 3600.0
    #: Default workflow timeout when the workflow gives none.
    workflow_timeout: float = 7200.0
    #: What tasks' ``resources`` leave out, and how waiting requests age.
    resources: ResourceDefaults = field(default_factory=ResourceDefaults)


def owner_identity() -> dict[str, Any]:
    """Who is executing a run: host and process, written into the run record."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def slot_key(run_id: str, task_id: str) -> str:
    """The load-slot ID of one task of one run (unique across runs, still readable)."""
    digest = hashlib.blake2b(f"{run_id}/{task_id}".encode(), digest_size=8).hexdigest()
    return f"{task_id[:100]}.{digest}"


class WorkflowRun:
    """Executes one run of one workflow to its end."""

    def __init__(
        self,
        *,
        run: RunRecord,
        workflow: Workflow,
        states: dict[str, TaskState],
        state_store: Store,
        audit_store: Store,
        matcher: AgentMatcher,
        executor: Any,
        options: RunOptions,
        notify: Any = None,
        beat_agents: Callable[[], None] | None = None,
        agent_beat_interval: float = 60.0,
    ) -> None:
        self.run = run
        self.workflow = workflow
        self.tasks = {task.task_id: task for task in workflow.tasks}
        self.order = validate_dag(workflow)
        self.states = states
        self.store = state_store
        self.writer = TransitionWriter(state_store, audit_store)
        self.matcher = matcher
        # Queued task states ride in the same store transaction as each slot batch.
        self.slots = SlotBatcher(matcher, on_released=self._notify_capacity,
                                 before_commit=self.writer.flush_now)
        self.executor = executor
        self.options = options
        self.notify = notify
        self._beat_agents = beat_agents
        self._agent_beat_interval = agent_beat_interval
        self.outputs: dict[str, dict[str, Any]] = {
            tid: dict(s.output or {}) for tid, s in states.items()
            if s.status is TaskStatus.COMPLETED
        }
        # Readiness by counting: each task knows how many dependencies are unmet, so a
        # completion costs O(dependants), never a scan of the whole workflow.
        self._position = {tid: i for i, tid in enumerate(self.order)}
        self._children = dependants(workflow)
        self._unmet = {
            tid: sum(1 for d in task.depends_on if d not in self.outputs)
            for tid, task in self.tasks.items()
        }
        self._ready: list[tuple[int, str]] = [
            (self._position[tid], tid) for tid in self.order
            if self._unmet[tid] == 0 and states[tid].status is TaskStatus.PENDING
        ]
        heapq.heapify(self._ready)
        self._drivers: dict[str, asyncio.Task[None]] = {}
        # Slots taken for a task's first attempt when it was dispatched.
        self._preclaimed: dict[str, Claim] = {}
        self.resources = RunResources(
            run_id=run.run_id, gate=ResourceGate(state_store, audit_store, options.resources),
            writer=self.writer, poll_interval=options.poll_interval,
            claim_again=self._claim, release_slot=self.slots.release,
            set_waiting=self._set_waiting)
        self._keys: dict[str, str] = {}  # slot key -> task_id
        self._changed = asyncio.Event()
        self._capacity_waiters: set[asyncio.Future[None]] = set()
        self._stop_reason: str | None = None
        self._closing = False
        self._requests: dict[str, TaskRequest] = {}
        self._stop_status = RunStatus.FAILED

    # -- state transitions -------------------------------------------------------------
    def _set(self, task_id: str, status: TaskStatus, **fields: Any) -> TaskState:
        previous = self.states[task_id]
        state = previous.model_copy(update={"status": status, "updated_at": time.time(),
                                            **fields})
        self.states[task_id] = state
        self.writer.record(state)
        if status in NOTABLE:
            self.writer.event(Event(kind=f"task.{status.value}", data={
                "run_id": self.run.run_id, "workflow_id": self.workflow.workflow_id,
                "task_id": task_id, "attempt": state.attempt, "agent_id": state.agent_id,
                "error": state.error,
            }))
        return state

    def _set_waiting(self, task_id: str, reason: str) -> None:
        self._set(task_id, TaskStatus.WAITING, error=reason)

    # -- the main loop -------------------------------------------------------------------
    async def execute(self) -> RunRecord:
        """Run until every task finished, the run was cancelled, or it timed out."""
        started = self.run.started_at or time.time()
        self.run = await self._update_run(status=RunStatus.RUNNING, started_at=started,
                                          data={**self.run.data, "owner": owner_identity(),
                                                "heartbeat": time.time()})
        await self._heartbeat_agents()
        timeout = self.workflow.timeout or self.options.workflow_timeout
        watcher = asyncio.ensure_future(self._watch())
        scheduler = asyncio.ensure_future(self._schedule())
        try:
            done, _ = await asyncio.wait({scheduler}, timeout=timeout)
            if not done:
                await self._stop(f"workflow timed out after {timeout:g}s", RunStatus.FAILED)
                await scheduler
            scheduler.result()
        finally:
            self._closing = True
            self.writer.wake()
            await asyncio.gather(watcher, return_exceptions=True)
            await self._cancel_drivers()
            scheduler.cancel()
            await asyncio.gather(scheduler, return_exceptions=True)
            self.slots.drain()
            await self.writer.flush()
        return await self._finish()

    async def _schedule(self) -> None:
        while True:
            if self._stop_reason is None:
                self._start_ready()
            if not self._drivers:
                return
            self._changed.clear()
            await self._changed.wait()

    def _start_ready(self) -> None:
        """Start ready tasks in topological order (one at a time in SEQUENTIAL mode)."""
        sequential = self.options.mode is ExecutionMode.SEQUENTIAL
        starting: list[str] = []
        while self._ready and not (sequential and (self._drivers or starting)):
            _, task_id = heapq.heappop(self._ready)
            if self.states[task_id].status is TaskStatus.PENDING:
                starting.append(task_id)
        if not starting:
            return
        self._preclaim(starting)
        for task_id in starting:
            driver = asyncio.ensure_future(self._drive(task_id))
            self._drivers[task_id] = driver
            driver.add_done_callback(functools.partial(self._driver_done, task_id))

    def _preclaim(self, task_ids: list[str]) -> None:
        """Take the first-attempt slots of tasks being dispatched, all in one batch (with
        the releases and task states queued so far), so a chain hands on in one store
        transaction per step and a fan-out claims in a handful."""
        wanted: list[tuple[TaskRequest, list[AgentRecord]]] = []
        claiming: list[str] = []
        try:
            for task_id in task_ids:
                request = self._request(self.tasks[task_id])
                agents = self.matcher.eligible(request, require_runner=True)
                if agents:
                    wanted.append((request, agents))
                    claiming.append(task_id)
            claims = self.slots.claim_now(wanted) if wanted else []
        except Exception:  # the drivers claim on their own and report the failure
            logger.warning("run %s: could not pre-claim slots", self.run.run_id,
                           exc_info=True)
            return
        for task_id, claim in zip(claiming, claims, strict=True):
            if claim is not None:
                self._preclaimed[task_id] = claim

    def _driver_done(self, task_id: str, _driver: object = None) -> None:
        # Runs after the driver's own code, even when it was cancelled before it started.
        self._drivers.pop(task_id, None)
        unused = self._preclaimed.pop(task_id, None)
        if unused is not None:
            self.slots.release(unused.agent.agent_id, self._request(self.tasks[task_id]).task_id)
        # Wake the scheduler only when it has something to do: tasks to start (SEQUENTIAL
        # mode, a retry), the run to end, or a stop to settle.
        if self._ready or not self._drivers or self._stop_reason is not None:
            self._changed.set()

    def _completed(self, task_id: str) -> None:
        """Count a finished dependency; dependants with none left become ready."""
        for child in self._children[task_id]:
            self._unmet[child] -= 1
            if self._unmet[child] == 0:
                heapq.heappush(self._ready, (self._position[child], child))

    async def _watch(self) -> None:
        """Flush in batches, honour cancel requests, keep the heartbeat fresh."""
        last_beat = last_check = last_agent_beat = last_deadlock_check = time.monotonic()
        while not self._closing:
            await self.writer.wait(self.options.poll_interval)
            self.slots.flush()  # hand-overs and the queued states, in one batch
            await self.writer.flush()
            if time.monotonic() - last_check < self.options.poll_interval:
                continue
            last_check = time.monotonic()
            wanted = await call_store(self.store, self.store.cancel_requested, self.run.run_id)
            if wanted and self._stop_reason is None:
                await self._stop("cancelled on request", RunStatus.CANCELLED)
            if time.monotonic() - last_beat >= self.options.heartbeat_interval:
                last_beat = time.monotonic()
                await self._update_run(data={**self.run.data, "heartbeat": time.time()})
            if self.resources.holding:
                await self.resources.stop_preempted(self._keys, self._drivers)
            if self.resources.active and \
                    time.monotonic() - last_deadlock_check >= DEADLOCK_CHECK_SECONDS:
                # A task that holds resources may wait for more (its runner asking an
                # allocator), and one that waits may be part of a cycle: look for one.
                last_deadlock_check = time.monotonic()
                await self.resources.break_deadlocks()
            if time.monotonic() - last_agent_beat >= self._agent_beat_interval:
                last_agent_beat = time.monotonic()
                await self._heartbeat_agents()

    async def _heartbeat_agents(self) -> None:
        """Keep this process's agents from expiring while the run executes."""
        if self._beat_agents is None:
            return
        try:
            await call_store(self.store, self._beat_agents)
        except Exception:  # a missed heartbeat must not fail the run; the next one retries
            logger.warning("run %s: agent heartbeat failed", self.run.run_id, exc_info=True)

    async def _stop(self, reason: str, status: RunStatus) -> None:
        """Stop the run: no new tasks, running attempts cancelled, the rest settled."""
        if self._stop_reason is not None:
            return
        self._stop_reason, self._stop_status = reason, status
        logger.info("run %s stopping: %s", self.run.run_id, reason)
        await self._cancel_drivers()
        settle = TaskStatus.CANCELLED if status is RunStatus.CANCELLED else TaskStatus.SKIPPED
        for task_id in self.order:
            if self.states[task_id].status in (TaskStatus.PENDING, TaskStatus.WAITING):
                self._set(task_id, settle, error=reason)
        self._changed.set()

    async def _cancel_drivers(self) -> None:
        drivers = [d for d in self._drivers.values() if not d.done()]
        for driver in drivers:
            driver.cancel()
        if drivers:
            await asyncio.gather(*drivers, return_exceptions=True)

    # -- one task ----------------------------------------------------------------------------
    async def _drive(self, task_id: str) -> None:
        task = self.tasks[task_id]
        try:
            output = await self._attempts(task)
        except asyncio.CancelledError:
            by = self.resources.preempted_by(task_id)
            if by is not None and self._stop_reason is None:
                # Preempted: not a failure. The task goes back to the queue and runs
                # again (a new attempt) when it gets its resources.
                self._set(task_id, TaskStatus.PENDING,
                          error=f"preempted by {by}; re-queued")
                heapq.heappush(self._ready, (self._position[task_id], task_id))
                return
            self._set(task_id, TaskStatus.CANCELLED, completed_at=time.time(),
                      error=self._stop_reason or "cancelled")
        except TaskFailedError as exc:
            self._set(task_id, TaskStatus.FAILED, completed_at=time.time(), error=str(exc))
            await self._after_failure(task_id, str(exc))
        else:
            self.outputs[task_id] = output
            self._set(task_id, TaskStatus.COMPLETED, completed_at=time.time(), output=output,
                      error=None)
            self._completed(task_id)
            if self._stop_reason is None:
                # Hand on at once instead of waking the scheduler; this driver has no
                # more work, so SEQUENTIAL mode may start the next task too.
                self._drivers.pop(task_id, None)
                self._start_ready()

    async def _after_failure(self, task_id: str, error: str) -> None:
        if FailurePolicy(self.options.failure_policy) is FailurePolicy.FAIL_FAST:
            # Stopping cancels the other drivers; this one is finishing already.
            self._drivers.pop(task_id, None)
            await self._stop(f"task {task_id!r} failed: {error}", RunStatus.FAILED)
            return
        for dependant in sorted(descendants(self.workflow, task_id)):
            if self.states[dependant].status not in FINISHED:
                self._set(dependant, TaskStatus.SKIPPED,
                          error=f"dependency {task_id!r} failed")

    async def _attempts(self, task: Task) -> dict[str, Any]:
        retries, policy = task.max_retries, task.retry_policy or DEFAULT_RETRY_POLICY
        timeout = task.timeout or self.options.task_timeout
        for number in range(retries + 1):
            attempt = self.states[task.task_id].attempt + 1
            try:
                return await self._attempt(task, attempt, timeout)
            except TaskFailedError as exc:
                if not exc.retryable or number == retries:
                    raise
                delay = policy.delay_for(number + 1)
                self._set(task.task_id, TaskStatus.PENDING, error=str(exc))
                logger.info("task %s attempt %d failed (%s); retrying in %.2fs",
                            task.task_id, attempt, exc, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(self, task: Task, attempt: int, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        claim = self._preclaimed.pop(task.task_id, None) or await self._claim(task, deadline)
        key = self._request(task).task_id
        if task.resources is not None:
            claim = await self.resources.allocate(task, claim, key, deadline)
        try:
            self._set(task.task_id, TaskStatus.RUNNING, attempt=attempt,
                      agent_id=claim.agent.agent_id, score=claim.match.effective_score,
                      started_at=time.time(), error=None)
            self.writer.audit(AuditRecord(
                kind="delegation", workflow_id=self.workflow.workflow_id,
                subject_id=task.task_id, data={
                    "run_id": self.run.run_id, "task_id": task.task_id, "attempt": attempt,
                    "agent_id": claim.agent.agent_id, "agent_type": claim.agent.agent_type,
                    "score": claim.match.score, "effective_score": claim.match.effective_score,
                }))
            call = TaskCall(
                task_id=task.task_id,
                workflow_id=self.workflow.workflow_id,
                run_id=self.run.run_id,
                agent_id=claim.agent.agent_id,
                input=dict(task.input_data),
                upstream={dep: self.outputs[dep] for dep in task.depends_on},
                attempt=attempt,
                idempotency_key=f"{self.run.run_id}/{task.task_id}/{attempt}",
                timeout=timeout,
            )
            remaining = max(deadline - time.monotonic(), 0.001)
            try:
                output = await _with_timeout(self.executor.execute(claim.agent, call), remaining)
            except asyncio.TimeoutError:
                raise TaskFailedError(f"timed out after {timeout:g}s") from None
            except TaskFailedError:
                raise
            except Exception as exc:
                raise TaskFailedError(f"{type(exc).__name__}: {exc}") from exc
            return _checked_output(task.task_id, output)
        finally:
            await self.resources.release(task.task_id, claim.agent.agent_id, key)
            self.slots.release(claim.agent.agent_id, key)

    def _request(self, task: Task) -> TaskRequest:
        """The (cached) delegation request of a task; its task_id is the slot key."""
        request = self._requests.get(task.task_id)
        if request is None:
            self._keys[slot_key(self.run.run_id, task.task_id)] = task.task_id
            request = self._requests[task.task_id] = TaskRequest(
                task_id=slot_key(self.run.run_id, task.task_id),
                task_type=task.agent_type,
                required_capabilities=task.agent_capabilities,
                required_agent_type=task.agent_type,
            )
        return request

    async def _claim(self, task: Task, deadline: float,
                     avoid: set[str] | None = None) -> Claim:
        request = self._request(task)
        waiting = False
        while True:
            # Register interest before looking, so a release in between is not missed.
            wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._capacity_waiters.add(wake)
            try:
                agents = self.matcher.eligible(request, require_runner=True)
                if avoid and agents:
                    # Agents that could not give the resources just now go last: try the
                    # others first, and all of them again once each was tried.
                    untried = [a for a in agents if a.agent_id not in avoid]
                    if not untried:
                        avoid.clear()
                    agents = untried or agents
                if agents:
                    claim = await self.slots.claim(request, agents)
                    if claim is not None:
                        return claim
                    reason = "waiting for a free agent slot"
                else:
                    reason = self._why_none_eligible(task, request)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TaskFailedError(
                        f"no agent of type {task.agent_type!r} could take the task before it "
                        f"timed out ({reason})")
                if not waiting or self.states[task.task_id].error != reason:
                    waiting = True
                    self._set(task.task_id, TaskStatus.WAITING, error=reason)
                # Slots freed by other processes are only seen by polling.
                await asyncio.wait({wake}, timeout=min(remaining, self.options.poll_interval))
            finally:
                self._capacity_waiters.discard(wake)

    def _why_none_eligible(self, task: Task, request: TaskRequest) -> str:
        """Why no agent is eligible now; fails the task when none could ever be (no
        agent with the type, capabilities and a runner is registered at all)."""
        registered = self.matcher.registered(request, require_runner=True)
        if not registered:
            caps = ", ".join(task.agent_capabilities) or "none"
            raise TaskFailedError(
                f"no agent of type {task.agent_type!r} with capabilities [{caps}] and a "
                "runner is registered", retryable=False)
        now = time.time()
        unavailable = sorted(a.agent_id for a in registered if not a.available)
        expired = sorted(a.agent_id for a in registered if a.available and a.is_expired(now))
        parts = [f"unavailable: {', '.join(unavailable)}"] if unavailable else []
        parts += [f"expired: {', '.join(expired)}"] if expired else []
        return "waiting for an eligible agent (" + ("; ".join(parts) or "none free") + ")"

    def _notify_capacity(self) -> None:
        for waiter in self._capacity_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._capacity_waiters.clear()

    # -- the end ----------------------------------------------------------------------------------
    async def _update_run(self, **changes: Any) -> RunRecord:
        updated = await call_store(self.store, self.store.update_run, self.run.run_id, changes)
        if updated is None:
            raise TaskFailedError(f"run {self.run.run_id!r} vanished from the store")
        self.run = updated
        return updated

    async def _finish(self) -> RunRecord:
        statuses = [s.status for s in self.states.values()]
        if self._stop_reason is not None:
            status, error = self._stop_status, self._stop_reason
        elif all(s is TaskStatus.COMPLETED for s in statuses):
            status, error = RunStatus.COMPLETED, None
        else:
            failed = sorted(t for t, s in self.states.items() if s.status is TaskStatus.FAILED)
            status, error = RunStatus.FAILED, f"task(s) failed: {', '.join(failed)}"
        run = await self._update_run(status=status, completed_at=time.time(), error=error)
        self.writer.audit(AuditRecord(
            kind=f"workflow.{status.value}", workflow_id=self.workflow.workflow_id,
            subject_id=run.run_id, data={"error": error}))
        self.writer.event(Event(kind=f"workflow.{status.value}", data={
            "run_id": run.run_id, "workflow_id": self.workflow.workflow_id, "error": error}))
        await self.writer.flush()
        if self.notify is not None:
            self.notify(self.workflow, run)
        return run


async def _with_timeout(work: Coroutine[Any, Any, T], seconds: float) -> T:
    """Await ``work`` for at most ``seconds`` (raising ``TimeoutError``), cancelling it on
    timeout. ``asyncio.timeout`` (3.11+) runs it in the current task: no extra task and
    no extra loop iterations per attempt, which matters at thousands of tasks/s."""
    timeout = getattr(asyncio, "timeout", None)
    if timeout is None:  # Python 3.10
        return await asyncio.wait_for(work, seconds)
    async with timeout(seconds):
        return await work


def _checked_output(task_id: str, output: Any) -> dict[str, Any]:
    if output is None:
        return {}
    if not isinstance(output, dict):
        raise TaskFailedError(
            f"task {task_id!r}: the runner returned {type(output).__name__}, expected a dict",
            retryable=False)
    if not output:
        return output
    try:
        json.dumps(output)
    except (TypeError, ValueError) as exc:
        raise TaskFailedError(
            f"task {task_id!r}: output is not JSON-serialisable: {exc}", retryable=False
        ) from exc
    return output
