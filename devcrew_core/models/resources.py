"""Resource models (the spec's ``ResourceLimits``, ``ResourceUsage``, ``Priority``)."""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from pydantic import Field, computed_field, model_validator

from devcrew_core.models._base import DevcrewModel, Id


class Priority(IntEnum):
    """Allocation priority; higher values may preempt lower ones."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @classmethod
    def _missing_(cls, value: Any) -> Any:
        if isinstance(value, str):
            return cls.__members__.get(value.strip().upper())
        return None


class ResourceLimits(DevcrewModel):
    """What an agent may use at once. ``None`` for disk or network means unlimited."""

    agent_id: Id | None = None
    cpu_cores: float = Field(default=2.0, ge=0)
    memory_mb: float = Field(default=2048.0, ge=0)
    disk_mb: float | None = Field(default=None, ge=0)
    network_mbps: float | None = Field(default=None, ge=0)
    max_tasks: int = Field(default=3, ge=1)


_COMPUTED = ("cpu_utilization", "memory_utilization", "disk_utilization", "task_utilization")


def _percent(used: float, limit: float | None) -> float:
    if not limit:
        return 0.0
    return 100.0 * used / limit


class ResourceUsage(DevcrewModel):
    """What an agent uses now against its limits; utilisations are percentages."""

    agent_id: Id
    cpu_used: float = Field(default=0.0, ge=0)
    cpu_limit: float = Field(default=0.0, ge=0)
    memory_used: float = Field(default=0.0, ge=0)
    memory_limit: float = Field(default=0.0, ge=0)
    disk_used: float = Field(default=0.0, ge=0)
    disk_limit: float | None = Field(default=None, ge=0)
    active_tasks: int = Field(default=0, ge=0)
    max_tasks: int = Field(default=0, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _drop_computed(cls, data: Any) -> Any:
        # model_dump() includes the computed utilisations; accept them back (and
        # recompute them) so a dumped usage can be validated again.
        if isinstance(data, dict) and any(name in data for name in _COMPUTED):
            data = {k: v for k, v in data.items() if k not in _COMPUTED}
        return data

    @computed_field  # type: ignore[prop-decorator]
    @property
    def cpu_utilization(self) -> float:
        """CPU in use as a percentage of the limit."""
        return _percent(self.cpu_used, self.cpu_limit)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def memory_utilization(self) -> float:
        """Memory in use as a percentage of the limit."""
        return _percent(self.memory_used, self.memory_limit)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def disk_utilization(self) -> float:
        """Disk in use as a percentage of the limit (0 when unlimited)."""
        return _percent(self.disk_used, self.disk_limit)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def task_utilization(self) -> float:
        """Active tasks as a percentage of ``max_tasks``."""
        return _percent(self.active_tasks, self.max_tasks)
