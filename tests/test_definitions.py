"""Loading workflow and crew definition files: the spec's format, every error class
(each naming file, field path and value), runner checks through plugins, export."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ConfigDict

from devcrew_core import DefinitionError, RetryPolicy, Task, TaskPriority, Workflow
from devcrew_core.engine.dag import validate_dag
from devcrew_core.engine.definition import (
    Definition,
    crew_to_document,
    load_crew,
    load_definition,
    parse_crew,
    parse_definition,
    read_document,
    workflow_to_document,
)
from devcrew_core.hookspecs import hookimpl
from devcrew_core.models import AgentSpec, ResourceLimits
from devcrew_core.plugin_types import AgentRunner
from devcrew_core.plugins import PluginManager, reset_plugin_manager

# The spec's "Example Workflow YAML", verbatim.
SPEC_WORKFLOW_YAML = (Path(__file__).parent / "data" / "spec_workflow.yaml").read_text()

MINIMAL = """\
workflow:
  id: wf
  tasks:
    - task_id: a
      agent_type: worker
    - task_id: b
      agent_type: worker
      depends_on: [a]
"""


# -- helpers -------------------------------------------------------------------------------

def write(tmp_path: Path, text: str, name: str = "wf.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(path: Path, plugins: PluginManager | None = None) -> str:
    """The message of the DefinitionError that loading ``path`` raises."""
    with pytest.raises(DefinitionError) as info:
        load_definition(path, plugins=plugins)
    return str(info.value)


def assert_names(message: str, *parts: str) -> None:
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"


class FakeRunner:
    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.spec = spec


FACTORY_CALLS: list[dict[str, Any]] = []


def fake_factory(spec: Mapping[str, Any]) -> FakeRunner:
    FACTORY_CALLS.append(dict(spec))
    if not isinstance(spec.get("reply"), str):
        raise ValueError(f"'reply' must be a string, got {spec.get('reply')!r}")
    return FakeRunner(spec)


class StrictConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str
    url: str


def strict_factory(spec: Mapping[str, Any]) -> StrictConfig:
    return StrictConfig.model_validate(dict(spec))


class FakeRunnersPlugin:
    @hookimpl
    def devcrew_agent_runners(self) -> Iterator[AgentRunner]:
        yield AgentRunner(name="fake", factory=fake_factory)
        yield AgentRunner(name="strict", factory=strict_factory)
        yield AgentRunner(name="broken-ref", factory="no_such_module_xyz:factory")


@pytest.fixture
def plugins() -> Iterator[PluginManager]:
    """A fresh plugin manager with the inline fake runner kinds registered."""
    manager = PluginManager()
    name = manager.register(FakeRunnersPlugin(), name="fake-runners")
    assert manager.load_failures == []
    FACTORY_CALLS.clear()
    try:
        yield manager
    finally:
        manager.unregister(name)


def with_agents(agents_yaml: str, workflow_yaml: str = MINIMAL) -> str:
    return workflow_yaml + "agents:\n" + agents_yaml


AGENT_A = """\
  - agent_id: worker-1
    agent_type: worker
    capabilities: [python]
    runner: {kind: fake, reply: hello}
