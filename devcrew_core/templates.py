"""The base class of workflow templates (the spec's ``WorkflowTemplate``).

A template builds a :class:`~devcrew_core.models.Workflow` from a few parameters::

    class CustomWorkflow(WorkflowTemplate):
        def create_workflow(self, **params):
            workflow = Workflow(workflow_id=self.workflow_id, name=self.name,
                                priority=params.get("priority", "medium"))
            workflow.add_task(self._create_task(
                task_id=f"{self.workflow_id}_step1", agent_type="Custom-Agent",
                input_data={"action": "custom_action"}, timeout=1800))
            return workflow

Templates are published to devcrew through the ``devcrew_workflow_templates`` hook.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

from devcrew_core.ids import validate_id
from devcrew_core.models import Task, Workflow


class WorkflowTemplate(abc.ABC):
    """Builds workflows of one shape; subclasses implement :meth:`create_workflow`."""

    def __init__(self, workflow_id: str, name: str = "") -> None:
        self.workflow_id = validate_id(workflow_id, "workflow_id")
        self.name = name or workflow_id

    @abc.abstractmethod
    def create_workflow(self, **params: Any) -> Workflow:
        """Return a new workflow built from ``params``."""

    def _create_task(
        self,
        task_id: str,
        agent_type: str,
        input_data: dict[str, Any] | None = None,
        depends_on: Sequence[str] = (),
        timeout: float | None = None,
        agent_capabilities: Sequence[str] = (),
        retry: int = 0,
        description: str = "",
    ) -> Task:
        """Build one validated task (a convenience for subclasses)."""
        return Task(
            task_id=task_id,
            agent_type=agent_type,
            agent_capabilities=list(agent_capabilities),
            input_data=dict(input_data or {}),
            depends_on=list(depends_on),
            timeout=timeout,
            retry=retry,
            description=description,
        )
