"""Built-in decomposition strategies: ``functional``, ``sequential`` and ``parallel``.

All three make one sub-task per requirement (or one for the description when there are
none). ``functional`` gives each to the spoke whose type and capabilities share the
most words with it; ``parallel`` deals them round-robin; ``sequential`` assigns like
``functional`` but chains the sub-tasks so each waits for the previous one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence

from devcrew_core.errors import DefinitionError
from devcrew_core.hookspecs import hookimpl
from devcrew_core.models import Objective, Task
from devcrew_core.plugin_types import Decomposer
from devcrew_core.stores.records import AgentRecord

_WORD = re.compile(r"[a-z0-9]+")

Assign = Callable[[str, int, Sequence[AgentRecord]], AgentRecord]


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def _by_function(requirement: str, index: int, spokes: Sequence[AgentRecord]) -> AgentRecord:
    wanted = _words(requirement)

    def overlap(spoke: AgentRecord) -> int:
        vocabulary = _words(spoke.agent_type) | _words(" ".join(spoke.capabilities))
        return len(wanted & vocabulary)

    best = max(overlap(s) for s in spokes)
    if best == 0:
        return spokes[index % len(spokes)]
    return next(s for s in spokes if overlap(s) == best)


def _round_robin(requirement: str, index: int, spokes: Sequence[AgentRecord]) -> AgentRecord:
    return spokes[index % len(spokes)]


def _decompose(
    objective: Objective, spokes: Sequence[AgentRecord], assign: Assign, chain: bool
) -> list[Task]:
    if not spokes:
        raise DefinitionError(
            f"objective {objective.objective_id!r}: no spokes to decompose onto; "
            "register spoke agents first"
        )
    ordered = sorted(spokes, key=lambda s: s.agent_id)
    requirements = objective.requirements or [objective.description]
    tasks: list[Task] = []
    for index, requirement in enumerate(requirements):
        spoke = assign(requirement, index, ordered)
        task_id = f"{objective.objective_id}-{index + 1:02d}"[-128:]
        tasks.append(
            Task(
                task_id=task_id,
                agent_type=spoke.agent_type,
                input_data={
                    "objective_id": objective.objective_id,
                    "description": objective.description,
                    "requirement": requirement,
                    "constraints": objective.constraints,
                    "context": objective.context,
                },
                depends_on=[tasks[-1].task_id] if chain and tasks else [],
                description=requirement,
            )
        )
    return tasks


@hookimpl
def devcrew_decomposition_strategies() -> Iterator[Decomposer]:
    """The three built-in strategies."""
    yield Decomposer(
        name="functional",
        decompose=lambda o, s: _decompose(o, s, _by_function, chain=False),
        description="one sub-task per requirement, to the spoke whose skills match it",
    )
    yield Decomposer(
        name="sequential",
        decompose=lambda o, s: _decompose(o, s, _by_function, chain=True),
        description="like functional, each sub-task waiting for the previous one",
    )
    yield Decomposer(
        name="parallel",
        decompose=lambda o, s: _decompose(o, s, _round_robin, chain=False),
        description="one sub-task per requirement, dealt round-robin to spokes",
    )