"""


# -- loading the spec's format -------------------------------------------------------------

def test_spec_example_workflow_loads_verbatim(tmp_path: Path) -> None:
    path = write(tmp_path, SPEC_WORKFLOW_YAML)
    definition = load_definition(path)
    assert isinstance(definition, Definition)
    assert definition.source == str(path)
    assert definition.agents == []
    wf = definition.workflow
    assert wf.workflow_id == "feature-dev-001"
    assert wf.name == "Feature Development Workflow"
    assert wf.priority is TaskPriority.HIGH
    assert wf.timeout == 7200
    assert [t.task_id for t in wf.tasks] == ["design-api", "implement-api", "write-tests",
                                             "run-tests"]
    design = wf.tasks[0]
    assert design.agent_type == "Backend-Engineer"
    assert design.agent_capabilities == ["api-design", "openapi"]
    assert design.input_data["endpoints"] == ["GET /users/{id}", "PUT /users/{id}",
                                              "DELETE /users/{id}"]
    assert design.timeout == 1800
    assert design.retry == 3 and design.retry_policy is None
    assert wf.tasks[3].retry == 1 and wf.tasks[3].depends_on == ["write-tests"]
    assert wf.notification == {
        "on_complete": ["user@example.com"],
        "on_failure": ["admin@example.com", "oncall@example.com"],
    }
    assert validate_dag(wf) == ["design-api", "implement-api", "write-tests", "run-tests"]


def test_json_form_loads_the_same(tmp_path: Path) -> None:
    data = yaml.safe_load(SPEC_WORKFLOW_YAML)
    from_yaml = load_definition(write(tmp_path, SPEC_WORKFLOW_YAML))
    compact = load_definition(write(tmp_path, json.dumps(data), "wf.json"))
    # Tab-indented JSON is valid JSON but not valid YAML: the content decides.
    tabbed = load_definition(write(tmp_path, json.dumps(data, indent="\t"), "tabs.json"))
    assert compact.workflow == from_yaml.workflow
    assert tabbed.workflow == from_yaml.workflow


def test_format_is_told_by_content_not_extension(tmp_path: Path) -> None:
    as_json_named_yaml = write(tmp_path, json.dumps(yaml.safe_load(MINIMAL)), "wf.yaml")
    as_yaml_named_json = write(tmp_path, MINIMAL, "wf.json")
    flow_yaml = write(tmp_path, "{workflow: {id: wf, tasks: []}}", "flow.yaml")
    assert load_definition(as_json_named_yaml).workflow.workflow_id == "wf"
    assert load_definition(as_yaml_named_json).workflow.workflow_id == "wf"
    assert load_definition(flow_yaml).workflow.tasks == []


def test_retry_and_retry_policy(tmp_path: Path) -> None:
    text = """\
workflow:
  id: wf
  tasks:
    - {task_id: plain, agent_type: w, retry: 3}
    - task_id: policy
      agent_type: w
      retry_policy: {max_retries: 5, backoff: linear, initial_delay: 2, max_delay: 30}
    - task_id: both
      agent_type: w
      retry: 2
      retry_policy: {backoff: fixed}
    - task_id: agreeing
      agent_type: w
      retry: 4
      retry_policy: {max_retries: 4}
"""
    tasks = load_definition(write(tmp_path, text)).workflow.tasks
    assert tasks[0].retry == 3 and tasks[0].retry_policy is None
    assert tasks[1].retry_policy == RetryPolicy(max_retries=5, backoff="linear",
                                                initial_delay=2, max_delay=30)
    # retry: N is the shorthand for max_retries when the policy leaves it out.
    assert tasks[2].retry == 2
    assert tasks[2].retry_policy == RetryPolicy(max_retries=2, backoff="fixed")
    assert tasks[3].retry_policy is not None and tasks[3].retry_policy.max_retries == 4


def test_contradicting_retry_and_max_retries(tmp_path: Path) -> None:
    text = """\
workflow:
  id: wf
  tasks:
    - task_id: t
      agent_type: w
      retry: 2
      retry_policy: {max_retries: 5}
"""
    path = write(tmp_path, text)
    assert_names(load_error(path), str(path), "workflow.tasks[0].retry_policy.max_retries",
                 "5", "retry: 2")


def test_workflow_id_and_input_data_spellings_are_accepted(tmp_path: Path) -> None:
    text = """\
workflow:
  workflow_id: wf
  tasks:
    - {task_id: a, agent_type: w, input_data: {x: 1}}
