"""The spec's three workflow templates: TDD, feature development and bug fix.

Each phase is a task for an agent type; later phases depend on earlier ones, and
independent phases (one implementation task per component) run in parallel.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from devcrew_core.errors import DefinitionError
from devcrew_core.models import TaskPriority, Workflow
from devcrew_core.templates import WorkflowTemplate

_SLUG = re.compile(r"[^a-z0-9]+")


def _slug(text: str) -> str:
    slug = _SLUG.sub("-", text.lower()).strip("-")
    if not slug:
        raise DefinitionError(f"cannot make a task name from {text!r}")
    return slug


class TDDWorkflow(WorkflowTemplate):
    """Red (write failing tests) -> Green (implement) -> Refactor (keep tests green)."""

    def create_workflow(self, **params: Any) -> Workflow:
        """Params: ``feature_name``, ``test_file``, ``implementation_file``,
        ``requirements``; optional ``priority`` and ``timeout`` (per task)."""
        feature = str(params["feature_name"])
        common = {
            "feature": feature,
            "test_file": params.get("test_file"),
            "implementation_file": params.get("implementation_file"),
            "requirements": params.get("requirements", ""),
        }
        timeout = params.get("timeout")
        workflow = Workflow(workflow_id=self.workflow_id, name=self.name,
                            priority=params.get("priority", TaskPriority.MEDIUM))
        red = self._create_task(f"{self.workflow_id}-red", "QA-Tester",
                                {"action": "write_failing_tests", "phase": "red", **common},
                                timeout=timeout, agent_capabilities=["testing"],
                                description="Write failing tests for the feature")
        green = self._create_task(f"{self.workflow_id}-green", "Backend-Engineer",
                                  {"action": "implement_feature", "phase": "green", **common},
                                  depends_on=[red.task_id], timeout=timeout,
                                  agent_capabilities=["python"],
                                  description="Implement the feature until the tests pass")
        refactor = self._create_task(f"{self.workflow_id}-refactor", "Backend-Engineer",
                                     {"action": "refactor", "phase": "refactor", **common},
                                     depends_on=[green.task_id], timeout=timeout,
                                     agent_capabilities=["python"],
                                     description="Improve the code while keeping tests green")
        for task in (red, green, refactor):
            workflow.add_task(task)
        return workflow


def _component_agent(component: str) -> str:
    words = set(_slug(component).split("-"))
    if words & {"frontend", "ui", "web", "react"}:
        return "Frontend-Engineer"
    if words & {"database", "db", "schema", "sql"}:
        return "Database-Engineer"
    return "Backend-Engineer"


class FeatureDevelopmentWorkflow(WorkflowTemplate):
    """Design -> one implementation task per component (in parallel) -> integration
    -> testing (optional) -> review."""

    def create_workflow(self, **params: Any) -> Workflow:
        """Params: ``feature_name``, ``requirements``, ``components`` (list),
        ``testing_required`` (default True); optional ``priority``, ``timeout``."""
        feature = str(params["feature_name"])
        components: Sequence[str] = params.get("components") or ["backend"]
        timeout = params.get("timeout")
        common = {"feature": feature, "requirements": params.get("requirements", "")}
        wid = self.workflow_id
        workflow = Workflow(workflow_id=wid, name=self.name,
                            priority=params.get("priority", TaskPriority.MEDIUM))
        design = self._create_task(f"{wid}-design", "Backend-Engineer",
                                   {"action": "design", **common,
                                    "components": list(components)},
                                   timeout=timeout, description="API design and UI mockups")
        workflow.add_task(design)
        built = []
        for component in components:
            task = self._create_task(f"{wid}-implement-{_slug(component)}",
                                     _component_agent(component),
                                     {"action": "implement", "component": component, **common},
                                     depends_on=[design.task_id], timeout=timeout,
                                     description=f"Implement {component}")
            workflow.add_task(task)
            built.append(task.task_id)
        last = self._create_task(f"{wid}-integration", "Backend-Engineer",
                                 {"action": "integrate", **common}, depends_on=built,
                                 timeout=timeout, description="Connect the components")
        workflow.add_task(last)
        if params.get("testing_required", True):
            last = self._create_task(f"{wid}-testing", "QA-Tester",
                                     {"action": "end_to_end_tests", **common},
                                     depends_on=[last.task_id], timeout=timeout,
                                     agent_capabilities=["testing"],
                                     description="End-to-end testing")
            workflow.add_task(last)
        workflow.add_task(self._create_task(f"{wid}-review", "Code-Reviewer",
                                            {"action": "review", **common},
                                            depends_on=[last.task_id], timeout=timeout,
                                            description="Code review and quality checks"))
        return workflow


_SEVERITY_PRIORITY = {
    "low": TaskPriority.LOW,
    "medium": TaskPriority.MEDIUM,
    "high": TaskPriority.HIGH,
    "critical": TaskPriority.CRITICAL,
}


class BugFixWorkflow(WorkflowTemplate):
    """Reproduce -> root cause (optional) -> fix -> test -> regression."""

    def create_workflow(self, **params: Any) -> Workflow:
        """Params: ``bug_id``, ``description``, ``affected_files``, ``severity``
        (low/medium/high/critical, sets the priority), ``root_cause_analysis_required``."""
        severity = str(params.get("severity", "medium")).lower()
        if severity not in _SEVERITY_PRIORITY:
            raise DefinitionError(
                f"severity: {severity!r} is not one of {', '.join(_SEVERITY_PRIORITY)}"
            )
        common = {
            "bug_id": params["bug_id"],
            "description": params.get("description", ""),
            "affected_files": list(params.get("affected_files") or []),
            "severity": severity,
        }
        timeout = params.get("timeout")
        wid = self.workflow_id
        workflow = Workflow(workflow_id=wid, name=self.name,
                            priority=_SEVERITY_PRIORITY[severity])
        phases = [("reproduce", "QA-Tester", "Reproduce the bug")]
        if params.get("root_cause_analysis_required", True):
            phases.append(("root-cause", "Backend-Engineer", "Analyse the root cause"))
        phases += [
            ("fix", "Backend-Engineer", "Implement the fix"),
            ("test", "QA-Tester", "Verify the fix with tests"),
            ("regression", "QA-Tester", "Run the regression tests"),
        ]
        previous: list[str] = []
        for phase, agent_type, description in phases:
            task = self._create_task(f"{wid}-{phase}", agent_type,
                                     {"action": phase.replace("-", "_"), **common},
                                     depends_on=previous, timeout=timeout,
                                     description=description)
            workflow.add_task(task)
            previous = [task.task_id]
        return workflow
