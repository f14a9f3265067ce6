"""The literal arguments of the PostgreSQL fast statements (no server needed): only
finite floats, integers, booleans and checked IDs are ever written into a statement."""

from __future__ import annotations

import pytest

from devcrew_core.models.resources import Priority
from devcrew_core.stores.records import Allocation
from devcrew_postgres import fastpaths
from devcrew_postgres.fastpaths import allocate_arguments


def _allocation(**changes: object) -> Allocation:
    allocation = Allocation(agent_id="a-1", task_id="t.1", cpu_cores=1.5, memory_mb=1e-05,
                            disk_mb=0.0, network_mbps=2.0, priority=Priority.HIGH,
                            preemptable=False, created_at=1700000000.25, holds_slot=True)
    # Unvalidated values, as ``model_construct`` (or a store trusting its rows) leaves
    # them: assignment would validate them.
    allocation.__dict__.update(changes)
    return allocation


def _fields(**changes: object) -> dict[str, object]:
    """What the store passes: the allocation's fields (its ``__dict__``)."""
    return _allocation(**changes).__dict__


def test_arguments_are_the_fields_as_sql_literals() -> None:
    values = "1700000000.25, 1.5, 1e-05, 0.0, 2.0, 3, false"
    # The fields, then the same values as the task's entry in `quick`.
    assert allocate_arguments(_fields(), 12.5) == (
        f"'a-1', 't.1', {values}, 12.5, 't.1, {values}, 12.5;'")
    assert allocate_arguments(_fields(), 12) == (
        f"'a-1', 't.1', {values}, 12.0, 't.1, {values}, 12.0;'")


def test_remembered_literals_never_mix_allocations() -> None:
    """Literals are remembered per amounts, priority and preemptable and per agent: a
    second allocation that differs in any of them writes its own."""
    first = allocate_arguments(_fields(), 1.0)
    variants = [{"priority": Priority.LOW}, {"preemptable": True}, {"cpu_cores": 2.5},
                {"agent_id": "a-2"}, {"network_mbps": 0.0}]
    written = [allocate_arguments(_fields(**changes), 1.0) for changes in variants]
    assert first is not None and None not in written
    assert len({first, *written}) == 6
    assert allocate_arguments(_fields(), 1.0) == first


def test_remembered_literals_are_bounded() -> None:
    for number in range(fastpaths.WRITTEN_MAX + 10):
        assert allocate_arguments(_fields(agent_id=f"a{number}", cpu_cores=float(number)),
                                  1.0) is not None
    assert len(fastpaths._AMOUNTS) <= fastpaths.WRITTEN_MAX
    assert len(fastpaths._AGENTS) <= fastpaths.WRITTEN_MAX
    last = fastpaths.WRITTEN_MAX + 9
    values = f"1700000000.25, {float(last)!r}, 1e-05, 0.0, 2.0, 3, false, 1.0"
    assert allocate_arguments(_fields(agent_id=f"a{last}", cpu_cores=float(last)), 1.0) \
        == f"'a{last}', 't.1', {values}, 't.1, {values};'"


class _Float(float):
    def __repr__(self) -> str:
        return "1); DROP TABLE holdings; --"


@pytest.mark.parametrize("changes", [
    {"cpu_cores": float("inf")},
    {"memory_mb": float("nan")},
    {"created_at": float("-inf")},
    {"disk_mb": 3},                      # an int, never validated
    {"network_mbps": "1); DROP TABLE holdings; --"},
    {"cpu_cores": _Float(1.0)},          # a float subclass with its own repr
    {"reservation_id": "r1"},            # a reservation to redeem
    {"priority": "2); DROP TABLE holdings; --"},
    {"priority": 2},                     # an int, not a Priority: never validated
    {"preemptable": 1},                  # an int, not a bool: never validated
    {"cpu_cores": 1e308, "memory_mb": 1e308},  # finite, but not their sum: general path
])
def test_anything_else_is_left_to_the_general_function(changes: dict[str, object]) -> None:
    assert allocate_arguments(_fields(**changes), 1.0) is None


def test_not_for_the_fast_path_when_now_is_not_finite() -> None:
    assert allocate_arguments(_fields(), float("inf")) is None
    assert allocate_arguments(_fields(), float("nan")) is None


class _Str(str):
    def __format__(self, spec: str) -> str:
        return "a', 't', 1.0, 0, 0, 0, 0, 1.0, 2, true); CREATE TABLE pwned (x int); --"

    __str__ = __repr__ = lambda self: self.__format__("")  # type: ignore[assignment]


@pytest.mark.parametrize("field", ["agent_id", "task_id"])
def test_a_str_subclass_id_is_never_written(field: str) -> None:
    """It could write itself as anything, whatever characters it holds."""
    sneaky = _allocation(**{field: _Str("a-1")})
    assert allocate_arguments(sneaky.__dict__, 1.0) is None


@pytest.mark.parametrize("field", ["agent_id", "task_id"])
def test_an_id_outside_the_alphabet_is_never_written(field: str) -> None:
    bad = _allocation(**{field: "x'; DROP TABLE holdings; --"})
    assert allocate_arguments(bad.__dict__, 1.0) is None