"""
    wf = load_definition(write(tmp_path, text)).workflow
    assert wf.workflow_id == "wf" and wf.tasks[0].input_data == {"x": 1}


def test_agents_with_runners_are_checked_through_the_plugin_manager(
    tmp_path: Path, plugins: PluginManager
) -> None:
    path = write(tmp_path, with_agents(AGENT_A))
    definition = load_definition(path, plugins=plugins)
    assert [a.agent_id for a in definition.agents] == ["worker-1"]
    assert definition.agents[0].runner == {"kind": "fake", "reply": "hello"}
    assert FACTORY_CALLS == [{"kind": "fake", "reply": "hello"}]  # built once, eagerly


def test_default_plugin_manager_is_used_when_none_is_given(
    tmp_path: Path, plugins: PluginManager
) -> None:
    path = write(tmp_path, with_agents(AGENT_A))
    reset_plugin_manager(plugins)
    try:
        assert load_definition(path).agents[0].agent_id == "worker-1"
    finally:
        reset_plugin_manager(None)
    assert len(FACTORY_CALLS) == 1


def test_agent_without_runner_needs_no_plugin(tmp_path: Path) -> None:
    agents = "  - {agent_id: a1, agent_type: worker, capabilities: [python]}\n"
    definition = load_definition(write(tmp_path, with_agents(agents)), plugins=PluginManager())
    assert definition.agents[0].runner is None


def test_tasks_may_ask_for_agent_types_no_listed_agent_provides(
    tmp_path: Path, plugins: PluginManager
) -> None:
    agents = AGENT_A.replace("agent_type: worker", "agent_type: somebody-else")
    definition = load_definition(write(tmp_path, with_agents(agents)), plugins=plugins)
    assert definition.agents[0].agent_type == "somebody-else"


def test_parse_definition_in_memory() -> None:
    definition = parse_definition(yaml.safe_load(MINIMAL))
    assert definition.source is None
    assert [t.task_id for t in definition.workflow.tasks] == ["a", "b"]
    with pytest.raises(DefinitionError) as info:
        parse_definition({"workflow": {"id": "wf", "tasks": [{"task_id": "a"}]}})
    assert str(info.value).startswith("workflow.tasks[0].agent_type: Field required")


def test_parse_definition_does_not_modify_its_input() -> None:
    data = {"workflow": {"id": "wf", "tasks": [
        {"task_id": "a", "agent_type": "w", "retry": 2, "retry_policy": {"backoff": "fixed"}}
    ]}}
    before = json.dumps(data)
    parse_definition(data)
    assert json.dumps(data) == before


# -- errors: each names file, field path and value -----------------------------------------

def test_unknown_top_level_key(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("workflow:", "workflows:", 1))
    assert_names(load_error(path), str(path), "workflows", "did you mean 'workflow'?")


def test_missing_workflow_key_in_a_crew_like_file(tmp_path: Path) -> None:
    path = write(tmp_path, "agents: []\n")
    assert_names(load_error(path), str(path), "'workflow'", "crew file")


def test_unknown_field_in_a_task(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "      timout: 30\n")
    assert_names(load_error(path), str(path), "workflow.tasks[1].timout",
                 "Extra inputs are not permitted", "30")


def test_unknown_field_in_the_workflow(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "  owner: me\n")
    assert_names(load_error(path), str(path), "workflow.owner", "'me'")


@pytest.mark.parametrize(("line", "value"), [
    ("      timeout: -5\n", "-5"),
    ("      timeout: soon\n", "'soon'"),
    ("      timeout: '1800'\n", "'1800'"),  # strict: a quoted number is a string
    ("      retry: true\n", "True"),
    ("      retry: 1.5\n", "1.5"),
])
def test_wrong_types_and_values(tmp_path: Path, line: str, value: str) -> None:
    field = line.split(":")[0].strip()
    path = write(tmp_path, MINIMAL + line)
    assert_names(load_error(path), str(path), f"workflow.tasks[1].{field}", value)


def test_wrong_type_for_a_list(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("depends_on: [a]", "depends_on: a"))
    assert_names(load_error(path), str(path), "workflow.tasks[1].depends_on",
                 "valid array", "'a'")


def test_invalid_task_id(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("task_id: a\n", "task_id: design api\n"))
    assert_names(load_error(path), str(path), "workflow.tasks[0].task_id", "'design api'",
                 "invalid ID")


def test_invalid_workflow_id(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("id: wf", "id: 'wf/../x'"))
    assert_names(load_error(path), str(path), "workflow.id", "'wf/../x'")


def test_numeric_workflow_id_must_be_quoted(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("id: wf", "id: 0012"))
    assert_names(load_error(path), str(path), "workflow.id", "valid string", "10")


def test_missing_workflow_id(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("  id: wf\n", ""))
    assert_names(load_error(path), str(path), "workflow.id", "required")


def test_both_spellings_of_one_field(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("id: wf", "id: wf\n  workflow_id: wf"))
    assert_names(load_error(path), str(path), "workflow.workflow_id", "'id'", "not both")


def test_workflow_not_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "workflow: [a, b]\n")
    assert_names(load_error(path), str(path), "workflow:", "expected a mapping", "['a', 'b']")


def test_duplicate_task_id(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "    - {task_id: a, agent_type: worker}\n")
    assert_names(load_error(path), str(path), "workflow.tasks[2].task_id",
                 "duplicate task_id 'a'", "workflow.tasks[0]")


def test_unknown_dependency_names_file_and_path(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("depends_on: [a]", "depends_on: [x]"))
    assert load_error(path) == (
        f"{path}: workflow.tasks[1].depends_on[0]: "
        "task 'b': depends_on 'x' is not a task of workflow 'wf'"
    )


def test_self_loop_in_file(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("depends_on: [a]", "depends_on: [a, b]"))
    assert_names(load_error(path), str(path), "workflow.tasks[1].depends_on[1]",
                 "task 'b': depends on itself")


def test_cycle_in_file(tmp_path: Path) -> None:
    text = """\
