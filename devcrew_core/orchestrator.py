"""The spec's faces over the one engine: ``TaskOrchestrator`` and ``WorkflowEngine``.

Both read their configuration when constructed (not at import), so one process can use
several homes or stores. With no arguments they use the embedded default (SQLite under
``$DEVCREW_HOME``); ``redis_url=`` selects the Redis state store as in the spec.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import ValidationError

from devcrew_core.config import Settings, load_settings
from devcrew_core.engine.engine import Engine
from devcrew_core.engine.run import FailurePolicy
from devcrew_core.errors import DefinitionError
from devcrew_core.models import AgentSpec, ExecutionMode, ResourceLimits, Workflow
from devcrew_core.validation import describe_validation_error


def _settings(
    settings: Settings | None,
    redis_url: str | None,
    **overrides: Any,
) -> Settings:
    if settings is not None:
        return settings
    config_file = overrides.pop("config_file", None)
    return load_settings(config_file=config_file, redis_url=redis_url, **overrides)


class _EngineFace:
    """Shared construction and lifecycle of the faces."""

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        state_url: str | None = None,
        audit_url: str | None = None,
        home: str | os.PathLike[str] | None = None,
        config_file: str | os.PathLike[str] | None = None,
        settings: Settings | None = None,
        engine: Engine | None = None,
    ) -> None:
        # A face closes only an engine it built: a shared one belongs to its creator.
        self._owns_engine = engine is None
        if engine is not None:
            self.engine = engine
        else:
            resolved = _settings(settings, redis_url, state_url=state_url,
                                 audit_url=audit_url, home=home, config_file=config_file)
            self.engine = Engine(resolved)
        self.settings = self.engine.settings

    def register_agent(
        self,
        agent_id: str,
        agent_type: str,
        capabilities: list[str],
        max_concurrent_tasks: int = 3,
        priority_weight: int = 10,
        available: bool = True,
        resource_limits: ResourceLimits | None = None,
        metadata: dict[str, Any] | None = None,
        runner: Any = None,
    ) -> bool:
        """Register an agent and how it runs (``runner``: a callable, a
        ``"module:function"`` string, or a declaration dict such as
        ``{"kind": "command", "argv": [...]}``)."""
        try:
            spec = AgentSpec(
                agent_id=agent_id, agent_type=agent_type, capabilities=capabilities,
                max_concurrent_tasks=max_concurrent_tasks, priority_weight=priority_weight,
                available=available, resource_limits=resource_limits, metadata=metadata or {},
            )
        except ValidationError as exc:
            raise DefinitionError(describe_validation_error(exc, prefix="agent")) from exc
        self.engine.register_agent(spec, runner=runner)
        return True

    def close(self) -> None:
        """Release the stores (of an engine this face built; a shared engine stays
        open)."""
        if self._owns_engine:
            self.engine.close()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TaskOrchestrator(_EngineFace):
    """Create, execute, observe, cancel and resume workflows (the spec's API)."""

    @staticmethod
    def parse_workflow_definition(file_path: str | os.PathLike[str]) -> Workflow:
        """Parse a workflow file (YAML or JSON, the spec's format); errors name the file,
        field and value. Agents declared in the file are ignored here (see
        :meth:`load_definition`)."""
        from devcrew_core.engine.definition import load_definition

        return load_definition(file_path).workflow

    def load_definition(self, file_path: str | os.PathLike[str]) -> Workflow:
        """Parse a workflow file, register the agents it declares, and store the workflow."""
        from devcrew_core.engine.definition import load_definition

        definition = load_definition(file_path)
        for agent in definition.agents:
            self.engine.register_agent(agent)
        self.create_workflow(definition.workflow)
        return definition.workflow

    def create_workflow(self, workflow: Workflow) -> str:
        """Validate and store a workflow; returns its ID."""
        return self.engine.save_workflow(workflow)

    def execute_workflow(
        self,
        workflow_id: str,
        execution_mode: ExecutionMode | str = ExecutionMode.PARALLEL,
        failure_policy: FailurePolicy | str = FailurePolicy.FAIL_FAST,
    ) -> dict[str, Any]:
        """Run a stored workflow to its end and return the result document
        (``status``, ``tasks_completed``, ``duration_seconds``, ``results``, ...)."""
        options = self.engine.default_options(mode=ExecutionMode(execution_mode),
                                              failure_policy=FailurePolicy(failure_policy))
        run = self.engine.execute(workflow_id, options)
        return self.engine.document(run)

    def get_workflow_status(self, workflow_id: str) -> dict[str, Any]:
        """Status of a run, or of the latest run of a workflow."""
        return self.engine.status(workflow_id)

    def cancel_workflow(self, workflow_id: str) -> bool:
        """Cancel a running (or pending) run; False when it had already finished."""
        return self.engine.cancel(workflow_id)

    def resume_workflow(self, workflow_id: str, force: bool = False) -> dict[str, Any]:
        """Continue a run whose process died, without re-running completed tasks."""
        return self.engine.document(self.engine.resume(workflow_id, force=force))

    def list_workflows(self, status: str | None = None) -> list[dict[str, Any]]:
        """One summary per run (newest last), optionally filtered by status."""
        return [
            {k: v for k, v in self.engine.document(run).items() if k not in ("tasks", "results")}
            for run in self.engine.state_store.list_runs(status=status)
        ]


class WorkflowEngine(_EngineFace):
    """Execute workflow objects directly (templates, execution modes)."""

    def execute_workflow(
        self,
        workflow: Workflow,
        execution_mode: ExecutionMode | str = ExecutionMode.SEQUENTIAL,
        failure_policy: FailurePolicy | str = FailurePolicy.FAIL_FAST,
    ) -> dict[str, Any]:
        """Store ``workflow``, run it in ``execution_mode`` and return the result document."""
        self.engine.save_workflow(workflow)
        options = self.engine.default_options(mode=ExecutionMode(execution_mode),
                                              failure_policy=FailurePolicy(failure_policy))
        run = self.engine.execute(workflow.workflow_id, options)
        return self.engine.document(run)
