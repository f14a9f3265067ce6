"""devcrew: plugin-based multi-agent orchestration.

The public API keeps the names of the platform spec, so its examples run with only
the import line changed::

    from devcrew_core import Workflow, Task, TaskRequest, ResourceLimits
"""

from typing import Any

from devcrew_core.config import Settings, load_settings
from devcrew_core.errors import (
    ConfigError,
    DefinitionError,
    DevcrewError,
    NotFoundError,
    PluginError,
    StoreError,
    UsageError,
)
from devcrew_core.hookspecs import hookimpl
from devcrew_core.models import (
    AgentContext,
    AgentMatch,
    DecompositionStrategy,
    ExecutionMode,
    HandoffPrecondition,
    HandoffResult,
    Objective,
    Priority,
    ResourceLimits,
    ResourceUsage,
    RetryBackoff,
    RetryPolicy,
    Task,
    TaskPriority,
    TaskRequest,
    Workflow,
)
from devcrew_core.templates import WorkflowTemplate
from devcrew_core.version import __version__

#: The spec's template classes, provided by the devcrew_templates plugin and looked up
#: through the workflow-template hook on first access.
_TEMPLATE_EXPORTS = {
    "TDDWorkflow": "tdd",
    "FeatureDevelopmentWorkflow": "feature-development",
    "BugFixWorkflow": "bug-fix",
}


def __getattr__(name: str) -> Any:
    template = _TEMPLATE_EXPORTS.get(name)
    if template is None:
        raise AttributeError(f"module 'devcrew_core' has no attribute {name!r}")
    from devcrew_core.plugins import get_plugin_manager, resolve_ref

    entry = get_plugin_manager().workflow_template(template)
    return resolve_ref(entry.template, owner=f"workflow template {template!r}")

__all__ = [
    "AgentContext",
    "AgentMatch",
    "ConfigError",
    "DecompositionStrategy",
    "DefinitionError",
    "DevcrewError",
    "ExecutionMode",
    "HandoffPrecondition",
    "HandoffResult",
    "NotFoundError",
    "Objective",
    "PluginError",
    "Priority",
    "ResourceLimits",
    "ResourceUsage",
    "RetryBackoff",
    "RetryPolicy",
    "Settings",
    "StoreError",
    "Task",
    "TaskPriority",
    "TaskRequest",
    "UsageError",
    "Workflow",
    "WorkflowTemplate",
    "__version__",
    "hookimpl",
    "load_settings",
]