workflow:
  id: wf
  tasks:
    - {task_id: a, agent_type: w, depends_on: [c]}
    - {task_id: b, agent_type: w, depends_on: [a]}
    - {task_id: c, agent_type: w, depends_on: [b]}
"""
    path = write(tmp_path, text)
    assert_names(load_error(path), str(path), "a -> b -> c -> a")


def test_malformed_yaml_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "workflow:\n  id: wf\n   name: x\n")
    message = load_error(path)
    assert_names(message, str(path), "invalid YAML", "line 3, column")


def test_malformed_json_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, '{\n\t"workflow": {\n\t\t"id": "wf",,\n\t}\n}\n', "wf.json")
    assert_names(load_error(path), str(path), "invalid JSON", "line 3, column")


def test_duplicate_yaml_key(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "      timeout: 5\n      timeout: 6\n")
    assert_names(load_error(path), str(path), "duplicate key 'timeout'", "line 10",
                 "first at line 9")


def test_duplicate_json_key(tmp_path: Path) -> None:
    path = write(tmp_path, '{"workflow": {"id": "a", "id": "b", "tasks": []}}', "wf.json")
    assert_names(load_error(path), str(path), "duplicate key 'id'")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    assert_names(load_error(path), str(path), "cannot read file", "No such file")


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    assert_names(load_error(tmp_path), str(tmp_path), "cannot read file")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_bytes(b"workflow:\n  id: \xff\xfe\n")
    assert_names(load_error(path), str(path), "not UTF-8")


def test_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path, "# nothing here\n")
    assert_names(load_error(path), str(path), "empty document")


def test_top_level_list(tmp_path: Path) -> None:
    path = write(tmp_path, "- workflow\n")
    assert_names(load_error(path), str(path), "expected a mapping", "list")


def test_several_yaml_documents(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "---\n" + MINIMAL)
    assert_names(load_error(path), str(path), "line 9", "another document",
                 "single document")


def test_yaml_dates_and_boolean_keys_are_refused(tmp_path: Path) -> None:
    dated = write(tmp_path, MINIMAL + "      input: {deadline: 2025-12-01}\n", "a.yaml")
    assert_names(load_error(dated), str(dated), "workflow.tasks[1].input.deadline", "date",
                 "quote it", "2025")
    boolean = write(tmp_path, MINIMAL + "      input: {yes: 1}\n", "b.yaml")
    assert_names(load_error(boolean), str(boolean), "workflow.tasks[1].input", "True",
                 "not a string")


def test_alias_bomb_is_refused(tmp_path: Path) -> None:
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 8):
        previous = f"*a{i - 1}"
        levels.append(f"a{i}: &a{i} [{', '.join([previous] * 10)}]")
    text = MINIMAL + "      input:\n" + "".join(f"        {line}\n" for line in levels)
    path = write(tmp_path, text)
    assert_names(load_error(path), str(path), "values", "refusing to load")


def test_recursive_alias_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "      input: {loop: &l [*l]}\n")
    assert_names(load_error(path), str(path), "workflow.tasks[1].input.loop",
                 "nested more than")


@pytest.mark.parametrize("tag", [
    "!!python/object/apply:os.mkdir",
    "!!python/object/new:os.mkdir",
])
def test_python_tags_are_refused_and_never_executed(tmp_path: Path, tag: str) -> None:
    marker = tmp_path / "pwned"
    text = MINIMAL + f"      input:\n        x: {tag} [{json.dumps(str(marker))}]\n"
    path = write(tmp_path, text)
    message = load_error(path)
    assert_names(message, str(path), "tag not allowed", "python/object", "line 10")
    assert not marker.exists()


def test_python_name_tag_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "      input: {f: !!python/name:os.system ''}\n")
    assert_names(load_error(path), str(path), "tag not allowed", "python/name:os.system")


# -- errors in agents ----------------------------------------------------------------------

def test_agent_field_errors(tmp_path: Path, plugins: PluginManager) -> None:
    agents = AGENT_A + "  - {agent_id: a2, agent_type: worker, capabilities: [x], " \
                       "max_concurrent_tasks: 0}\n"
    path = write(tmp_path, with_agents(agents))
    assert_names(load_error(path, plugins), str(path), "agents[1].max_concurrent_tasks", "0")


def test_agents_not_a_list(tmp_path: Path) -> None:
    path = write(tmp_path, with_agents("  worker-1: {}\n"))
    assert_names(load_error(path), str(path), "agents:", "expected a list", "worker-1")


def test_duplicate_agent_ids(tmp_path: Path, plugins: PluginManager) -> None:
    path = write(tmp_path, with_agents(AGENT_A + AGENT_A))
    assert_names(load_error(path, plugins), str(path), "agents[1].agent_id",
                 "duplicate agent_id 'worker-1'", "agents[0]")


def test_runner_without_kind_hides_secret_values(tmp_path: Path) -> None:
    agents = """\
  - agent_id: a1
    agent_type: worker
    capabilities: [python]
    runner: {url: 'http://x', headers: {Authorization: Bearer s3cret-token}}
