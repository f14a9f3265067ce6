"""``DelegationManager``: the agent registry and capability-based delegation.

The manager sits on the same engine, store and :class:`~devcrew_core.engine.matching.
AgentMatcher` as the workflow engine, so a task delegated here and a task the engine
runs compete for the same load slots:

* ``find_best_agent`` asks the store's capability/type indexes for eligible agents
  (every required capability, the required type, available, not expired, not excluded,
  a free slot) and ranks them with the configured scorer (ties: lower ``agent_id``);
* ``delegate_task`` takes a load slot and records the delegation (and its audit record)
  in **one atomic store operation**; if the chosen agent filled up or stopped being
  eligible in between, it fails over to the next best agent, or raises
  :class:`~devcrew_core.errors.NoCapacityError`;
* ``complete_task`` frees that slot exactly once (a repeat returns False; a task that
  was never delegated to that agent is an error).

Agents expire ``agent_ttl_seconds`` after their last heartbeat; expired agents are never
matched, and ``cleanup_expired_agents`` removes them, reporting their running tasks.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import Any

from devcrew_core.config import Settings, load_settings
from devcrew_core.engine.engine import Engine
from devcrew_core.engine.report import iso
from devcrew_core.errors import NoCapacityError, NotFoundError
from devcrew_core.ids import validate_id
from devcrew_core.models import AgentMatch, TaskRequest
from devcrew_core.orchestrator import _EngineFace
from devcrew_core.stores.base import Store
from devcrew_core.stores.records import (
    AgentRecord,
    AuditRecord,
    DelegationRecord,
    DelegationStatus,
)


def agent_status(agent: AgentRecord, now: float | None = None) -> dict[str, Any]:
    """The spec's agent status dict (plus expiry, running tasks, runner kind, metadata)."""
    moment = time.time() if now is None else now
    load_pct = 100.0 * agent.current_load / agent.max_concurrent_tasks
    return {
        "agent_id": agent.agent_id,
        "agent_type": agent.agent_type,
        "capabilities": list(agent.capabilities),
        "available": agent.available,
        "current_load": agent.current_load,
        "max_concurrent_tasks": agent.max_concurrent_tasks,
        "has_capacity": agent.current_load < agent.max_concurrent_tasks,
        "load_percentage": load_pct,
        "priority_weight": agent.priority_weight,
        "last_heartbeat": agent.last_heartbeat,
        "expires_at": agent.expires_at,
        "expired": agent.is_expired(moment),
        "running_tasks": list(agent.running_tasks),
        "runner": None if agent.runner is None else agent.runner.get("kind"),
        "resource_limits": None if agent.resource_limits is None
        else agent.resource_limits.model_dump(),
        "metadata": dict(agent.metadata),
    }


def delegation_document(record: DelegationRecord) -> dict[str, Any]:
    """A delegation as a JSON-ready dict (what ``devcrew task status`` prints)."""
    doc = record.model_dump(mode="json")
    doc["delegated_at"] = iso(record.delegated_at)
    doc["completed_at"] = iso(record.completed_at)
    return doc


