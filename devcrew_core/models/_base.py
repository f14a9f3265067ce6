"""Shared pieces of every devcrew model: strict base class and validated field types."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, GetCoreSchemaHandler
from pydantic_core import CoreSchema, core_schema

from devcrew_core.ids import (
    ID_MAX_LENGTH,
    ID_PATTERN,
    ID_PATTERN_WITHOUT_LOOKAHEAD,
    ID_RULE,
    INVALID_ID_ERROR,
    invalid_id_message,
)


class DevcrewModel(BaseModel):
    """Base model: unknown fields are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)


def _check_id(value: str) -> str:
    if ID_PATTERN.fullmatch(value) is None:
        raise ValueError(invalid_id_message(value))
    return value


def _normalise_capabilities(values: list[str]) -> list[str]:
    """Lowercase, strip and de-duplicate capabilities, keeping their order."""
    seen: dict[str, None] = {}
    for raw in values:
        name = raw.strip().lower()
        if not name:
            raise ValueError("capabilities must not contain empty names")
        seen[_check_id(name)] = None
    return list(seen)


def _non_empty(values: list[str]) -> list[str]:
    if not values:
        raise ValueError("must have at least one capability")
    return values


class _IdSchema:
    """An ID checked inside pydantic-core (its Rust regex engine), not by a Python
    validator: records on the allocator's hot path have two or three IDs, and the Python
    calls were a quarter of the cost of building an allocation. A value that is not a
    string fails as for any ``str`` field; a string that is not an ID fails with one
    error type, :data:`~devcrew_core.ids.INVALID_ID_ERROR` (``devcrew_core.validation``
    writes it as :func:`~devcrew_core.ids.invalid_id_message`, naming the value).
    The pattern's ``$`` is the Rust engine's, the end of the string only (Python's
    ``re`` would also match before a final newline): models keep the default
    ``regex_engine``, and a test checks the models accept exactly what
    :func:`~devcrew_core.ids.validate_id` accepts, ``"a\\n"`` included."""

    def __get_pydantic_core_schema__(self, source: Any,
                                     handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.chain_schema([
            core_schema.str_schema(),
            core_schema.custom_error_schema(
                core_schema.str_schema(pattern=ID_PATTERN_WITHOUT_LOOKAHEAD,
                                       max_length=ID_MAX_LENGTH, strict=True),
                custom_error_type=INVALID_ID_ERROR,
                custom_error_message=f"invalid ID (expected {ID_RULE})"),
        ])


Id = Annotated[str, _IdSchema()]
"""A validated identifier (``[A-Za-z0-9._-]{1,128}``, not only dots)."""

Capabilities = Annotated[list[str], AfterValidator(_normalise_capabilities)]
"""Capability names, normalised to lowercase; may be empty."""

RequiredCapabilities = Annotated[Capabilities, AfterValidator(_non_empty)]
"""Capability names, normalised to lowercase; at least one."""

E = TypeVar("E", bound="LenientEnum")


class LenientEnum(str, Enum):
    """A string enum that also accepts its member names and any letter case.

    ``TaskPriority("HIGH")``, ``TaskPriority("high")`` and ``TaskPriority.HIGH`` are equal.
    """

    @classmethod
    def _missing_(cls, value: Any) -> Any:
        if isinstance(value, str):
            wanted = value.strip().lower()
            for member in cls:
                if member.value == wanted or member.name.lower() == wanted:
                    return member
        return None

    def __str__(self) -> str:
        return str(self.value)