"""
    path = write(tmp_path, with_agents(agents))
    message = load_error(path)
    assert_names(message, str(path), "agents[0].runner", "needs a 'kind'")
    assert "s3cret-token" not in message


def test_unknown_runner_kind(tmp_path: Path, plugins: PluginManager) -> None:
    path = write(tmp_path, with_agents(AGENT_A.replace("kind: fake", "kind: nope")))
    assert_names(load_error(path, plugins), str(path), "agents[0].runner.kind",
                 "unknown agent runner kind 'nope'", "fake")


def test_unknown_runner_kind_with_an_empty_plugin_manager(tmp_path: Path) -> None:
    path = write(tmp_path, with_agents(AGENT_A))
    assert_names(load_error(path, PluginManager()), str(path), "agents[0].runner.kind",
                 "'fake'", "available: none")


def test_runner_factory_rejects_the_declaration(tmp_path: Path, plugins: PluginManager) -> None:
    path = write(tmp_path, with_agents(AGENT_A.replace("reply: hello", "reply: 42")))
    message = load_error(path, plugins)
    assert_names(message, str(path), "agents[0].runner", "invalid 'fake' runner",
                 "'reply' must be a string, got 42")


def test_runner_factory_validation_error_names_the_runner_field(
    tmp_path: Path, plugins: PluginManager
) -> None:
    agents = "  - {agent_id: a1, agent_type: w, capabilities: [x], " \
             "runner: {kind: strict, url: 5}}\n"
    path = write(tmp_path, with_agents(agents))
    assert_names(load_error(path, plugins), str(path), "agents[0].runner.url", "5")


def test_runner_factory_that_cannot_be_imported(tmp_path: Path, plugins: PluginManager) -> None:
    path = write(tmp_path, with_agents(AGENT_A.replace("kind: fake", "kind: broken-ref")))
    assert_names(load_error(path, plugins), str(path), "agents[0].runner.kind",
                 "no_such_module_xyz")


def test_graph_errors_come_before_runner_checks(tmp_path: Path, plugins: PluginManager) -> None:
    text = with_agents(AGENT_A, MINIMAL.replace("depends_on: [a]", "depends_on: [x]"))
    assert_names(load_error(write(tmp_path, text), plugins), "depends_on 'x'")
    assert FACTORY_CALLS == []


# -- crew files ----------------------------------------------------------------------------

CREW = """\
agents:
  - agent_id: backend-dev-001
    agent_type: Backend-Engineer
    capabilities: [python, api-development, testing]
    max_concurrent_tasks: 3
    priority_weight: 15
    runner: {kind: fake, reply: ok}
  - agent_id: ml-specialist-001
    agent_type: ML-Engineer
    capabilities: [machine-learning, tensorflow]
    max_concurrent_tasks: 2
    priority_weight: 20
    resource_limits: {cpu_cores: 8, memory_mb: 16384}
    metadata: {gpu: A100, vram: 40GB}