class DelegationManager(_EngineFace):
    """Register agents, find the best one for a task, delegate and complete tasks.

    Constructor arguments are the spec's (``redis_url``, ``redis_db``, ``redis_password``,
    ``connection_pool_size``) plus ``state_url`` (any store URL), ``home``,
    ``config_file``, ``agent_ttl_seconds``, or a ready ``settings``/``engine``.
    """

    def __init__(
        self,
        redis_url: str | None = None,
        redis_db: int | None = None,
        redis_password: str | None = None,
        connection_pool_size: int | None = None,
        *,
        state_url: str | None = None,
        home: str | os.PathLike[str] | None = None,
        config_file: str | os.PathLike[str] | None = None,
        agent_ttl_seconds: float | None = None,
        settings: Settings | None = None,
        engine: Engine | None = None,
    ) -> None:
        if engine is None and settings is None:
            settings = load_settings(
                config_file=config_file, redis_url=redis_url, redis_db=redis_db,
                redis_password=redis_password, connection_pool_size=connection_pool_size,
                state_url=state_url, home=home, agent_ttl_seconds=agent_ttl_seconds,
            )
        super().__init__(settings=settings, engine=engine)

    @property
    def _store(self) -> Store:
        return self.engine.state_store

    # -- the registry --------------------------------------------------------------------
    def deregister_agent(self, agent_id: str) -> bool:
        """Remove an agent; False if it was not registered."""
        validate_id(agent_id, "agent_id")
        removed = self._store.delete_agent(agent_id) is not None
        self.engine.own_agents.discard(agent_id)
        self.engine.matcher.invalidate()
        return removed

    def heartbeat_agent(self, agent_id: str) -> bool:
        """Extend the agent's TTL (``agent_ttl_seconds`` from now); False if unknown."""
        found = self.engine.heartbeat_agent(agent_id) is not None
        self.engine.matcher.invalidate()
        return found

    def set_agent_availability(self, agent_id: str, available: bool) -> bool:
        """Make an agent (un)available for new tasks; False if unknown. Running tasks
        are not affected."""
        validate_id(agent_id, "agent_id")
        found = self._store.update_agent(agent_id, {"available": bool(available)}) is not None
        self.engine.matcher.invalidate()
        return found

    def get_agent_status(self, agent_id: str) -> dict[str, Any] | None:
        """The agent's status dict, or None if it is not registered."""
        validate_id(agent_id, "agent_id")
        agent = self._store.get_agent(agent_id)
        return None if agent is None else agent_status(agent)

    def list_agents(
        self,
        filter_type: str | None = None,
        available_only: bool = False,
        has_capacity: bool = False,
    ) -> list[dict[str, Any]]:
        """Status dicts of the registered agents, optionally filtered. ``available_only``
        also leaves out expired agents."""
        if filter_type is not None:
            validate_id(filter_type, "filter_type")
        now = time.time()
        rows = [agent_status(a, now) for a in self._store.list_agents(filter_type)]
        return [
            row for row in rows
            if ((row["available"] and not row["expired"]) or not available_only)
            and (row["has_capacity"] or not has_capacity)
        ]

    def cleanup_expired_agents(self) -> list[dict[str, Any]]:
        """Remove every expired agent; return their last status dicts, whose
        ``running_tasks`` are the tasks that were still running on them."""
        now = time.time()
        removed = []
        for agent in self._store.list_agents():
            if agent.is_expired(now):
                # Removed only if still expired when the store removes it: a heartbeat
                # that arrived since the listing keeps the agent.
                gone = self._store.delete_agent(agent.agent_id, expired_by=time.time())
                if gone is not None:
                    removed.append(agent_status(gone, now))
        if removed:
            self.engine.matcher.invalidate()
            self.engine.audit_store.append_audit([AuditRecord(
                kind="agent.expired", subject_id=row["agent_id"],
                data={"running_tasks": row["running_tasks"]}) for row in removed])
        return removed

    # -- delegation ----------------------------------------------------------------------
    def find_best_agent(self, task_request: TaskRequest) -> AgentMatch | None:
        """The best eligible agent with a free slot, or None."""
        matcher = self.engine.matcher
        ranked = matcher.rank(task_request, matcher.eligible(task_request), limit=1)
        return ranked[0] if ranked else None

    def delegate_task(
        self, task_request: TaskRequest, agent_match: AgentMatch | None = None
    ) -> dict[str, Any]:
        """Delegate the task to ``agent_match`` (default: the best agent now), failing
        over to the next best when that agent is full or no longer eligible.

        Returns ``{task_id, agent_id, agent_type, score, effective_score, current_load,
        max_load, delegated_at, status: "delegated", failed_over_from}``. Raises
        :class:`NoCapacityError` when no eligible agent has a free slot.
        """
        matcher = self.engine.matcher
        tried: list[str] = []
        if agent_match is not None:
            # The common case: the caller's choice is still eligible and has room. Score
            # just that agent instead of ranking every eligible one again.
            agent = next((a for a in matcher.eligible(task_request)
                          if a.agent_id == agent_match.agent_id), None)
            current = None if agent is None else matcher.score_for(task_request, agent)
            if agent is not None and current is not None:
                score, effective, _ = current
                outcome = self._delegate_to(task_request, agent.agent_id, agent.agent_type,
                                            score, effective, tried)
                if outcome is not None:
                    return outcome
            tried.append(agent_match.agent_id)  # full or no longer eligible: fail over
        for _ in range(2):  # a second pass with a fresh registry view
            candidates = [m for m in matcher.rank(task_request, matcher.eligible(task_request))
                          if m.agent_id not in tried]
            for match in candidates:
                outcome = self._delegate_to(task_request, match.agent_id, match.agent_type,
                                            match.score, match.effective_score, tried)
                if outcome is not None:
                    return outcome
                tried.append(match.agent_id)
            matcher.invalidate()
        caps = ", ".join(task_request.required_capabilities) or "none"
        kind = f" of type {task_request.required_agent_type!r}" \
            if task_request.required_agent_type else ""
        raise NoCapacityError(
            f"task {task_request.task_id!r}: no available agent{kind} with capabilities "
            f"[{caps}] has a free slot" + (f" (tried {', '.join(tried)})" if tried else ""))

    def _delegate_to(self, request: TaskRequest, agent_id: str, agent_type: str,
                     score: float, effective_score: float,
                     tried: list[str]) -> dict[str, Any] | None:
        now = time.time()
        record = DelegationRecord(
            task_id=request.task_id, agent_id=agent_id, agent_type=agent_type,
            task_type=request.task_type,
            required_capabilities=list(request.required_capabilities),
            priority=request.priority.value, score=score,
            effective_score=effective_score,
            estimated_duration=request.estimated_duration, timeout=request.timeout,
            context=dict(request.context), delegated_at=now,
        )
        audit = AuditRecord(kind="delegation", subject_id=request.task_id, created_at=now,
                            data={"task_id": request.task_id, "agent_id": agent_id,
                                  "agent_type": agent_type, "score": score,
                                  "effective_score": effective_score,
                                  "failed_over_from": list(tried)})
        shared = self.engine.audit_store is self._store
        try:
            result = self._store.delegate(record, audit if shared else None)
        except NotFoundError:  # deregistered since the registry was read
            return None
        self.engine.matcher.note_load(agent_id, result.current_load)
        if not result.acquired:
            return None
        if not shared:
            self.engine.audit_store.append_audit([audit])
        return {
            "task_id": request.task_id, "agent_id": agent_id,
            "agent_type": agent_type, "score": score,
            "effective_score": effective_score, "current_load": result.current_load,
            "max_load": result.max_concurrent_tasks, "delegated_at": iso(now),
            "status": "delegated", "failed_over_from": list(tried),
        }

    def complete_task(self, agent_id: str, task_id: str) -> bool:
        """Mark a delegated task complete and free its slot: True when this call
        completed it, False when it was completed before. Raises
        :class:`NotFoundError` when ``task_id`` was never delegated to ``agent_id``."""
        validate_id(agent_id, "agent_id")
        validate_id(task_id, "task_id")
        now = time.time()
        audit = AuditRecord(kind="delegation.completed", subject_id=task_id, created_at=now,
                            data={"task_id": task_id, "agent_id": agent_id})
        shared = self.engine.audit_store is self._store
        record, completed = self._store.complete_delegation(
            agent_id, task_id, now, audit if shared else None)
        if record is None:
            current = self._store.get_delegation(task_id)
            where = f" (it is delegated to {current.agent_id!r})" if current else ""
            raise NotFoundError(
                f"task {task_id!r} is not delegated to agent {agent_id!r}{where}")
        if completed:
            self.engine.matcher.released(agent_id)
            if not shared:
                self.engine.audit_store.append_audit([audit])
        return completed

    def get_delegation(self, task_id: str) -> dict[str, Any] | None:
        """The delegation of ``task_id`` as a dict, or None."""
        validate_id(task_id, "task_id")
        record = self._store.get_delegation(task_id)
        return None if record is None else delegation_document(record)

    def list_delegations(self, agent_id: str | None = None,
                         status: str | None = None) -> list[dict[str, Any]]:
        """Delegations (of one agent; ``active`` or ``completed``), oldest first."""
        if agent_id is not None:
            validate_id(agent_id, "agent_id")
        if status is not None:
            status = DelegationStatus(status).value
        return [delegation_document(r) for r in self._store.list_delegations(agent_id, status)]

    def get_statistics(self) -> dict[str, Any]:
        """Registry and delegation figures: agents (total, available, expired, by type),
        capacity and load, and delegations by status."""
        now = time.time()
        agents = self._store.list_agents()
        live = [a for a in agents if not a.is_expired(now)]
        capacity = sum(a.max_concurrent_tasks for a in live)
        load = sum(a.current_load for a in live)
        delegations = Counter(d.status.value for d in self._store.list_delegations())
        return {
            "total_agents": len(agents),
            "available_agents": sum(1 for a in live if a.available),
            "expired_agents": len(agents) - len(live),
            "agents_by_type": dict(sorted(Counter(a.agent_type for a in agents).items())),
            "total_capacity": capacity,
            "current_load": load,
            "utilization_percentage": round(100.0 * load / capacity, 2) if capacity else 0.0,
            "active_delegations": delegations["active"],
            "completed_delegations": delegations["completed"],
            "total_delegations": sum(delegations.values()),
        }
