"""Every devcrew hook, in one place.

Each hook returns an iterable of named records (see :mod:`devcrew_core.plugin_types`);
plugins may ``return [...]`` or ``yield`` records. The core collects the records of all
plugins, rejects a name given twice (naming both plugins), and selects by name.
Implement a hook with :data:`hookimpl`::

    from devcrew_core.hookspecs import hookimpl
    from devcrew_core.plugin_types import Scorer

    @hookimpl
    def devcrew_scorers():
        yield Scorer(name="idle-first", score=lambda request, agent: -agent.current_load)
"""

# Hookspecs are declarations: pluggy never runs their (empty) bodies.
# mypy: disable-error-code="empty-body"

from __future__ import annotations

from collections.abc import Iterable

import pluggy

from devcrew_core.plugin_types import (
    AgentRunner,
    CliCommand,
    Decomposer,
    Executor,
    Notifier,
    PreconditionOperator,
    Scorer,
    StoreBackend,
    TemplateEntry,
)

PROJECT = "devcrew"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def devcrew_scorers() -> Iterable[Scorer]:
    """Agent scorers that rank eligible agents for a task request.

    The scorer named by the ``scorer`` setting (default ``default``) is used.

    Example::

        @hookimpl
        def devcrew_scorers():
            yield Scorer(name="idle-first",
                         score=lambda request, agent: -agent.current_load)
    """


@hookspec
def devcrew_decomposition_strategies() -> Iterable[Decomposer]:
    """Strategies a hub uses to split an objective into sub-tasks.

    An :class:`~devcrew_core.models.Objective` selects one by
    ``decomposition_strategy`` name.

    Example::

        @hookimpl
        def devcrew_decomposition_strategies():
            def one_task(objective, spokes):
                return [Task(task_id=f"{objective.objective_id}-all",
                             agent_type=spokes[0].agent_type,
                             input_data={"requirements": objective.requirements})]
            yield Decomposer(name="single", decompose=one_task)
    """


@hookspec
def devcrew_precondition_operators() -> Iterable[PreconditionOperator]:
    """Comparison operators for handoff preconditions (``operator: "=="``).

    Example::

        @hookimpl
        def devcrew_precondition_operators():
            yield PreconditionOperator(
                name="startswith",
                compare=lambda actual, expected: str(actual).startswith(expected))
    """


@hookspec
def devcrew_notifiers() -> Iterable[Notifier]:
    """Notifiers that deliver workflow notifications (``notification:`` in a workflow).

    Example::

        @hookimpl
        def devcrew_notifiers():
            yield Notifier(name="stdout",
                           notify=lambda n: print(n.event, n.subject, n.recipients))
    """


@hookspec
def devcrew_store_backends() -> Iterable[StoreBackend]:
    """State/audit store backends, selected by the scheme of ``state_url``/``audit_url``.

    Example::

        @hookimpl
        def devcrew_store_backends():
            yield StoreBackend(name="redis", schemes=("redis", "rediss"),
                               factory="devcrew_redis.store:open_redis_store")
    """


@hookspec
def devcrew_executors() -> Iterable[Executor]:
    """Executors that run task attempts, selected by the ``executor`` setting.

    Example::

        @hookimpl
        def devcrew_executors():
            yield Executor(name="celery",
                           factory="devcrew_celery.executor:CeleryExecutor")
    """


@hookspec
def devcrew_agent_runners() -> Iterable[AgentRunner]:
    """Runner kinds an agent may declare (``runner: {kind: ...}``).

    Example::

        @hookimpl
        def devcrew_agent_runners():
            yield AgentRunner(name="echo", factory=lambda spec: (lambda call: call.input))
    """


@hookspec
def devcrew_workflow_templates() -> Iterable[TemplateEntry]:
    """Workflow templates (TDD, feature development, bug fix, ...), by name.

    Example::

        @hookimpl
        def devcrew_workflow_templates():
            yield TemplateEntry(name="tdd", template="devcrew_templates.tdd:TDDWorkflow")
    """


@hookspec
def devcrew_cli_commands() -> Iterable[CliCommand]:
    """Extra ``devcrew`` CLI commands or groups.

    Example::

        @hookimpl
        def devcrew_cli_commands():
            @click.command()
            def hello():
                click.echo("hello")
            yield CliCommand(name="hello", command=hello)
    """
