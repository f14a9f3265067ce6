"""The records plugins contribute: one small, typed record per hook.

Every record has a ``name``, unique across all plugins for its hook. Heavy
implementations (stores, executors, templates) may be given as an import path
``"package.module:attribute"``; the core imports it only when that record is selected.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import click

    from devcrew_core.config import Settings
    from devcrew_core.models import Objective, Task, TaskRequest
    from devcrew_core.plugins import PluginManager
    from devcrew_core.stores.base import Store
    from devcrew_core.stores.records import AgentRecord


@dataclass(frozen=True)
class Scorer:
    """Ranks eligible agents for a task request.

    ``score(request, agent)`` returns the agent's effective score (higher is better). It
    is only called for agents that already passed eligibility (capabilities, type,
    availability, expiry, free slot), so it ranks and never filters.

    ``by_load`` (optional) says the same score is ``base - per_task * current_load``
    where ``(base, per_task) = by_load(required_capabilities, agent)`` depends on
    nothing else of the request or of the agent's state. The matcher then computes that
    pair once per agent record and request kind and ranks with a multiply-add instead
    of calling ``score`` for every eligible agent of every request (the hot path of
    delegation). It must agree with ``score``.
    """

    name: str
    score: Callable[[TaskRequest, AgentRecord], float]
    description: str = ""
    by_load: Callable[[Sequence[str], AgentRecord], tuple[float, float]] | None = None


@dataclass(frozen=True)
class Decomposer:
    """Splits an :class:`~devcrew_core.models.Objective` into sub-tasks for spokes.

    ``decompose(objective, spokes)`` returns the sub-tasks (dependencies allowed).
    Named ``Decomposer`` so as not to clash with the spec's ``DecompositionStrategy`` enum.
    """

    name: str
    decompose: Callable[[Objective, Sequence[AgentRecord]], list[Task]]
    description: str = ""


@dataclass(frozen=True)
class PreconditionOperator:
    """A comparison a handoff precondition may use: ``compare(actual, expected)``.

    ``actual`` is ``state[condition_type]`` of the source context, or
    :data:`MISSING` when the key is absent.
    """

    name: str
    compare: Callable[[Any, Any], bool]
    description: str = ""


class _Missing:
    """Marker for a state key that is absent (distinct from an explicit ``None``)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@dataclass(frozen=True)
class Notification:
    """What a notifier is asked to deliver."""

    event: str
    recipients: tuple[str, ...]
    subject: str
    payload: dict[str, Any] = field(default_factory=dict)
    workflow_id: str | None = None


@dataclass(frozen=True)
class Notifier:
    """Delivers notifications (workflow completed, failed, approval needed, ...).

    ``accepts(recipient)`` says whether this notifier handles a recipient address
    (``None`` means every recipient); ``notify(notification)`` delivers.
    """

    name: str
    notify: Callable[[Notification], None]
    accepts: Callable[[str], bool] | None = None
    description: str = ""


@dataclass(frozen=True)
class StoreBackend:
    """A state/audit store selected by URL scheme.

    ``factory(url, settings)`` returns a :class:`~devcrew_core.stores.base.Store`; give
    it as an import path so the backend's client library loads only when selected.
    """

    name: str
    schemes: tuple[str, ...]
    factory: Callable[[str, Settings], Store] | str
    description: str = ""


@dataclass(frozen=True)
class Executor:
    """Where task attempts run (``local``, ``celery``, ``prefect``, ...).

    ``factory(settings, plugins)`` returns the executor object (with an async
    ``execute(agent, call) -> dict`` and a ``close()``); give an import path for heavy ones.
    """

    name: str
    factory: Callable[[Settings, PluginManager], Any] | str
    description: str = ""


@dataclass(frozen=True)
class AgentRunner:
    """How an agent runs (``python``, ``command``, ``http``, ...), keyed by ``kind``.

    ``factory(spec)`` receives the agent's runner declaration (a dict with ``kind``)
    and returns the runner that executes task attempts.
    """

    name: str
    factory: Callable[[Mapping[str, Any]], Any] | str
    description: str = ""


@dataclass(frozen=True)
class TemplateEntry:
    """A workflow template class, by name (``tdd``, ``feature-development``, ...)."""

    name: str
    template: type[Any] | str
    description: str = ""


@dataclass(frozen=True)
class CliCommand:
    """A click command or group added to the ``devcrew`` CLI under ``name``."""

    name: str
    command: click.Command
    description: str = ""

