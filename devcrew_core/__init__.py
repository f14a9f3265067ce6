"""devcrew: plugin-based multi-agent orchestration.

The public API keeps the names of the platform spec, so its examples run with only
the import line changed::

    from devcrew_core import Workflow, Task, TaskRequest, ResourceLimits
"""

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
from devcrew_core.version import __version__

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
    "__version__",
    "hookimpl",
    "load_settings",
]
