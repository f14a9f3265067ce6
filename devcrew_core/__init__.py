"""devcrew: plugin-based multi-agent orchestration.

The public API keeps the names of the platform spec, so its examples run with only
the import line changed::

    from devcrew_core import Workflow, Task, TaskRequest, ResourceLimits
"""

from typing import TYPE_CHECKING, Any

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
    AgentSpec,
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


if TYPE_CHECKING:  # the lazy exports below, for type checkers
    from devcrew_core.delegation import DelegationManager
    from devcrew_core.engine.run import FailurePolicy
    from devcrew_core.orchestrator import TaskOrchestrator, WorkflowEngine
    from devcrew_core.runners import TaskCall

#: The engine faces, imported on first access so ``import devcrew_core`` stays light.
_LAZY_EXPORTS = {
    "TaskOrchestrator": "devcrew_core.orchestrator:TaskOrchestrator",
    "WorkflowEngine": "devcrew_core.orchestrator:WorkflowEngine",
    "DelegationManager": "devcrew_core.delegation:DelegationManager",
    "FailurePolicy": "devcrew_core.engine.run:FailurePolicy",
    "TaskCall": "devcrew_core.runners:TaskCall",
}


def __getattr__(name: str) -> Any:
    lazy = _LAZY_EXPORTS.get(name)
    if lazy is not None:
        from devcrew_core.plugins import resolve_ref

        return resolve_ref(lazy, owner="devcrew_core")
    template = _TEMPLATE_EXPORTS.get(name)
    if template is None:
        raise AttributeError(f"module 'devcrew_core' has no attribute {name!r}")
    from devcrew_core.plugins import get_plugin_manager, resolve_ref

    entry = get_plugin_manager().workflow_template(template)
    return resolve_ref(entry.template, owner=f"workflow template {template!r}")

__all__ = [
    "AgentContext",
    "AgentMatch",
    "AgentSpec",
    "ConfigError",
    "DecompositionStrategy",
    "DefinitionError",
    "DelegationManager",
    "DevcrewError",
    "ExecutionMode",
    "FailurePolicy",
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
    "TaskCall",
    "TaskOrchestrator",
    "TaskPriority",
    "TaskRequest",
    "UsageError",
    "Workflow",
    "WorkflowEngine",
    "WorkflowTemplate",
    "__version__",
    "hookimpl",
    "load_settings",
]
