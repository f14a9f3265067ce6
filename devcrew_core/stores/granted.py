"""Allocations on the stores' hot path: built without re-validation, and remembered
from allocate to release.

A store that granted an allocation through its one-statement fast path keeps the object
it returned (:class:`GrantedAllocations`); its release then frees what is stored only if
it still holds exactly those fields (SQLite: the task's row; PostgreSQL: the task's entry
in the agent's totals row), and returns the same object without reading it back.
Values that came from a validated model or from the store's own rows are turned into
an :class:`Allocation` by :func:`trusted_allocation`, without validating them again
(validation cost ~2 us per record on that path, ``model_copy`` ~1.5 us and, in
pydantic 2.14, ``model_construct`` more than validation).
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from devcrew_core.ids import validate_id
from devcrew_core.models.resources import Priority
from devcrew_core.stores.records import Allocation

#: Bound of a store's granted allocations (cleared when full: an entry only saves a read).
GRANTED_MAX = 4096

_new_object = object.__new__
_set_attribute = object.__setattr__


def trusted_allocation(values: dict[str, Any], fields_set: set[str]) -> Allocation:
    """An :class:`Allocation` of ``values`` without validation: what ``model_construct``
    does, without its per-field default and alias handling.

    Only for values of a validated allocation or of a store's rows (written from
    validated models). ``values`` must hold every field, in declaration order (the
    stores' tests compare the result with a validated model)."""
    model: Allocation = _new_object(Allocation)
    _set_attribute(model, "__dict__", values)
    _set_attribute(model, "__pydantic_fields_set__", fields_set)
    _set_attribute(model, "__pydantic_extra__", None)
    _set_attribute(model, "__pydantic_private__", None)
    return model


_PRIORITIES = {int(p): p for p in Priority}
_ALLOCATION_FIELDS = tuple(Allocation.model_fields)


def stored_allocation(agent_id: str, task_id: str, created_at: float, cpu_cores: float,
                      memory_mb: float, disk_mb: float, network_mbps: float, priority: int,
                      preemptable: object, reservation_id: str | None,
                      holds_slot: object) -> Allocation:
    """The allocation a store row holds (its priority as stored, an integer; the flags
    as the backend gives them back), built with :func:`trusted_allocation`."""
    return trusted_allocation({
        "cpu_cores": cpu_cores, "memory_mb": memory_mb, "disk_mb": disk_mb,
        "network_mbps": network_mbps, "agent_id": agent_id, "task_id": task_id,
        "priority": _PRIORITIES[priority], "preemptable": bool(preemptable),
        "reservation_id": reservation_id, "created_at": created_at,
        "holds_slot": bool(holds_slot)}, set(_ALLOCATION_FIELDS))


_HOLDS_SLOT = frozenset({"holds_slot"})


def holding_slot(allocation: Allocation, holds_slot: bool) -> Allocation:
    """A copy of ``allocation`` (validated already) with ``holds_slot`` set."""
    values = allocation.__dict__.copy()
    values["holds_slot"] = holds_slot
    return trusted_allocation(values, allocation.__pydantic_fields_set__ | _HOLDS_SLOT)


#: What a store writes down for a release (PostgreSQL: the fast statement's arguments as
#: text; SQLite: the allocate statement's parameters).
NoteT = TypeVar("NoteT")


class GrantedAllocations(Generic[NoteT]):
    """The allocations a store granted through its fast path, by (agent, task), until
    their release. Safe across threads (single dict operations, under the GIL); an entry
    is a hint only, checked against the stored row before it is trusted, so a stale one
    (released elsewhere, another process) costs a fallback, never a wrong answer.

    A fast grant keeps a note with the allocation (what the store wrote down for the
    release): :meth:`take_for_release` gives it back only while the allocation's fields
    are still those it was written from (the object is the caller's, who may change it).
    An allocation the general path granted is remembered without one."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, str],
                           tuple[Allocation, dict[str, Any] | None, NoteT | None]] = {}

    def remember(self, allocation: Allocation) -> None:
        """Keep ``allocation`` (granted by the general path: no note) for its release."""
        if len(self._by_key) >= GRANTED_MAX:
            self._by_key.clear()
        self._by_key[allocation.agent_id, allocation.task_id] = (allocation, None, None)

    def grant(self, values: dict[str, Any], fields_set: set[str], note: NoteT) -> Allocation:
        """What a fast allocate returns: the allocation of ``values`` (a copy of a
        validated allocation's fields, and of its ``fields_set``, taken before ``note``
        was written from it: the caller's object may change meanwhile; this takes it
        over) that took its task's slot, remembered with ``note`` (:func:`holding_slot`,
        then :meth:`remember`, in one step: this is on the path of every fast pair)."""
        values["holds_slot"] = True
        granted = trusted_allocation(values, fields_set | _HOLDS_SLOT)
        by_key = self._by_key
        if len(by_key) >= GRANTED_MAX:
            by_key.clear()
        by_key[values["agent_id"], values["task_id"]] = (granted, values.copy(), note)
        return granted

    def take_for_release(self, agent_id: str, task_id: str
                         ) -> tuple[Allocation | None, NoteT | None]:
        """What a release finds granted for (agent, task), forgotten: the allocation (None
        if there is none, or if its holder has since changed its IDs) and its note (None
        also when a field of the allocation has changed since). Exact strs equal to the
        IDs of a granted allocation are those (checked) IDs, so the release need not
        check them again when its fast statement answers; anything else is checked here
        first (:class:`~devcrew_core.errors.DefinitionError`), and a str subclass equal
        to them still finds the entry."""
        if type(agent_id) is not str or type(task_id) is not str:
            validate_id(agent_id, "agent_id")
            validate_id(task_id, "task_id")
        entry = self._by_key.pop((agent_id, task_id), None)
        if entry is None:
            return None, None
        granted, fields, note = entry
        if granted.agent_id != agent_id or granted.task_id != task_id:
            return None, None
        return granted, (note if fields is not None and granted.__dict__ == fields else None)