"""


def test_crew_file(tmp_path: Path, plugins: PluginManager) -> None:
    agents = load_crew(write(tmp_path, CREW, "crew.yaml"), plugins=plugins)
    assert [a.agent_id for a in agents] == ["backend-dev-001", "ml-specialist-001"]
    assert agents[0].priority_weight == 15
    assert agents[1].resource_limits == ResourceLimits(cpu_cores=8, memory_mb=16384)
    assert agents[1].metadata == {"gpu": "A100", "vram": "40GB"}
    assert FACTORY_CALLS == [{"kind": "fake", "reply": "ok"}]


def test_crew_file_rejects_a_workflow(tmp_path: Path, plugins: PluginManager) -> None:
    path = write(tmp_path, CREW + "workflow: {id: wf}\n", "crew.yaml")
    with pytest.raises(DefinitionError) as info:
        load_crew(path, plugins=plugins)
    assert_names(str(info.value), str(path), "unknown top-level key 'workflow'")


def test_crew_file_errors_name_the_agent(tmp_path: Path, plugins: PluginManager) -> None:
    path = write(tmp_path, CREW.replace("priority_weight: 20", "priority_weight: 500"),
                 "crew.yaml")
    with pytest.raises(DefinitionError) as info:
        load_crew(path, plugins=plugins)
    assert_names(str(info.value), str(path), "agents[1].priority_weight", "500")


def test_crew_file_needs_agents(tmp_path: Path) -> None:
    path = write(tmp_path, "{}\n", "crew.yaml")
    with pytest.raises(DefinitionError, match="missing required top-level key 'agents'"):
        load_crew(path)


def test_parse_crew_and_its_export(plugins: PluginManager) -> None:
    agents = parse_crew(yaml.safe_load(CREW), plugins=plugins)
    document = crew_to_document(agents)
    assert parse_crew(document, plugins=plugins) == agents


# -- export and round trips ----------------------------------------------------------------

def round_trip(tmp_path: Path, definition: Definition, plugins: PluginManager,
               dump: str = "yaml") -> Definition:
    document = workflow_to_document(definition.workflow, definition.agents)
    text = yaml.safe_dump(document, sort_keys=False) if dump == "yaml" else json.dumps(document)
    return load_definition(write(tmp_path, text, f"exported.{dump}"), plugins=plugins)


def test_spec_example_exports_to_the_spec_document(tmp_path: Path) -> None:
    definition = load_definition(write(tmp_path, SPEC_WORKFLOW_YAML))
    assert workflow_to_document(definition.workflow) == yaml.safe_load(SPEC_WORKFLOW_YAML)


@pytest.mark.parametrize("dump", ["yaml", "json"])
def test_spec_example_round_trips(tmp_path: Path, plugins: PluginManager, dump: str) -> None:
    definition = load_definition(write(tmp_path, SPEC_WORKFLOW_YAML))
    again = round_trip(tmp_path, definition, plugins, dump)
    assert again.workflow == definition.workflow
    assert again.agents == []


FULL = """\
workflow:
  id: full
  name: Every field set
  description: A workflow that sets every field away from its default.
  priority: critical
  timeout: 12.5
  tasks:
    - task_id: first
      agent_type: worker
      agent_capabilities: [Python, testing]
      priority: low
      description: the first task
      input: {nested: {list: [1, 2.5, null, true, "text"]}, empty: {}}
      timeout: 0.25
      retry: 2
      retry_policy: {backoff: fixed, initial_delay: 0.5, max_delay: 10}
    - task_id: second
      agent_type: worker
      depends_on: [first]
      retry_policy: {max_retries: 0}
    - task_id: third
      agent_type: other
      depends_on: [first, second]
      retry_policy: {}
  notification:
    on_failure: [ops@example.com]
agents:
  - agent_id: worker-1
    agent_type: worker
    capabilities: [python, testing]
    max_concurrent_tasks: 1
    priority_weight: 99
    available: false
    resource_limits: {agent_id: worker-1, cpu_cores: 0.5, memory_mb: 256, disk_mb: 10,
                      network_mbps: 1.5, max_tasks: 1}
    metadata: {team: blue, limits: [1, 2]}
    runner: {kind: fake, reply: hi, extra: {env: [A, B]}}
  - {agent_id: worker-2, agent_type: other, capabilities: [x]}
