"""Load workflow and crew definitions (YAML or JSON) into validated models, and back.

A *definition file* holds one workflow and, optionally, the agents that run it::

    workflow:
      id: feature-dev-001
      tasks:
        - task_id: design-api
          agent_type: Backend-Engineer
          input: {feature: user_profile}
    agents:
      - agent_id: backend-dev-001
        agent_type: Backend-Engineer
        capabilities: [python]
        runner: {kind: command, argv: [./design.sh]}

A *crew file* holds only ``agents:``. The format is documented in
``docs/workflow-format.md``. Every problem is a :class:`~devcrew_core.errors.DefinitionError`
whose message names the file, the field path (``workflow.tasks[1].timeout``) and the
value, and it is raised before anything runs or is stored.
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from devcrew_core.engine.dag import DagError, validate_dag
from devcrew_core.errors import DefinitionError, PluginError
from devcrew_core.models import AgentSpec, RetryPolicy, Task, TaskPriority, Workflow
from devcrew_core.plugins import PluginManager, get_plugin_manager, resolve_ref
from devcrew_core.validation import describe_validation_error

__all__ = [
    "Definition",
    "crew_to_document",
    "load_crew",
    "load_definition",
    "parse_crew",
    "parse_definition",
    "read_document",
    "workflow_to_document",
]

#: Field names whose values are never shown in an error (runner headers, env, ...).
SECRET_FIELDS = frozenset({
    "api_key", "apikey", "authorization", "env", "headers", "password", "secret", "token",
})
#: Limits that keep a hostile document (deep nesting, YAML alias bombs) from hanging us.
MAX_DEPTH = 100
MAX_VALUES = 1_000_000
_SHOWN_CHARS = 120

_DEFINITION_KEYS = ("workflow", "agents")
_CREW_KEYS = ("agents",)


@dataclass(frozen=True)
class Definition:
    """A validated workflow and the agents declared alongside it.

    ``source`` is the file it came from (``None`` for in-memory data).
    """

    workflow: Workflow
    agents: list[AgentSpec]
    source: str | None = None


# -- reading files -------------------------------------------------------------------------

def read_document(path: str | os.PathLike[str]) -> Any:
    """Read a YAML or JSON file (told apart by content) into plain Python data.

    Only plain data is accepted (``yaml.safe_load``): a ``!!python/...`` tag, a
    duplicated mapping key, malformed YAML or JSON (with line and column) and an
    unreadable file are :class:`~devcrew_core.errors.DefinitionError`\\ s naming the file.
    """
    name = os.fspath(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise DefinitionError(f"{name}: cannot read file: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DefinitionError(
            f"{name}: not UTF-8 text (invalid byte at offset {exc.start})"
        ) from exc
    try:
        return _parse_text(text, name)
    except RecursionError:
        raise DefinitionError(f"{name}: nested too deeply") from None


class _DuplicateKeyError(ValueError):
    pass


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKeyError(key)
        result[key] = value
    return result


def _parse_text(text: str, name: str) -> Any:
    json_error: json.JSONDecodeError | None = None
    if text.lstrip().startswith(("{", "[")):
        try:
            return json.loads(text, object_pairs_hook=_unique_pairs)
        except json.JSONDecodeError as exc:
            json_error = exc  # maybe flow-style YAML: try that before giving up
        except _DuplicateKeyError:
            pass  # the YAML pass below reports it with its line and column
    try:
        _reject_duplicate_keys(yaml.compose(text, Loader=yaml.SafeLoader), name)
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        if json_error is not None:
            raise DefinitionError(
                f"{name}: invalid JSON (line {json_error.lineno}, column {json_error.colno}): "
                f"{json_error.msg}"
            ) from json_error
        raise DefinitionError(_describe_yaml_error(exc, name)) from exc
    except yaml.YAMLError as exc:
        raise DefinitionError(f"{name}: invalid YAML: {exc}") from exc


def _describe_yaml_error(exc: yaml.MarkedYAMLError, name: str) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
    problem = exc.problem or exc.context or str(exc)
    if exc.problem and exc.context:
        problem = f"{exc.problem} ({exc.context})"
    if isinstance(exc, yaml.constructor.ConstructorError) and "for the tag" in problem:
        return (
            f"{name}: tag not allowed{where}: {problem}; definition files hold plain data "
            "only (mappings, lists, strings, numbers, booleans, null)"
        )
    return f"{name}: invalid YAML{where}: {problem}"


def _reject_duplicate_keys(root: yaml.Node | None, name: str) -> None:
    """PyYAML keeps the last of two equal keys silently; refuse them instead."""
    seen_nodes: set[int] = set()
    stack = [] if root is None else [root]
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:  # aliases share nodes: visit each once
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first_at: dict[tuple[str, str], yaml.Node] = {}
            for key_node, value_node in node.value:
                stack.append(value_node)
                if not isinstance(key_node, yaml.ScalarNode) or key_node.value == "<<":
                    stack.append(key_node)
                    continue
                key = (key_node.tag, key_node.value)
                if key in first_at:
                    mark, first = key_node.start_mark, first_at[key].start_mark
                    raise DefinitionError(
                        f"{name}: duplicate key {key_node.value!r} (line {mark.line + 1}, "
                        f"column {mark.column + 1}; first at line {first.line + 1})"
                    )
                first_at[key] = key_node
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


# -- checking plain data -------------------------------------------------------------------

def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def _at(source: str | None, path: str, message: str) -> DefinitionError:
    head = f"{source}: " if source else ""
    return DefinitionError(f"{head}{path}: {message}" if path else f"{head}{message}")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _check_plain_data(data: Any, source: str | None) -> None:
    """Insist on JSON-compatible data (what stores and runners exchange).

    YAML turns unquoted ``2025-12-01`` into a date and ``yes:`` into a boolean key;
    both would change meaning on the way to JSON, so they are refused with a hint.
    """
    count = 0

    def visit(value: Any, path: str, depth: int) -> None:
        nonlocal count
        count += 1
        if count > MAX_VALUES:
            raise _at(source, "", f"more than {MAX_VALUES} values (after expanding YAML "
                                  "aliases); refusing to load")
        if depth > MAX_DEPTH:
            raise _at(source, path, f"nested more than {MAX_DEPTH} levels deep "
                                    "(or a recursive YAML alias)")
        if value is None or isinstance(value, (bool, int, str)):
            return
        if isinstance(value, float):
            if not math.isfinite(value):
                raise _at(source, path, f"{value!r} is not a finite number")
            return
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise _at(source, _join(path, str(key)),
                              f"key {key!r} is a {type(key).__name__}, not a string "
                              "(quote it)")
                visit(item, _join(path, key), depth + 1)
            return
        if isinstance(value, list):
            for i, item in enumerate(value):
                visit(item, f"{path}[{i}]", depth + 1)
            return
        hint = " (quote it to keep it a string)" if hasattr(value, "isoformat") else ""
        raise _at(source, path, f"a {type(value).__name__} is not allowed here, only "
                                f"JSON-like data{hint} (got {_show(value)})")

    visit(data, "", 0)


def _check_top_level(data: Any, source: str | None, allowed: tuple[str, ...],
                     required: str) -> dict[str, Any]:
    what = " and ".join(repr(key) for key in allowed)
    if data is None:
        raise _at(source, "", f"empty document; expected a mapping with {what}")
    if not isinstance(data, dict):
        raise _at(source, "", f"expected a mapping with {what} at the top level "
                              f"(got a {type(data).__name__}: {_show(data)})")
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise _at(source, key, f"unknown top-level key {key!r} (allowed: {what}){hint}")
    if required not in data:
        hint = ""
        if required == "workflow" and "agents" in data:
            hint = " (a file with only 'agents' is a crew file)"
        raise _at(source, required, f"missing required top-level key {required!r}{hint}")
    return data


def _validate_model(model: type[BaseModel], data: Any, source: str | None,
                    prefix: str) -> Any:
    """Validate strictly through JSON: ``"3"`` is not a number, ``yes`` is not ``true``."""
    try:
        return model.model_validate_json(json.dumps(data), strict=True)
    except ValidationError as exc:
        raise DefinitionError(
            describe_validation_error(exc, source, prefix=prefix, secret_fields=SECRET_FIELDS)
        ) from exc


def _reject_both(item: Mapping[str, Any], names: tuple[str, str], source: str | None,
                 path: str) -> None:
    if all(name in item for name in names):
        raise _at(source, _join(path, names[1]),
                  f"give either {names[0]!r} or {names[1]!r}, not both")


def _reconcile_retry(task: dict[str, Any], source: str | None, path: str) -> dict[str, Any]:
    """``retry: N`` is shorthand for ``retry_policy.max_retries: N``: fill it in when the
    policy leaves it out, and refuse two different numbers."""
    retry, policy = task.get("retry"), task.get("retry_policy")
    if not isinstance(retry, int) or isinstance(retry, bool) or not isinstance(policy, dict):
        return task  # absent or mistyped: the model validation reports it
    if "max_retries" not in policy:
        return {**task, "retry_policy": {**policy, "max_retries": retry}}
    if policy["max_retries"] != retry:
        raise _at(source, f"{path}.retry_policy.max_retries",
                  f"{policy['max_retries']!r} contradicts retry: {retry!r} (give one, or "
                  "the same number)")
    return task


def _parse_workflow(raw: Any, source: str | None) -> Workflow:
    if not isinstance(raw, dict):
        raise _at(source, "workflow",
                  f"expected a mapping (got a {type(raw).__name__}: {_show(raw)})")
    _reject_both(raw, ("id", "workflow_id"), source, "workflow")
    if "id" not in raw and "workflow_id" not in raw:
        raise _at(source, "workflow.id", "required: the workflow's ID")
    tasks = raw.get("tasks")
    if isinstance(tasks, list):
        first_index: dict[str, int] = {}
        checked = []
        for i, task in enumerate(tasks):
            path = f"workflow.tasks[{i}]"
            if isinstance(task, dict):
                _reject_both(task, ("input", "input_data"), source, path)
                task_id = task.get("task_id")
                if isinstance(task_id, str):
                    if task_id in first_index:
                        raise _at(source, f"{path}.task_id",
                                  f"duplicate task_id {task_id!r} (also "
                                  f"workflow.tasks[{first_index[task_id]}])")
                    first_index[task_id] = i
                task = _reconcile_retry(task, source, path)
            checked.append(task)
        raw = {**raw, "tasks": checked}
    workflow: Workflow = _validate_model(Workflow, raw, source, "workflow")
    return workflow


def _parse_agents(raw: Any, source: str | None) -> list[AgentSpec]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise _at(source, "agents",
                  f"expected a list of agents (got a {type(raw).__name__}: {_show(raw)})")
    agents: list[AgentSpec] = []
    first_index: dict[str, int] = {}
    for i, item in enumerate(raw):
        agent: AgentSpec = _validate_model(AgentSpec, item, source, f"agents[{i}]")
        if agent.agent_id in first_index:
            raise _at(source, f"agents[{i}].agent_id",
                      f"duplicate agent_id {agent.agent_id!r} (also "
                      f"agents[{first_index[agent.agent_id]}])")
        first_index[agent.agent_id] = i
        agents.append(agent)
    return agents


def _check_runners(agents: Iterable[AgentSpec], source: str | None,
                   plugins: PluginManager | None) -> None:
    """Build each agent's runner once (and throw it away) so that a bad runner
    declaration fails now, not at the first task attempt."""
    manager = plugins
    for i, agent in enumerate(agents):
        if agent.runner is None:
            continue
        if manager is None:
            manager = get_plugin_manager()
        kind = str(agent.runner["kind"])
        path = f"agents[{i}].runner"
        try:
            record = manager.agent_runner(kind)
            factory = resolve_ref(record.factory, owner=f"agent runner kind {kind!r}")
        except PluginError as exc:
            raise _at(source, f"{path}.kind", str(exc)) from exc
        try:
            factory(copy.deepcopy(agent.runner))
        except ValidationError as exc:
            detail = describe_validation_error(exc, None, prefix=path,
                                               secret_fields=SECRET_FIELDS)
            raise _at(source, "", f"invalid {kind!r} runner: {detail}") from exc
        except Exception as exc:
            raise _at(source, path, f"invalid {kind!r} runner: {exc}") from exc


def _plain_document(data: Any, source: str | None, keys: tuple[str, ...],
                    required: str) -> dict[str, Any]:
    """Check that ``data`` is plain data with the expected top-level keys."""
    try:
        _check_plain_data(data, source)
    except RecursionError:
        raise _at(source, "", "nested too deeply") from None
    return _check_top_level(data, source, keys, required)


# -- the public entry points ---------------------------------------------------------------

def parse_definition(data: Any, source: str | None = None, *,
                     plugins: PluginManager | None = None) -> Definition:
    """Validate a definition given as plain data (``{"workflow": {...}, "agents": [...]}``).

    Shared by :func:`load_definition` and the Python API. Checks, in order: the
    top-level keys, every field of the workflow and its tasks, the agents (unique IDs),
    the task graph (:func:`~devcrew_core.engine.dag.validate_dag`) and finally each
    agent's runner declaration, by building it with the factory of its kind from
    ``plugins`` (default: the process-wide plugin manager).
    """
    document = _plain_document(data, source, _DEFINITION_KEYS, "workflow")
    workflow = _parse_workflow(document["workflow"], source)
    agents = _parse_agents(document.get("agents"), source)
    try:
        validate_dag(workflow)
    except DagError as exc:
        path = f"workflow.{exc.path}" if exc.path else "workflow"
        raise _at(source, path, exc.message) from exc
    _check_runners(agents, source, plugins)
    return Definition(workflow=workflow, agents=agents, source=source)


def parse_crew(data: Any, source: str | None = None, *,
               plugins: PluginManager | None = None) -> list[AgentSpec]:
    """Validate a crew given as plain data (``{"agents": [...]}``), runners included."""
    document = _plain_document(data, source, _CREW_KEYS, "agents")
    agents = _parse_agents(document["agents"], source)
    _check_runners(agents, source, plugins)
    return agents


def load_definition(path: str | os.PathLike[str], *,
                    plugins: PluginManager | None = None) -> Definition:
    """Load and validate a workflow definition file (YAML or JSON).

    >>> definition = load_definition("workflows/feature.yaml")  # doctest: +SKIP
    >>> [task.task_id for task in definition.workflow.tasks]    # doctest: +SKIP
    ['design-api', 'implement-api', 'write-tests', 'run-tests']
    """
    name = os.fspath(path)
    return parse_definition(read_document(path), name, plugins=plugins)


def load_crew(path: str | os.PathLike[str], *,
              plugins: PluginManager | None = None) -> list[AgentSpec]:
    """Load and validate a crew file: a top-level ``agents:`` list and nothing else."""
    name = os.fspath(path)
    return parse_crew(read_document(path), name, plugins=plugins)


# -- exporting -----------------------------------------------------------------------------

def _number(value: float) -> float | int:
    """``1800.0`` is written ``1800``; it loads back as the same float."""
    if value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _dump(model: BaseModel) -> dict[str, Any]:
    data: dict[str, Any] = model.model_dump(mode="json", exclude_defaults=True)
    return {k: _number(v) if isinstance(v, float) else v for k, v in data.items()}


def _task_to_document(task: Task) -> dict[str, Any]:
    doc: dict[str, Any] = {"task_id": task.task_id, "agent_type": task.agent_type}
    if task.agent_capabilities:
        doc["agent_capabilities"] = list(task.agent_capabilities)
    if task.input_data:
        doc["input"] = copy.deepcopy(task.input_data)
    if task.depends_on:
        doc["depends_on"] = list(task.depends_on)
    if task.timeout is not None:
        doc["timeout"] = _number(task.timeout)
    policy: RetryPolicy | None = task.retry_policy
    # With a policy, max_retries governs and is always written; ``retry`` is written
    # only where it agrees with it (a disagreeing ``retry`` would not load back).
    if task.retry and (policy is None or task.retry == policy.max_retries):
        doc["retry"] = task.retry
    if policy is not None:
        doc["retry_policy"] = {"max_retries": policy.max_retries, **_dump(policy)}
    if task.priority is not TaskPriority.MEDIUM:
        doc["priority"] = task.priority.value
    if task.description:
        doc["description"] = task.description
    if task.resources is not None:
        doc["resources"] = _dump(task.resources)
    return doc


def _agent_to_document(agent: AgentSpec) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "agent_id": agent.agent_id,
        "agent_type": agent.agent_type,
        "capabilities": list(agent.capabilities),
    }
    defaults = AgentSpec.model_fields
    for name in ("max_concurrent_tasks", "priority_weight", "available"):
        value = getattr(agent, name)
        if value != defaults[name].default:
            doc[name] = value
    if agent.resource_limits is not None:
        doc["resource_limits"] = _dump(agent.resource_limits)
    if agent.metadata:
        doc["metadata"] = copy.deepcopy(agent.metadata)
    if agent.runner is not None:
        doc["runner"] = copy.deepcopy(agent.runner)
    return doc


def workflow_to_document(workflow: Workflow, agents: Iterable[AgentSpec] = ()) -> dict[str, Any]:
    """The definition-file form of ``workflow`` (and ``agents``): plain data that
    ``yaml.safe_dump`` or ``json.dumps`` can write and :func:`parse_definition` reads
    back to an equal workflow. Fields at their defaults are left out.
    """
    doc: dict[str, Any] = {"id": workflow.workflow_id}
    if workflow.name != workflow.workflow_id:
        doc["name"] = workflow.name
    if workflow.description:
        doc["description"] = workflow.description
    if workflow.priority is not TaskPriority.MEDIUM:
        doc["priority"] = workflow.priority.value
    if workflow.timeout is not None:
        doc["timeout"] = _number(workflow.timeout)
    doc["tasks"] = [_task_to_document(task) for task in workflow.tasks]
    if workflow.notification:
        doc["notification"] = copy.deepcopy(workflow.notification)
    result: dict[str, Any] = {"workflow": doc}
    agent_docs = [_agent_to_document(agent) for agent in agents]
    if agent_docs:
        result["agents"] = agent_docs
    return result


def crew_to_document(agents: Iterable[AgentSpec]) -> dict[str, Any]:
    """The crew-file form of ``agents`` (``{"agents": [...]}``), the inverse of
    :func:`parse_crew`."""
    return {"agents": [_agent_to_document(agent) for agent in agents]}
