"""How an agent is declared (in a workflow or crew file, or through the Python API)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from devcrew_core.models._base import DevcrewModel, Id, RequiredCapabilities
from devcrew_core.models.resources import ResourceLimits


class AgentSpec(DevcrewModel):
    """An agent declaration: the spec's agent fields plus ``runner``.

    ``runner`` says how the agent runs, e.g. ``{"kind": "command", "argv": [...]}``,
    ``{"kind": "python", "callable": "package.module:function"}`` or
    ``{"kind": "http", "url": "http://127.0.0.1:8080/run"}``. An agent without a runner
    can be registered and delegated to, but the engine cannot execute tasks on it.
    """

    agent_id: Id
    agent_type: Id
    capabilities: RequiredCapabilities
    max_concurrent_tasks: int = Field(default=3, ge=1)
    priority_weight: int = Field(default=10, ge=1, le=100)
    available: bool = True
    resource_limits: ResourceLimits | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    runner: dict[str, Any] | None = None

    @field_validator("runner")
    @classmethod
    def _runner_has_kind(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            kind = value.get("kind")
            if not isinstance(kind, str) or not kind.strip():
                raise ValueError(
                    "runner needs a 'kind' (python, command, http, or one from a plugin)"
                )
        return value