"""


@pytest.mark.parametrize("dump", ["yaml", "json"])
@pytest.mark.parametrize("text", [FULL, MINIMAL, "workflow: {id: empty}\n"],
                         ids=["full", "minimal", "empty"])
def test_handwritten_definitions_round_trip(
    tmp_path: Path, plugins: PluginManager, text: str, dump: str
) -> None:
    definition = load_definition(write(tmp_path, text), plugins=plugins)
    again = round_trip(tmp_path, definition, plugins, dump)
    assert again.workflow == definition.workflow
    assert again.agents == definition.agents
    # Exporting again gives the same document: export is a fixed point after one load.
    assert workflow_to_document(again.workflow, again.agents) == workflow_to_document(
        definition.workflow, definition.agents
    )


def test_export_leaves_defaults_out() -> None:
    wf = Workflow(workflow_id="wf", tasks=[Task(task_id="a", agent_type="w")])
    assert workflow_to_document(wf) == {
        "workflow": {"id": "wf", "tasks": [{"task_id": "a", "agent_type": "w"}]}
    }
    agent = AgentSpec(agent_id="a1", agent_type="w", capabilities=["x"])
    assert crew_to_document([agent]) == {
        "agents": [{"agent_id": "a1", "agent_type": "w", "capabilities": ["x"]}]
    }


def test_export_uses_the_file_spellings() -> None:
    wf = Workflow(workflow_id="wf", tasks=[Task(task_id="a", agent_type="w",
                                                input_data={"k": "v"})])
    document = workflow_to_document(wf)["workflow"]
    assert document["id"] == "wf" and "workflow_id" not in document
    assert document["tasks"][0]["input"] == {"k": "v"}
    assert "input_data" not in document["tasks"][0]


def test_export_does_not_share_data_with_the_model() -> None:
    wf = Workflow(workflow_id="wf",
                  tasks=[Task(task_id="a", agent_type="w", input_data={"k": [1]})])
    workflow_to_document(wf)["workflow"]["tasks"][0]["input"]["k"].append(2)
    assert wf.tasks[0].input_data == {"k": [1]}


def test_export_of_a_python_task_whose_retry_disagrees_with_its_policy() -> None:
    # The policy governs; the disagreeing shorthand is left out so the export loads.
    wf = Workflow(workflow_id="wf", tasks=[
        Task(task_id="a", agent_type="w", retry=2, retry_policy=RetryPolicy(max_retries=5))
    ])
    document = workflow_to_document(wf)
    assert document["workflow"]["tasks"][0] == {
        "task_id": "a", "agent_type": "w", "retry_policy": {"max_retries": 5}
    }
    policy = parse_definition(document).workflow.tasks[0].retry_policy
    assert policy is not None and policy.max_retries == 5


def test_read_document_reads_plain_data(tmp_path: Path) -> None:
    assert read_document(write(tmp_path, "a: [1, 2]\n")) == {"a": [1, 2]}
    assert read_document(write(tmp_path, '{"a": [1, 2]}', "a.json")) == {"a": [1, 2]}


RESOURCE_YAML = """
workflow:
  id: heavy
  tasks:
    - task_id: train
      agent_type: ML-Engineer
      priority: high
      resources: {cpu_cores: 4, memory_mb: 8192, preemptable: false}
    - task_id: light
      agent_type: ML-Engineer
      resources: {memory_mb: 64}
"""


def test_task_resources_load_and_export(tmp_path: Path) -> None:
    definition = load_definition(write(tmp_path, RESOURCE_YAML))
    train, light = definition.workflow.tasks
    assert train.resources is not None and light.resources is not None
    assert (train.resources.cpu_cores, train.resources.memory_mb) == (4, 8192)
    assert train.resources.preemptable is False
    assert light.resources.cpu_cores is None  # filled from default_cpu_cores at run time
    document = workflow_to_document(definition.workflow)
    assert document["workflow"]["tasks"][0]["resources"] == {
        "cpu_cores": 4, "memory_mb": 8192, "preemptable": False}
    assert load_definition(write(tmp_path, yaml.safe_dump(document), "again.yaml")) \
        .workflow == definition.workflow


@pytest.mark.parametrize("resources, field", [
    ("{cpu_cores: -1}", "workflow.tasks[0].resources.cpu_cores"),
    ("{gpus: 2}", "workflow.tasks[0].resources.gpus"),
    ("4", "workflow.tasks[0].resources"),
])
def test_bad_task_resources_name_file_field_and_value(tmp_path: Path, resources: str,
                                                     field: str) -> None:
    text = f"workflow:\n  id: w\n  tasks:\n    - task_id: t\n      agent_type: A\n" \
           f"      resources: {resources}\n"
    message = load_error(write(tmp_path, text))
    assert "wf.yaml" in message and field in message
