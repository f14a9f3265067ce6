"""The bundled workflow templates, reached the spec's way and through the template hook."""

from __future__ import annotations

from typing import Any

import pytest

from devcrew_core import (
    DefinitionError,
    Task,
    TaskPriority,
    Workflow,
    WorkflowTemplate,
)
from devcrew_core.plugins import PluginManager


def _deps(workflow: Workflow) -> dict[str, list[str]]:
    return {t.task_id: t.depends_on for t in workflow.tasks}


def test_tdd_template_red_green_refactor() -> None:
    from devcrew_core import TDDWorkflow

    template = TDDWorkflow(workflow_id="tdd-auth-001", name="TDD User Authentication")
    workflow = template.create_workflow(
        feature_name="user_authentication",
        test_file="tests/test_user_auth.py",
        implementation_file="src/auth/user_auth.py",
        requirements="JWT-based authentication with refresh tokens",
    )
    assert workflow.workflow_id == "tdd-auth-001" and workflow.name == "TDD User Authentication"
    assert _deps(workflow) == {
        "tdd-auth-001-red": [],
        "tdd-auth-001-green": ["tdd-auth-001-red"],
        "tdd-auth-001-refactor": ["tdd-auth-001-green"],
    }
    red = workflow.get_task("tdd-auth-001-red")
    assert red.agent_type == "QA-Tester"
    assert red.input_data["test_file"] == "tests/test_user_auth.py"


def test_feature_template_fans_out_per_component() -> None:
    from devcrew_core import FeatureDevelopmentWorkflow

    workflow = FeatureDevelopmentWorkflow(workflow_id="feature-payment-001").create_workflow(
        feature_name="stripe_payment_integration",
        requirements="Integrate Stripe payment processing with webhook support",
        components=["api", "database", "frontend"],
        testing_required=True,
    )
    deps = _deps(workflow)
    parts = ["feature-payment-001-implement-api", "feature-payment-001-implement-database",
             "feature-payment-001-implement-frontend"]
    for part in parts:
        assert deps[part] == ["feature-payment-001-design"]
    assert deps["feature-payment-001-integration"] == parts
    assert deps["feature-payment-001-testing"] == ["feature-payment-001-integration"]
    assert deps["feature-payment-001-review"] == ["feature-payment-001-testing"]
    types = {t.task_id: t.agent_type for t in workflow.tasks}
    assert types["feature-payment-001-implement-frontend"] == "Frontend-Engineer"
    assert types["feature-payment-001-implement-database"] == "Database-Engineer"
    untested = FeatureDevelopmentWorkflow(workflow_id="f2").create_workflow(
        feature_name="x", requirements="y", components=["api"], testing_required=False)
    assert "f2-testing" not in _deps(untested)
    assert _deps(untested)["f2-review"] == ["f2-integration"]


def test_bugfix_template_phases_and_severity() -> None:
    from devcrew_core import BugFixWorkflow

    workflow = BugFixWorkflow(workflow_id="bugfix-memory-001", name="Memory Leak Fix")
    built = workflow.create_workflow(
        bug_id="BUG-1234",
        description="Memory leak in long-running background task",
        affected_files=["src/tasks/background_worker.py"],
        severity="high",
        root_cause_analysis_required=True,
    )
    assert [t.task_id.removeprefix("bugfix-memory-001-") for t in built.tasks] == [
        "reproduce", "root-cause", "fix", "test", "regression"]
    assert built.priority is TaskPriority.HIGH
    assert built.tasks[2].depends_on == ["bugfix-memory-001-root-cause"]
    quick = BugFixWorkflow(workflow_id="b2").create_workflow(
        bug_id="B", description="d", affected_files=[], severity="low",
        root_cause_analysis_required=False)
    assert [t.task_id for t in quick.tasks][:2] == ["b2-reproduce", "b2-fix"]
    with pytest.raises(DefinitionError, match="severity"):
        BugFixWorkflow(workflow_id="b3").create_workflow(bug_id="B", severity="apocalyptic")


def test_custom_template_from_the_spec() -> None:
    class CustomWorkflow(WorkflowTemplate):
        def create_workflow(self, **params: Any) -> Workflow:
            workflow = Workflow(workflow_id=self.workflow_id, name=self.name,
                                priority=params.get("priority", "medium"))
            task1 = self._create_task(task_id=f"{self.workflow_id}_step1",
                                      agent_type="Custom-Agent",
                                      input_data={"action": "custom_action"}, timeout=1800)
            workflow.add_task(task1)
            return workflow

    workflow = CustomWorkflow(workflow_id="custom-001", name="Custom Workflow").create_workflow(
        priority="high")
    assert workflow.priority is TaskPriority.HIGH
    assert isinstance(workflow.tasks[0], Task) and workflow.tasks[0].timeout == 1800
    with pytest.raises(DefinitionError):
        CustomWorkflow(workflow_id="bad id")


def test_templates_are_published_through_the_hook() -> None:
    manager = PluginManager.discover()
    assert set(manager.workflow_templates()) >= {"tdd", "feature-development", "bug-fix"}
    row = next(r for r in manager.describe() if r["name"] == "devcrew_templates")
    assert row["hooks"] == ["devcrew_workflow_templates"]


def test_unknown_attribute_is_an_attribute_error() -> None:
    import devcrew_core

    with pytest.raises(AttributeError):
        devcrew_core.NoSuchWorkflow  # noqa: B018
