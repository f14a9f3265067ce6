"""Workflow and task definitions (the spec's ``Workflow``, ``Task``, ``RetryPolicy``)."""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, Field, field_validator, model_validator

from devcrew_core.errors import DefinitionError
from devcrew_core.models._base import Capabilities, DevcrewModel, Id, LenientEnum


class TaskPriority(LenientEnum):
    """Priority of a task or workflow, as used by delegation and scheduling."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class RetryBackoff(LenientEnum):
    """How the delay between retries grows."""

    FIXED = "fixed"
    LINEAR = "linear"
    EXPONENTIAL = "exponential"


class ExecutionMode(LenientEnum):
    """How the engine runs the ready tasks of a workflow."""

    SEQUENTIAL = "sequential"
    PARALLEL = "parallel"


class RetryPolicy(DevcrewModel):
    """How often and how patiently a failed task attempt is retried.

    ``max_retries`` counts retries *after* the first attempt.
    """

    max_retries: int = Field(default=3, ge=0)
    backoff: RetryBackoff = RetryBackoff.EXPONENTIAL
    initial_delay: float = Field(default=1.0, ge=0)
    max_delay: float = Field(default=300.0, ge=0)

    def delay_for(self, retry_number: int) -> float:
        """Seconds to wait before retry ``retry_number`` (1 for the first retry).

        >>> RetryPolicy(backoff="exponential", initial_delay=5, max_delay=300).delay_for(3)
        20.0
        """
        if retry_number < 1:
            raise ValueError(f"retry_number must be >= 1, got {retry_number}")
        if self.backoff is RetryBackoff.FIXED:
            delay = self.initial_delay
        elif self.backoff is RetryBackoff.LINEAR:
            delay = self.initial_delay * retry_number
        else:
            # Cap the exponent: 2.0 ** 1024 overflows, and any delay that large is
            # capped by max_delay anyway.
            delay = self.initial_delay * 2.0 ** min(retry_number - 1, 1000)
        return float(min(delay, self.max_delay))


class TaskResources(DevcrewModel):
    """What one attempt of a task needs on its agent. ``cpu_cores`` and ``memory_mb``
    left out come from the ``default_cpu_cores`` / ``default_memory_mb`` settings."""

    cpu_cores: float | None = Field(default=None, ge=0)
    memory_mb: float | None = Field(default=None, ge=0)
    disk_mb: float = Field(default=0.0, ge=0)
    network_mbps: float = Field(default=0.0, ge=0)
    #: Whether a higher-priority request may preempt this task (it is then re-run).
    preemptable: bool = True


class Task(DevcrewModel):
    """One unit of work in a workflow, for an agent of ``agent_type``.

    In YAML the input is written ``input:``; in Python ``input_data=``.
    """

    task_id: Id
    agent_type: Id
    agent_capabilities: Capabilities = Field(default_factory=list)
    input_data: dict[str, Any] = Field(
        default_factory=dict, validation_alias=AliasChoices("input_data", "input")
    )
    depends_on: list[Id] = Field(default_factory=list)
    timeout: float | None = Field(default=None, gt=0)
    retry: int = Field(default=0, ge=0)
    retry_policy: RetryPolicy | None = None
    priority: TaskPriority = TaskPriority.MEDIUM
    description: str = ""
    #: Resources allocated on the agent for each attempt (none: no allocation).
    resources: TaskResources | None = None

    @property
    def max_retries(self) -> int:
        """Retries after the first attempt: ``retry`` when given, else the policy's."""
        if self.retry:
            return self.retry
        return self.retry_policy.max_retries if self.retry_policy is not None else 0


class Workflow(DevcrewModel):
    """A named DAG of tasks with a priority, a timeout and notification targets."""

    workflow_id: Id = Field(validation_alias=AliasChoices("workflow_id", "id"))
    name: str = ""
    priority: TaskPriority = TaskPriority.MEDIUM
    timeout: float | None = Field(default=None, gt=0)
    tasks: list[Task] = Field(default_factory=list)
    notification: dict[str, list[str]] = Field(default_factory=dict)
    description: str = ""

    @field_validator("tasks")
    @classmethod
    def _unique_task_ids(cls, tasks: list[Task]) -> list[Task]:
        # A field validator (not a model validator) so that a rejected assignment
        # of ``tasks`` leaves the workflow unchanged.
        seen: set[str] = set()
        for task in tasks:
            if task.task_id in seen:
                raise ValueError(f"duplicate task_id {task.task_id!r}")
            seen.add(task.task_id)
        return tasks

    @model_validator(mode="after")
    def _default_name(self) -> Workflow:
        if not self.name:
            # Assigning through __dict__ avoids re-running validation recursively.
            self.__dict__["name"] = self.workflow_id
        return self

    def add_task(self, task: Task) -> None:
        """Append ``task``; a second task with the same ID is a :class:`DefinitionError`."""
        if any(existing.task_id == task.task_id for existing in self.tasks):
            raise DefinitionError(
                f"workflow {self.workflow_id!r}: duplicate task_id {task.task_id!r}"
            )
        self.tasks.append(task)

    def get_task(self, task_id: str) -> Task:
        """Return the task with ``task_id`` or raise ``KeyError``."""
        for task in self.tasks:
            if task.task_id == task_id:
                return task
        raise KeyError(task_id)
