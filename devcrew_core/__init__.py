"""devcrew: plugin-based multi-agent orchestration.

The public API keeps the names of the platform spec, so its examples run with only
the import line changed::

    from devcrew_core import TaskOrchestrator, Workflow, Task, TaskRequest, ResourceLimits

Every name is imported on first access, so ``import devcrew_core`` (and ``devcrew
--version``) stays fast: building the pydantic models is paid for only when used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from devcrew_core.version import __version__

if TYPE_CHECKING:  # the lazy exports below, for type checkers and IDEs
    from devcrew_core.allocator import ResourceAllocator
    from devcrew_core.config import Settings, load_settings
    from devcrew_core.delegation import DelegationManager
    from devcrew_core.engine.run import FailurePolicy
    from devcrew_core.errors import (
        ConfigError,
        DefinitionError,
        DevcrewError,
        NoCapacityError,
        NotFoundError,
        PluginError,
        StoreError,
        TaskFailedError,
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
    from devcrew_core.orchestrator import TaskOrchestrator, WorkflowEngine
    from devcrew_core.runners import TaskCall
    from devcrew_core.templates import WorkflowTemplate

_MODELS = (
    "AgentContext", "AgentMatch", "AgentSpec", "DecompositionStrategy", "ExecutionMode",
    "HandoffPrecondition", "HandoffResult", "Objective", "Priority", "ResourceLimits",
    "ResourceUsage", "RetryBackoff", "RetryPolicy", "Task", "TaskPriority", "TaskRequest",
    "Workflow",
)
_ERRORS = (
    "ConfigError", "DefinitionError", "DevcrewError", "NoCapacityError", "NotFoundError",
    "PluginError",
    "StoreError", "TaskFailedError", "UsageError",
)

#: name -> the module that defines it.
_LAZY: dict[str, str] = {
    **dict.fromkeys(_MODELS, "devcrew_core.models"),
    **dict.fromkeys(_ERRORS, "devcrew_core.errors"),
    "Settings": "devcrew_core.config",
    "load_settings": "devcrew_core.config",
    "hookimpl": "devcrew_core.hookspecs",
    "WorkflowTemplate": "devcrew_core.templates",
    "TaskOrchestrator": "devcrew_core.orchestrator",
    "WorkflowEngine": "devcrew_core.orchestrator",
    "DelegationManager": "devcrew_core.delegation",
    "ResourceAllocator": "devcrew_core.allocator",
    "FailurePolicy": "devcrew_core.engine.run",
    "TaskCall": "devcrew_core.runners",
}

#: The spec's template classes, provided by the devcrew_templates plugin and looked up
#: through the workflow-template hook on first access.
_TEMPLATE_EXPORTS = {
    "TDDWorkflow": "tdd",
    "FeatureDevelopmentWorkflow": "feature-development",
    "BugFixWorkflow": "bug-fix",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value  # later lookups skip this function
        return value
    template = _TEMPLATE_EXPORTS.get(name)
    if template is None:
        raise AttributeError(f"module 'devcrew_core' has no attribute {name!r}")
    from devcrew_core.plugins import get_plugin_manager, resolve_ref

    entry = get_plugin_manager().workflow_template(template)
    return resolve_ref(entry.template, owner=f"workflow template {template!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, *_TEMPLATE_EXPORTS})


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
    "NoCapacityError",
    "NotFoundError",
    "Objective",
    "PluginError",
    "Priority",
    "ResourceAllocator",
    "ResourceLimits",
    "ResourceUsage",
    "RetryBackoff",
    "RetryPolicy",
    "Settings",
    "StoreError",
    "Task",
    "TaskCall",
    "TaskFailedError",
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
