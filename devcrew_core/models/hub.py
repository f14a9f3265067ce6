"""Hub-and-spoke models (the spec's ``Objective`` and ``DecompositionStrategy``)."""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, Field, field_validator

from devcrew_core.models._base import DevcrewModel, Id, LenientEnum


class DecompositionStrategy(LenientEnum):
    """Built-in ways for a hub to split an objective; plugins may add more by name."""

    FUNCTIONAL = "functional"
    SEQUENTIAL = "sequential"
    PARALLEL = "parallel"


class Objective(DevcrewModel):
    """A high-level goal that a hub decomposes into sub-tasks for its spokes.

    ``decomposition_strategy`` is a :class:`DecompositionStrategy` or the name of a
    strategy contributed by a plugin.
    """

    objective_id: Id = Field(validation_alias=AliasChoices("objective_id", "id"))
    description: str = Field(min_length=1)
    requirements: list[str] = Field(default_factory=list)
    constraints: dict[str, Any] = Field(default_factory=dict)
    decomposition_strategy: str = Field(
        default=DecompositionStrategy.FUNCTIONAL.value, min_length=1
    )
    context: dict[str, Any] = Field(default_factory=dict)

    @field_validator("decomposition_strategy", mode="before")
    @classmethod
    def _strategy_name(cls, value: Any) -> Any:
        if isinstance(value, DecompositionStrategy):
            return value.value
        if isinstance(value, str):
            return value.strip().lower()
        return value
