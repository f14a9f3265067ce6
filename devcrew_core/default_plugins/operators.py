"""Built-in handoff precondition operators."""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator
from typing import Any

from devcrew_core.hookspecs import hookimpl
from devcrew_core.plugin_types import MISSING, PreconditionOperator


def _safe(compare: Callable[[Any, Any], Any]) -> Callable[[Any, Any], bool]:
    """A missing value or incomparable types fail the check instead of raising."""

    def check(actual: Any, expected: Any) -> bool:
        if actual is MISSING:
            return False
        try:
            return bool(compare(actual, expected))
        except TypeError:
            return False

    return check


_ABSENT_WORDS = frozenset({"false", "no", "off", "0"})


def _wants_presence(expected: Any) -> bool:
    """``exists`` with no value or a true one asks for presence; ``false``/``0`` (or the
    strings "false", "no", "off", "0") ask for absence."""
    if expected is None:
        return True
    if isinstance(expected, str):
        return expected.strip().lower() not in _ABSENT_WORDS
    return bool(expected)


def _exists(actual: Any, expected: Any) -> bool:
    present = actual is not MISSING and actual is not None
    return present if _wants_presence(expected) else not present


_OPERATORS: dict[str, tuple[Callable[[Any, Any], bool], str]] = {
    "==": (_safe(operator.eq), "actual equals expected"),
    "!=": (_safe(operator.ne), "actual differs from expected"),
    ">": (_safe(operator.gt), "actual is greater than expected"),
    ">=": (_safe(operator.ge), "actual is greater than or equal to expected"),
    "<": (_safe(operator.lt), "actual is less than expected"),
    "<=": (_safe(operator.le), "actual is less than or equal to expected"),
    "in": (_safe(lambda a, e: a in e), "actual is one of expected"),
    "not_in": (_safe(lambda a, e: a not in e), "actual is none of expected"),
    "contains": (_safe(lambda a, e: e in a), "actual contains expected"),
    "exists": (_exists, "the key is present and not null (expected true or omitted), "
               "or absent or null (expected false)"),
}


@hookimpl
def devcrew_precondition_operators() -> Iterator[PreconditionOperator]:
    """Comparison, membership and existence operators."""
    for name, (compare, description) in _OPERATORS.items():
        yield PreconditionOperator(name=name, compare=compare, description=description)
