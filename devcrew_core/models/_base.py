"""Shared pieces of every devcrew model: strict base class and validated field types."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict

from devcrew_core.ids import ID_PATTERN, invalid_id_message


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


Id = Annotated[str, AfterValidator(_check_id)]
"""A validated identifier (``[A-Za-z0-9._-]{1,128}``)."""

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
