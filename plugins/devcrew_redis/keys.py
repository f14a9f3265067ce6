"""Every Redis key the store uses, built in one place from validated parts.

All keys of one store start with ``{prefix}:``. The braces are a Redis Cluster hash
tag: every key of a store hashes to the same slot, so the multi-key Lua scripts are
valid on a cluster too (each script is given all its keys in ``KEYS``).

A key is ``{prefix}:<family>`` for a structure shared by all records of a kind, or
``{prefix}:<family>:<index>:<id>`` for one per ID. IDs are checked with
:func:`~devcrew_core.ids.validate_id` before they become part of a key; they can never
contain ``:`` or a glob character, so no two keys alias and no ID acts as a pattern.
Audit and event kinds are free text, so they are percent-encoded instead.
"""

from __future__ import annotations

import functools
import re
from urllib.parse import quote

from devcrew_core.errors import ConfigError
from devcrew_core.ids import validate_id

#: What a key prefix may look like (the ``redis_key_prefix`` setting uses the same rule).
PREFIX_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")


class Keys:
    """Key names under one prefix. Methods taking an ID validate it first."""

    def __init__(self, prefix: str) -> None:
        if PREFIX_PATTERN.fullmatch(prefix) is None:
            raise ConfigError(
                f"Redis key prefix {prefix!r} is invalid "
                "(expected 1-64 characters from A-Z a-z 0-9 . _ -)"
            )
        self.prefix = prefix
        root = self.root = "{" + prefix + "}"
        #: Counter handing out record versions (compare-and-set tokens, never reused).
        self.clock = f"{root}:clock"
        # agents: one hash per column, field = agent_id
        self.agents = f"{root}:agents"
        self.agent_max = f"{root}:agents:max"
        self.agent_version = f"{root}:agents:version"
        self.agent_load = f"{root}:agents:load"
        # delegations: hash task_id -> record JSON, and a sorted set by delegated_at
        self.delegations = f"{root}:delegations"
        self.delegations_created = f"{root}:delegations:created"
        # allocations and reservations
        self.allocation_agents = f"{root}:allocations:agents"
        self.reservations = f"{root}:reservations"
        self.reservation_expiry = f"{root}:reservations:expiry"
        # tasks waiting for capacity: field "<agent_id>:<task_id>" (IDs never hold ":")
        self.waits = f"{root}:waits"
        # workflows, runs, handoffs
        self.workflows = f"{root}:workflows"
        self.snapshots = f"{root}:snapshots"
        self.runs = f"{root}:runs"
        self.run_cancel = f"{root}:runs:cancel"
        self.run_version = f"{root}:runs:version"
        self.runs_created = f"{root}:runs:created"
        self.handoffs = f"{root}:handoffs"
        self.handoff_context = f"{root}:handoffs:context"
        self.handoff_version = f"{root}:handoffs:version"
        self.handoffs_created = f"{root}:handoffs:created"
        # append-only logs
        self.audit = f"{root}:audit"
        self.audit_seq = f"{root}:audit:seq"
        self.events = f"{root}:events"
        self.events_seq = f"{root}:events:seq"

    def slots(self, agent_id: str) -> str:
        """Sorted set of the tasks holding a load slot of an agent (score: taken at)."""
        return f"{self.root}:agents:slots:{validate_id(agent_id, 'agent_id')}"

    def agent_type(self, agent_type: str) -> str:
        """Set of the agent IDs of one type."""
        return f"{self.root}:agents:type:{validate_id(agent_type, 'agent_type')}"

    def capability(self, capability: str) -> str:
        """Set of the agent IDs having one capability."""
        return f"{self.root}:agents:capability:{validate_id(capability, 'capability')}"

    def delegations_of_agent(self, agent_id: str) -> str:
        """Sorted set of the task IDs delegated to one agent (score: delegated_at)."""
        return f"{self.root}:delegations:agent:{validate_id(agent_id, 'agent_id')}"

    def allocations(self, agent_id: str) -> str:
        """The ledger of one agent: hash task_id -> allocation JSON, plus its limits and
        usage counters under fields starting with ``:`` (see ``lua/_ledger.lua``)."""
        return f"{self.root}:allocations:agent:{validate_id(agent_id, 'agent_id')}"

    def waits_of_agent(self, agent_id: str) -> str:
        """Sorted set of the waits (``<agent_id>:<task_id>``) on one agent (score: since)."""
        return f"{self.root}:waits:agent:{validate_id(agent_id, 'agent_id')}"

    def agent_reservations(self, agent_id: str) -> str:
        """Sorted set of the reservation IDs of one agent (score: expires_at)."""
        return f"{self.root}:reservations:agent:{validate_id(agent_id, 'agent_id')}"

    def runs_of_workflow(self, workflow_id: str) -> str:
        """Sorted set of the run IDs of one workflow (score: created_at)."""
        return f"{self.root}:runs:workflow:{validate_id(workflow_id, 'workflow_id')}"

    def runs_with_status(self, status: str) -> str:
        """Sorted set of the run IDs in one status (score: created_at)."""
        return f"{self.root}:runs:status:{validate_id(status, 'status')}"

    def task_states(self, run_id: str) -> str:
        """Hash task_id -> task state JSON of one run."""
        return f"{self.root}:tasks:run:{validate_id(run_id, 'run_id')}"

    def handoffs_of_workflow(self, workflow_id: str) -> str:
        """Sorted set of the handoff IDs of one workflow (score: created_at)."""
        return f"{self.root}:handoffs:workflow:{validate_id(workflow_id, 'workflow_id')}"

    def audit_of_workflow(self, workflow_id: str) -> str:
        """Sorted set of the audit seqs of one workflow."""
        return f"{self.root}:audit:workflow:{validate_id(workflow_id, 'workflow_id')}"

    def audit_of_kind(self, kind: str) -> str:
        """Sorted set of the audit seqs of one kind (the kind percent-encoded)."""
        return f"{self.root}:audit:kind:{_encode(kind)}"

    def events_of_kind(self, kind: str) -> str:
        """Sorted set of the event seqs of one kind (the kind percent-encoded)."""
        return f"{self.root}:events:kind:{_encode(kind)}"


@functools.lru_cache(maxsize=1024)
def _encode(text: str) -> str:
    """Percent-encode free text into ``[A-Za-z0-9._~%-]``: injective, and never ``:``
    or a glob character, so it cannot alias another key."""
    return quote(text, safe="")
