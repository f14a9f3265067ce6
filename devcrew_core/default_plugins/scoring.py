"""The built-in ``default`` agent scorer.

effective score = 0.5 * capability fit + 0.3 * free capacity + 0.2 * priority weight / 100

* capability fit = 0.8 + 0.2 * (required capabilities / agent capabilities): every
  eligible agent has all required capabilities; specialists score a little higher.
* free capacity = 1 - current_load / max_concurrent_tasks.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from devcrew_core.engine.matching import capability_fit
from devcrew_core.hookspecs import hookimpl
from devcrew_core.models import TaskRequest
from devcrew_core.plugin_types import Scorer
from devcrew_core.stores.records import AgentRecord


def default_score(request: TaskRequest, agent: AgentRecord) -> float:
    """Blend capability fit, free capacity and priority weight (see module docstring)."""
    base, per_task = default_by_load(request.required_capabilities, agent)
    # Never below the score of a full agent (loads above the limit happen when a
    # limit is lowered under running tasks).
    return base - per_task * min(agent.current_load, agent.max_concurrent_tasks)


def default_by_load(required: Sequence[str], agent: AgentRecord) -> tuple[float, float]:
    """The default score as ``base - per_task * current_load`` (see :class:`Scorer`)."""
    base = 0.5 * capability_fit(required, agent) + 0.3 + 0.2 * agent.priority_weight / 100
    return base, 0.3 / agent.max_concurrent_tasks


@hookimpl
def devcrew_scorers() -> Iterator[Scorer]:
    """The default scorer."""
    yield Scorer(
        name="default",
        score=default_score,
        description="0.5 x capability fit + 0.3 x free capacity + 0.2 x priority weight",
        by_load=default_by_load,
    )
