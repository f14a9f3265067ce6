"""Hook implementations of devcrew_templates: the three built-in workflow templates."""

from __future__ import annotations

from collections.abc import Iterator

from devcrew_core.hookspecs import hookimpl
from devcrew_core.plugin_types import TemplateEntry


@hookimpl
def devcrew_workflow_templates() -> Iterator[TemplateEntry]:
    """TDD, feature development and bug fix, imported only when selected."""
    yield TemplateEntry(name="tdd", template="devcrew_templates.workflows:TDDWorkflow",
                        description="Red -> Green -> Refactor")
    yield TemplateEntry(
        name="feature-development",
        template="devcrew_templates.workflows:FeatureDevelopmentWorkflow",
        description="Design -> components -> integration -> testing -> review",
    )
    yield TemplateEntry(name="bug-fix", template="devcrew_templates.workflows:BugFixWorkflow",
                        description="Reproduce -> root cause -> fix -> test -> regression")
