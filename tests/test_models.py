"""Tests for devcrew_core.models and the store's AgentRecord: IDs, normalisation,
bounds, aliases, lenient enums, retry delays, utilisation and the spec's examples."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from devcrew_core.errors import DefinitionError, UsageError
from devcrew_core.ids import validate_id
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
from devcrew_core.stores.records import AgentRecord
from devcrew_core.validation import describe_validation_error

ID_ALPHABET = string.ascii_letters + string.digits + "._-"
BAD_IDS = ["a:b", "*", "[x]", "", "a" * 129, "a b", "../x", "a/b", "a\nb", "é", "a?", "x{1}"]


def make_task(**fields: Any) -> Task:
    return Task(**{"task_id": "t1", "agent_type": "Agent-A", **fields})


def make_agent(**fields: Any) -> AgentRecord:
    return AgentRecord(
        **{"agent_id": "agent-1", "agent_type": "Backend-Engineer", "capabilities": ["python"],
           **fields}
    )


# Every model field that holds an ID, with a builder that puts the value there.
ID_FIELDS: list[tuple[str, Any]] = [
    ("task_id", lambda v: make_task(task_id=v)),
    ("agent_type", lambda v: make_task(agent_type=v)),
    ("depends_on", lambda v: make_task(depends_on=["ok", v])),
    ("workflow_id", lambda v: Workflow(workflow_id=v)),
    ("task_id", lambda v: TaskRequest(task_id=v, task_type="x")),
    ("required_agent_type", lambda v: TaskRequest(task_id="t", task_type="x",
                                                  required_agent_type=v)),
    ("exclude_agents", lambda v: TaskRequest(task_id="t", task_type="x", exclude_agents=[v])),
    ("agent_id", lambda v: AgentMatch(agent_id=v, agent_type="a", score=1, effective_score=1)),
    ("agent_id", lambda v: AgentContext(agent_id=v, agent_type="a")),
    ("handoff_id", lambda v: HandoffResult(handoff_id=v, workflow_id="w", success=True,
                                           source_agent_id="s")),
    ("objective_id", lambda v: Objective(objective_id=v, description="d")),
    ("agent_id", lambda v: ResourceLimits(agent_id=v)),
    ("agent_id", lambda v: ResourceUsage(agent_id=v)),
    ("agent_id", lambda v: make_agent(agent_id=v)),
    ("agent_type", lambda v: make_agent(agent_type=v)),
]


# --------------------------------------------------------------------------- IDs


@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
@pytest.mark.parametrize(("field", "build"), ID_FIELDS, ids=[f for f, _ in ID_FIELDS])
def test_invalid_ids_are_rejected_naming_field_and_value(field: str, build: Any, bad: str) -> None:
    with pytest.raises(ValidationError) as info:
        build(bad)
    assert isinstance(info.value, ValueError)
    text = str(info.value)
    assert field in text
    assert "invalid ID (expected 1-128 characters" in text
    # pydantic names the value (the middle of a long one elided); the loaders'
    # messages quote it whole (devcrew_core.validation, tested with the definitions).
    shown = repr(bad) if len(bad) <= 40 else repr(bad)[:20]
    assert f"input_value={shown}" in text
    assert [error["type"] for error in info.value.errors()] == ["invalid_id"]


@example(".")
@example("...")
@example(".a")
@example("-..")
@example("a" * 128)
@example("a" * 129)
@example("." * 128)
@example("")
@example("a\n")
@given(st.one_of(
    st.text(alphabet="a.-_Z9:/ \n\u00e9", max_size=6),
    st.text(alphabet="a.", min_size=125, max_size=131),
))
def test_models_accept_exactly_the_ids_validate_id_accepts(value: str) -> None:
    """The models' check (pydantic-core's regex and length) and validate_id's
    (``ID_PATTERN``, with a look-ahead) are written differently: they must agree."""
    try:
        validate_id(value)
        expected = True
    except DefinitionError:
        expected = False
    try:
        AgentContext(agent_id=value, agent_type="a")
        accepted = True
    except ValidationError:
        accepted = False
    assert accepted is expected


@pytest.mark.parametrize(("field", "build"), ID_FIELDS, ids=[f for f, _ in ID_FIELDS])
def test_valid_ids_are_accepted_unchanged(field: str, build: Any) -> None:
    for good in ("a", "backend-dev-001", "ML-Engineer", "v1.2_final", "a" * 128, ".hidden", "-.."):
        model = build(good)
        value = getattr(model, field)
        assert value == good or value == ["ok", good] or value == [good]


def test_invalid_id_on_assignment_is_rejected() -> None:
    task = make_task()
    with pytest.raises(ValidationError, match="task_id"):
        task.task_id = "a:b"
    assert task.task_id == "t1"


def test_id_must_be_a_string() -> None:
    with pytest.raises(ValidationError, match="task_id"):
        make_task(task_id=123)


@given(st.from_regex(r"[A-Za-z0-9._-]{1,128}", fullmatch=True).filter(lambda v: v.strip(".")))
def test_property_valid_ids_accepted(value: str) -> None:
    assert make_task(task_id=value).task_id == value
    assert make_agent(agent_id=value).agent_id == value
    assert validate_id(value, "task_id") == value


@given(
    st.text(alphabet=ID_ALPHABET, max_size=60),
    st.characters(codec="utf-8").filter(lambda c: c not in ID_ALPHABET),
    st.text(alphabet=ID_ALPHABET, max_size=60),
)
def test_property_any_char_outside_alphabet_rejected(before: str, bad: str, after: str) -> None:
    value = before + bad + after
    with pytest.raises(ValidationError):
        make_task(task_id=value)
    with pytest.raises(ValidationError):
        Workflow(workflow_id=value)
    with pytest.raises(DefinitionError):
        validate_id(value, "task_id")


@given(st.text(alphabet=ID_ALPHABET, min_size=129, max_size=300))
def test_property_ids_longer_than_128_rejected(value: str) -> None:
    with pytest.raises(ValidationError):
        make_task(task_id=value)


def test_validate_id_error_names_field_and_value() -> None:
    with pytest.raises(DefinitionError) as info:
        validate_id("a:b", "agent_id")
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, UsageError)
    assert "agent_id" in str(info.value)
    assert "'a:b'" in str(info.value)
    with pytest.raises(DefinitionError):
        validate_id(None, "agent_id")


# --------------------------------------------------------------------------- capabilities


def test_capabilities_normalised_lowercase_stripped_deduplicated() -> None:
    raw = ["  Python ", "python", "API-Development", "pytest", "PYTHON", "api-development"]
    expected = ["python", "api-development", "pytest"]
    assert make_task(agent_capabilities=raw).agent_capabilities == expected
    assert TaskRequest(task_id="t", task_type="x",
                       required_capabilities=raw).required_capabilities == expected
    assert make_agent(capabilities=raw).capabilities == expected


def test_capabilities_normalised_on_assignment() -> None:
    agent = make_agent()
    agent.capabilities = ["Docker", "docker "]
    assert agent.capabilities == ["docker"]


@pytest.mark.parametrize("bad", [[""], ["ok", "   "], ["machine learning"], ["a:b"]])
def test_bad_capability_names_rejected(bad: list[str]) -> None:
    with pytest.raises(ValidationError, match="capabilities"):
        make_agent(capabilities=bad)
    with pytest.raises(ValidationError, match="agent_capabilities"):
        make_task(agent_capabilities=bad)


def test_agent_record_needs_a_capability_but_task_may_have_none() -> None:
    with pytest.raises(ValidationError, match="at least one capability"):
        make_agent(capabilities=[])
    with pytest.raises(ValidationError, match="capabilities"):
        AgentRecord(agent_id="a", agent_type="b")  # type: ignore[call-arg]
    agent = make_agent()
    with pytest.raises(ValidationError, match="at least one capability"):
        agent.capabilities = []
    assert agent.capabilities == ["python"]
    assert make_task().agent_capabilities == []
    assert TaskRequest(task_id="t", task_type="x").required_capabilities == []


# --------------------------------------------------------------------------- bounds


@pytest.mark.parametrize("weight", [1, 10, 100])
def test_priority_weight_in_range_accepted(weight: int) -> None:
    assert make_agent(priority_weight=weight).priority_weight == weight
    match = AgentMatch(agent_id="a", agent_type="b", score=0.5, effective_score=0.5,
                       priority_weight=weight)
    assert match.priority_weight == weight


@pytest.mark.parametrize("weight", [0, -1, 101, 1000])
def test_priority_weight_out_of_range_rejected(weight: int) -> None:
    with pytest.raises(ValidationError) as info:
        make_agent(priority_weight=weight)
    assert "priority_weight" in str(info.value)
    assert str(weight) in str(info.value)
    with pytest.raises(ValidationError, match="priority_weight"):
        AgentMatch(agent_id="a", agent_type="b", score=0, effective_score=0,
                   priority_weight=weight)


def test_agent_record_defaults_and_bounds() -> None:
    agent = make_agent()
    assert agent.max_concurrent_tasks == 3
    assert agent.priority_weight == 10
    assert agent.available is True
    assert agent.current_load == 0
    assert agent.expires_at is None
    assert not agent.is_expired(now=1e12)
    with pytest.raises(ValidationError, match="max_concurrent_tasks"):
        make_agent(max_concurrent_tasks=0)
    with pytest.raises(ValidationError, match="current_load"):
        make_agent(current_load=-1)


def test_agent_record_expiry() -> None:
    agent = make_agent(expires_at=100.0)
    assert not agent.is_expired(now=99.9)
    assert agent.is_expired(now=100.0)
    assert agent.is_expired(now=101.0)


@pytest.mark.parametrize("field", ["cpu_cores", "memory_mb", "disk_mb", "network_mbps"])
def test_resource_limits_non_negative(field: str) -> None:
    assert getattr(ResourceLimits(**{field: 0}), field) == 0
    with pytest.raises(ValidationError) as info:
        ResourceLimits(**{field: -1})
    assert field in str(info.value)
    with pytest.raises(ValidationError, match=field):
        make_agent(resource_limits={field: -0.5})


def test_resource_limits_defaults_and_max_tasks() -> None:
    limits = ResourceLimits()
    assert (limits.cpu_cores, limits.memory_mb, limits.max_tasks) == (2.0, 2048.0, 3)
    assert limits.disk_mb is None and limits.network_mbps is None and limits.agent_id is None
    with pytest.raises(ValidationError, match="max_tasks"):
        ResourceLimits(max_tasks=0)


@pytest.mark.parametrize(
    "field",
    ["cpu_used", "cpu_limit", "memory_used", "memory_limit", "disk_used", "disk_limit",
     "active_tasks", "max_tasks"],
)
def test_resource_usage_non_negative(field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        ResourceUsage(agent_id="a", **{field: -1})


@pytest.mark.parametrize("bad", [0, -1, -0.001])
def test_timeouts_must_be_positive(bad: float) -> None:
    with pytest.raises(ValidationError, match="timeout"):
        make_task(timeout=bad)
    with pytest.raises(ValidationError, match="timeout"):
        Workflow(workflow_id="w", timeout=bad)
    with pytest.raises(ValidationError, match="timeout"):
        TaskRequest(task_id="t", task_type="x", timeout=bad)


def test_positive_timeouts_and_none_accepted() -> None:
    assert make_task(timeout=0.5).timeout == 0.5
    assert make_task().timeout is None
    assert Workflow(workflow_id="w", timeout=7200).timeout == 7200
    assert TaskRequest(task_id="t", task_type="x", timeout=1).timeout == 1


def test_other_numeric_bounds() -> None:
    with pytest.raises(ValidationError, match="retry"):
        make_task(retry=-1)
    with pytest.raises(ValidationError, match="estimated_duration"):
        TaskRequest(task_id="t", task_type="x", estimated_duration=-1)
    assert TaskRequest(task_id="t", task_type="x", estimated_duration=0).estimated_duration == 0
    with pytest.raises(ValidationError, match="task_type"):
        TaskRequest(task_id="t", task_type="")
    with pytest.raises(ValidationError, match="max_retries"):
        RetryPolicy(max_retries=-1)
    with pytest.raises(ValidationError, match="initial_delay"):
        RetryPolicy(initial_delay=-1)
    with pytest.raises(ValidationError, match="max_load"):
        AgentMatch(agent_id="a", agent_type="b", score=1, effective_score=1, max_load=0)
    with pytest.raises(ValidationError, match="condition_type"):
        HandoffPrecondition(condition_type="")
    with pytest.raises(ValidationError, match="description"):
        Objective(objective_id="o", description="")


def test_assignment_is_validated() -> None:
    task = make_task(timeout=10)
    with pytest.raises(ValidationError, match="timeout"):
        task.timeout = -5
    assert task.timeout == 10
    agent = make_agent()
    with pytest.raises(ValidationError, match="priority_weight"):
        agent.priority_weight = 0


UNKNOWN_FIELD_BUILDERS: list[tuple[type[BaseModel], dict[str, Any]]] = [
    (Task, {"task_id": "t", "agent_type": "a"}),
    (Workflow, {"workflow_id": "w"}),
    (TaskRequest, {"task_id": "t", "task_type": "x"}),
    (AgentMatch, {"agent_id": "a", "agent_type": "b", "score": 1, "effective_score": 1}),
    (RetryPolicy, {}),
    (ResourceLimits, {}),
    (ResourceUsage, {"agent_id": "a"}),
    (AgentContext, {"agent_id": "a", "agent_type": "b"}),
    (HandoffPrecondition, {"condition_type": "tests_passing"}),
    (HandoffResult, {"handoff_id": "h", "workflow_id": "w", "success": True,
                     "source_agent_id": "s"}),
    (Objective, {"objective_id": "o", "description": "d"}),
    (AgentRecord, {"agent_id": "a", "agent_type": "b", "capabilities": ["x"]}),
]


@pytest.mark.parametrize(("model", "fields"), UNKNOWN_FIELD_BUILDERS,
                         ids=[m.__name__ for m, _ in UNKNOWN_FIELD_BUILDERS])
def test_unknown_fields_rejected(model: type[BaseModel], fields: dict[str, Any]) -> None:
    model.model_validate(fields)  # the base is valid
    with pytest.raises(ValidationError) as info:
        model.model_validate({**fields, "prioritty": "high"})
    assert "prioritty" in str(info.value)
    assert "Extra inputs are not permitted" in str(info.value)


# --------------------------------------------------------------------------- Task / Workflow


def test_task_accepts_yaml_input_alias() -> None:
    from_yaml = Task.model_validate({"task_id": "t1", "agent_type": "Agent-A", "input": {"x": 1}})
    assert from_yaml.input_data == {"x": 1}
    from_python = make_task(input_data={"x": 1})
    assert from_python.input_data == {"x": 1}
    assert from_yaml == from_python
    assert "input_data" in from_yaml.model_dump()
    assert make_task().input_data == {}


def test_task_rejects_input_and_input_data_together() -> None:
    with pytest.raises(ValidationError, match="input"):
        Task.model_validate(
            {"task_id": "t", "agent_type": "a", "input": {"x": 1}, "input_data": {"y": 2}}
        )


def test_task_defaults() -> None:
    task = make_task()
    assert task.priority is TaskPriority.MEDIUM
    assert task.depends_on == []
    assert task.retry == 0
    assert task.retry_policy is None


def test_workflow_accepts_id_alias_and_name_defaults_to_id() -> None:
    workflow = Workflow.model_validate({"id": "feature-dev-001"})
    assert workflow.workflow_id == "feature-dev-001"
    assert workflow.name == "feature-dev-001"
    named = Workflow(workflow_id="w1", name="My Flow")
    assert named.name == "My Flow"
    assert Workflow(workflow_id="w2").priority is TaskPriority.MEDIUM


def test_workflow_name_reset_to_id_when_blanked() -> None:
    workflow = Workflow(workflow_id="w1", name="Named")
    workflow.name = ""
    assert workflow.name == "w1"


def test_workflow_rejects_duplicate_task_ids() -> None:
    with pytest.raises(ValidationError) as info:
        Workflow(workflow_id="w", tasks=[make_task(task_id="a"), make_task(task_id="b"),
                                         make_task(task_id="a")])
    assert isinstance(info.value, ValueError)
    assert "duplicate task_id 'a'" in str(info.value)


def test_workflow_rejects_duplicate_task_ids_on_assignment() -> None:
    workflow = Workflow(workflow_id="w", tasks=[make_task(task_id="a")])
    with pytest.raises(ValidationError, match="duplicate"):
        workflow.tasks = [make_task(task_id="b"), make_task(task_id="b")]
    assert [t.task_id for t in workflow.tasks] == ["a"]


def test_add_task_and_duplicate_is_definition_error() -> None:
    workflow = Workflow(workflow_id="w")
    first = make_task(task_id="step1")
    workflow.add_task(first)
    workflow.add_task(make_task(task_id="step2", depends_on=["step1"]))
    assert [t.task_id for t in workflow.tasks] == ["step1", "step2"]
    with pytest.raises(DefinitionError) as info:
        workflow.add_task(make_task(task_id="step1", agent_type="Other"))
    assert isinstance(info.value, ValueError)
    assert "'w'" in str(info.value) and "'step1'" in str(info.value)
    assert len(workflow.tasks) == 2
    assert workflow.get_task("step1") is first
    with pytest.raises(KeyError):
        workflow.get_task("nope")


def test_workflow_json_round_trip() -> None:
    workflow = Workflow(
        workflow_id="w",
        priority="critical",
        tasks=[make_task(task_id="a", input_data={"k": [1, 2]},
                         retry_policy=RetryPolicy(backoff="linear"))],
        notification={"on_failure": ["oncall@example.com"]},
    )
    again = Workflow.model_validate_json(workflow.model_dump_json())
    assert again == workflow
    assert again.tasks[0].retry_policy is not None
    assert again.tasks[0].retry_policy.backoff is RetryBackoff.LINEAR


SPEC_WORKFLOW_YAML = (Path(__file__).parent / "data" / "spec_workflow.yaml").read_text()


def test_spec_workflow_yaml_validates() -> None:
    data = yaml.safe_load(SPEC_WORKFLOW_YAML)
    workflow = Workflow.model_validate(data["workflow"])
    assert workflow.workflow_id == "feature-dev-001"
    assert workflow.name == "Feature Development Workflow"
    assert workflow.priority is TaskPriority.HIGH
    assert workflow.timeout == 7200
    assert [t.task_id for t in workflow.tasks] == [
        "design-api", "implement-api", "write-tests", "run-tests"
    ]
    design = workflow.get_task("design-api")
    assert design.input_data["endpoints"][0] == "GET /users/{id}"
    assert design.retry == 3
    assert workflow.get_task("run-tests").depends_on == ["write-tests"]
    assert workflow.notification["on_failure"] == ["admin@example.com", "oncall@example.com"]


def test_spec_workflow_python_examples() -> None:
    workflow = Workflow(
        workflow_id="feature-dev-001",
        name="Feature Development Workflow",
        priority="high"
    )
    test_task = Task(
        task_id="write-tests",
        agent_type="QA-Tester",
        agent_capabilities=["testing", "pytest"],
        input_data={
            "action": "write_tests",
            "feature": "user_authentication"
        },
        timeout=900
    )
    impl_task = Task(
        task_id="implement-feature",
        agent_type="Backend-Engineer",
        agent_capabilities=["python", "api-development"],
        input_data={
            "action": "implement_feature",
            "feature": "user_authentication"
        },
        depends_on=["write-tests"],  # Wait for tests
        timeout=1800
    )
    workflow.add_task(test_task)
    workflow.add_task(impl_task)
    assert workflow.priority is TaskPriority.HIGH
    assert len(workflow.tasks) == 2

    notifying = Workflow(
        workflow_id="deployment-001",
        name="Production Deployment",
        notification={
            "on_complete": ["ops-team@example.com"],
            "on_failure": ["oncall@example.com"],
            "on_approval_needed": ["tech-lead@example.com"]
        }
    )
    assert notifying.notification["on_approval_needed"] == ["tech-lead@example.com"]

    pipeline = Workflow(
        workflow_id="data-pipeline-001",
        name="Data Processing Pipeline",
        priority="high",
        timeout=7200
    )
    pipeline.add_task(Task(
        task_id="extract-data",
        agent_type="Data-Engineer",
        agent_capabilities=["data-extraction", "etl"],
        input_data={
            "source": "postgresql://data-warehouse",
            "query": "SELECT * FROM raw_events WHERE date >= '2025-01-01'"
        },
        timeout=1800
    ))
    assert pipeline.tasks[0].agent_capabilities == ["data-extraction", "etl"]


# --------------------------------------------------------------------------- enums


@pytest.mark.parametrize(
    ("enum", "member", "spellings"),
    [
        (TaskPriority, TaskPriority.HIGH, ["high", "HIGH", "High", " high "]),
        (TaskPriority, TaskPriority.CRITICAL, ["critical", "CRITICAL"]),
        (RetryBackoff, RetryBackoff.EXPONENTIAL, ["exponential", "EXPONENTIAL", "Exponential"]),
        (RetryBackoff, RetryBackoff.FIXED, ["fixed", "FIXED"]),
        (ExecutionMode, ExecutionMode.PARALLEL, ["parallel", "PARALLEL", "Parallel"]),
        (ExecutionMode, ExecutionMode.SEQUENTIAL, ["sequential", "SEQUENTIAL"]),
        (DecompositionStrategy, DecompositionStrategy.FUNCTIONAL,
         ["functional", "FUNCTIONAL", "Functional"]),
    ],
)
def test_lenient_enums_accept_any_case_and_names(enum: Any, member: Any,
                                                 spellings: list[str]) -> None:
    for spelling in spellings:
        assert enum(spelling) is member
    assert enum(member) is member
    assert str(member) == member.value
    assert member == member.value  # a str enum compares equal to its value


@pytest.mark.parametrize("enum", [TaskPriority, RetryBackoff, ExecutionMode,
                                  DecompositionStrategy])
def test_lenient_enums_reject_unknown_values(enum: Any) -> None:
    with pytest.raises(ValueError):
        enum("urgent-ish")
    with pytest.raises(ValueError):
        enum(3)


def test_enum_fields_accept_any_case_through_models() -> None:
    assert make_task(priority="CRITICAL").priority is TaskPriority.CRITICAL
    assert Workflow(workflow_id="w", priority="Low").priority is TaskPriority.LOW
    assert RetryPolicy(backoff="LINEAR").backoff is RetryBackoff.LINEAR
    assert TaskRequest(task_id="t", task_type="x", priority="High").priority is TaskPriority.HIGH
    with pytest.raises(ValidationError, match="priority"):
        make_task(priority="urgent")


def test_priority_ordering_and_lookup() -> None:
    assert Priority.LOW < Priority.MEDIUM < Priority.HIGH < Priority.CRITICAL
    assert sorted([Priority.CRITICAL, Priority.LOW, Priority.HIGH, Priority.MEDIUM]) == [
        Priority.LOW, Priority.MEDIUM, Priority.HIGH, Priority.CRITICAL
    ]
    # Priority is an IntEnum, so type checkers only know Priority(int); names work at runtime.
    assert Priority("high") is Priority.HIGH  # type: ignore[arg-type]
    assert Priority("HIGH") is Priority.HIGH  # type: ignore[arg-type]
    assert Priority(" Critical ") is Priority.CRITICAL  # type: ignore[arg-type]
    assert Priority(1) is Priority.LOW
    assert max(Priority) is Priority.CRITICAL
    with pytest.raises(ValueError):
        Priority("urgent")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Priority(0)


# --------------------------------------------------------------------------- RetryPolicy


def test_retry_policy_defaults() -> None:
    policy = RetryPolicy()
    assert policy.max_retries == 3
    assert policy.backoff is RetryBackoff.EXPONENTIAL
    assert (policy.initial_delay, policy.max_delay) == (1.0, 300.0)


@pytest.mark.parametrize(
    ("backoff", "expected"),
    [
        ("fixed", [5.0, 5.0, 5.0, 5.0, 5.0]),
        ("linear", [5.0, 10.0, 15.0, 20.0, 25.0]),
        ("exponential", [5.0, 10.0, 20.0, 40.0, 80.0]),
    ],
)
def test_delay_for_each_backoff(backoff: str, expected: list[float]) -> None:
    policy = RetryPolicy(backoff=backoff, initial_delay=5, max_delay=300)
    assert [policy.delay_for(n) for n in range(1, 6)] == expected


@pytest.mark.parametrize(
    ("backoff", "initial", "cap", "expected"),
    [
        ("fixed", 45, 30, [30.0, 30.0, 30.0]),  # an initial delay above the cap is capped
        ("linear", 20, 50, [20.0, 40.0, 50.0, 50.0]),
        ("exponential", 20, 50, [20.0, 40.0, 50.0, 50.0]),
        ("exponential", 1, 300, [1.0, 2.0, 4.0]),
    ],
)
def test_delay_for_is_capped_by_max_delay(
    backoff: str, initial: float, cap: float, expected: list[float]
) -> None:
    policy = RetryPolicy(backoff=backoff, initial_delay=initial, max_delay=cap)
    assert [policy.delay_for(n) for n in range(1, len(expected) + 1)] == expected


def test_delay_for_spec_example_and_bad_retry_number() -> None:
    policy = RetryPolicy(backoff="exponential", initial_delay=5, max_delay=300)
    assert policy.delay_for(3) == 20.0
    assert isinstance(policy.delay_for(1), float)
    with pytest.raises(ValueError, match="retry_number"):
        policy.delay_for(0)


def test_delay_for_huge_retry_number_does_not_overflow() -> None:
    assert RetryPolicy(backoff="exponential", initial_delay=1,
                       max_delay=300).delay_for(5000) == 300.0
    assert RetryPolicy(backoff="exponential", initial_delay=0,
                       max_delay=300).delay_for(5000) == 0.0
    assert RetryPolicy(backoff="linear", initial_delay=1, max_delay=7).delay_for(10**9) == 7.0


@given(
    st.sampled_from(list(RetryBackoff)),
    st.floats(min_value=0, max_value=1e6),
    st.floats(min_value=0, max_value=1e6),
    st.integers(min_value=1, max_value=5000),
)
def test_property_delay_bounded_and_non_decreasing(
    backoff: RetryBackoff, initial: float, cap: float, n: int
) -> None:
    policy = RetryPolicy(backoff=backoff, initial_delay=initial, max_delay=cap)
    delay = policy.delay_for(n)
    assert 0 <= delay <= cap
    assert policy.delay_for(n + 1) >= delay


# --------------------------------------------------------------------------- ResourceUsage


def test_resource_usage_utilisation_percentages() -> None:
    usage = ResourceUsage(
        agent_id="worker-001", cpu_used=1, cpu_limit=4, memory_used=1024, memory_limit=2048,
        disk_used=100, disk_limit=400, active_tasks=3, max_tasks=4,
    )
    assert usage.cpu_utilization == 25.0
    assert usage.memory_utilization == 50.0
    assert usage.disk_utilization == 25.0
    assert usage.task_utilization == 75.0


def test_resource_usage_zero_or_missing_limit_means_zero_percent() -> None:
    usage = ResourceUsage(agent_id="a", cpu_used=2, memory_used=5, disk_used=7, active_tasks=1)
    assert usage.cpu_limit == 0 and usage.disk_limit is None
    assert usage.cpu_utilization == 0.0
    assert usage.memory_utilization == 0.0
    assert usage.disk_utilization == 0.0
    assert usage.task_utilization == 0.0


def test_resource_usage_over_limit_exceeds_100_percent() -> None:
    assert ResourceUsage(agent_id="a", cpu_used=3, cpu_limit=2).cpu_utilization == 150.0


def test_resource_usage_dump_includes_utilisation_and_round_trips() -> None:
    usage = ResourceUsage(agent_id="a", cpu_used=1, cpu_limit=4, active_tasks=1, max_tasks=2)
    dumped = usage.model_dump()
    assert dumped["cpu_utilization"] == 25.0
    assert dumped["task_utilization"] == 50.0
    assert ResourceUsage.model_validate(dumped) == usage
    assert ResourceUsage.model_validate_json(usage.model_dump_json()) == usage
    # Utilisations are always computed from used/limit, never trusted from input.
    stale = {**dumped, "cpu_utilization": 99.0}
    assert ResourceUsage.model_validate(stale).cpu_utilization == 25.0


# --------------------------------------------------------------------------- other models


def test_objective_aliases_and_strategy_names() -> None:
    assert Objective.model_validate({"id": "o1", "description": "d"}).objective_id == "o1"
    assert Objective(objective_id="o", description="d").decomposition_strategy == "functional"
    enum_given = Objective(objective_id="o", description="d",
                           decomposition_strategy=DecompositionStrategy.PARALLEL)
    assert enum_given.decomposition_strategy == "parallel"
    assert Objective(objective_id="o", description="d",
                     decomposition_strategy=" SEQUENTIAL ").decomposition_strategy == "sequential"
    plugin = Objective(objective_id="o", description="d", decomposition_strategy="by-layer")
    assert plugin.decomposition_strategy == "by-layer"
    for blank in ("", "   "):
        with pytest.raises(ValidationError, match="decomposition_strategy"):
            Objective(objective_id="o", description="d", decomposition_strategy=blank)


def test_handoff_result_defaults() -> None:
    result = HandoffResult(handoff_id="h1", workflow_id="w1", success=False,
                           source_agent_id="backend-dev-001")
    assert result.validation_passed is False
    assert result.failed_preconditions == []
    assert result.rollback_performed is False
    assert result.created_at > 0


def test_handoff_precondition_defaults() -> None:
    precondition = HandoffPrecondition(condition_type="tests_passing")
    assert precondition.operator == "=="
    assert precondition.required is True
    assert precondition.expected_value is None


def test_agent_match_fields() -> None:
    match = AgentMatch(agent_id="ml-specialist-001", agent_type="ML-Engineer", score=0.9,
                       effective_score=0.8, matched_capabilities=["tensorflow"],
                       current_load=1, max_load=2)
    assert (match.current_load, match.max_load) == (1, 2)
    with pytest.raises(ValidationError, match="current_load"):
        AgentMatch(agent_id="a", agent_type="b", score=1, effective_score=1, current_load=-1)


# --------------------------------------------------------------------------- spec examples


def test_spec_resource_limits_examples() -> None:
    resource_limits = ResourceLimits(
        memory_mb=4096,
        cpu_cores=4,
        disk_mb=10240,
        network_mbps=1000
    )
    assert resource_limits.agent_id is None
    assert (resource_limits.cpu_cores, resource_limits.disk_mb) == (4, 10240)
    limits = ResourceLimits(
        agent_id="data-processor-001",
        cpu_cores=8.0,
        memory_mb=16384,
        max_tasks=4
    )
    assert limits.agent_id == "data-processor-001"
    assert limits.max_tasks == 4
    assert limits.disk_mb is None
    small = ResourceLimits(
        memory_mb=2048,  # Don't over-allocate
        cpu_cores=2,
        disk_mb=5120,
        network_mbps=100
    )
    assert small.network_mbps == 100


def test_spec_register_agent_example_as_record() -> None:
    resource_limits = ResourceLimits(memory_mb=4096, cpu_cores=4, disk_mb=10240,
                                     network_mbps=1000)
    agent = AgentRecord(
        agent_id="ml-specialist-001",
        agent_type="ML-Engineer",
        capabilities=[
            "machine-learning",
            "tensorflow",
            "model-training",
            "feature-engineering"
        ],
        max_concurrent_tasks=2,  # ML tasks are resource-intensive
        priority_weight=20,  # Higher priority
        available=True,
        resource_limits=resource_limits,
        metadata={
            "gpu_available": True,
            "gpu_model": "NVIDIA A100",
            "specialization": "deep-learning"
        }
    )
    assert agent.resource_limits == resource_limits
    assert agent.capabilities[0] == "machine-learning"
    again = AgentRecord.model_validate_json(agent.model_dump_json())
    assert again == agent


def test_spec_task_request_examples() -> None:
    retry_policy = RetryPolicy(
        max_retries=3,
        backoff=RetryBackoff.EXPONENTIAL,
        initial_delay=5,
        max_delay=300
    )
    task_request = TaskRequest(
        task_id="train-model-001",
        task_type="model-training",
        required_capabilities=["machine-learning", "tensorflow"],
        priority=TaskPriority.HIGH,
        estimated_duration=3600,
        context={
            "model_type": "cnn",
            "dataset": "imagenet-subset",
            "epochs": 10,
            "batch_size": 32
        },
        timeout=7200,
        retry_policy=retry_policy,
        required_agent_type="ML-Engineer",
        exclude_agents=["ml-specialist-002"]  # Exclude specific agents
    )
    assert task_request.retry_policy == retry_policy
    assert task_request.exclude_agents == ["ml-specialist-002"]
    assert task_request.priority is TaskPriority.HIGH

    by_string = TaskRequest(
        task_id="complex-task-001",
        task_type="data-analysis",
        required_capabilities=["python", "pandas", "statistical-analysis"],
        priority="high"
    )
    assert by_string.priority is TaskPriority.HIGH
    minimal = TaskRequest(
        task_id="task-001",
        task_type="api-development",
        required_capabilities=["python", "fastapi"]
    )
    assert minimal.priority is TaskPriority.MEDIUM
    assert minimal.retry_policy is None


def test_spec_agent_context_and_preconditions() -> None:
    source_context = AgentContext(
        agent_id="backend-dev-001",
        agent_type="Backend-Engineer",
        conversation_history=[
            {"role": "user", "content": "Implement user authentication API"},
            {"role": "assistant", "content": "I've implemented JWT-based authentication"}
        ],
        files_created=[
            "src/api/auth.py",
            "src/models/user.py",
            "tests/test_auth.py"
        ],
        files_modified=[
            "src/api/__init__.py",
            "requirements.txt"
        ],
        state={
            "tests_passing": True,
            "coverage_percentage": 85.5,
            "api_endpoints_created": 3,
            "authentication_method": "JWT"
        },
        metadata={
            "task_id": "implement-auth-001",
            "workflow_id": "feature-dev-001",
            "completion_percentage": 100
        }
    )
    assert source_context.state["coverage_percentage"] == 85.5
    assert source_context.created_at > 0
    assert AgentContext.model_validate_json(source_context.model_dump_json()) == source_context

    preconditions = [
        HandoffPrecondition(
            condition_type="tests_passing",
            expected_value=True,
            operator="==",
            required=True,
            error_message="All tests must pass before handoff to QA"
        ),
        HandoffPrecondition(
            condition_type="coverage_percentage",
            expected_value=80.0,
            operator=">=",
            required=True,
            error_message="Code coverage must be at least 80%"
        ),
        HandoffPrecondition(
            condition_type="api_endpoints_created",
            expected_value=0,
            operator=">",
            required=True,
            error_message="At least one API endpoint must be created"
        )
    ]
    assert [p.operator for p in preconditions] == ["==", ">=", ">"]
    assert preconditions[0].expected_value is True


def test_spec_objective_examples() -> None:
    objective = Objective(
        objective_id="build-api-001",
        description="Build RESTful API for user management",
        requirements=[
            "User authentication with JWT",
            "CRUD operations for users",
            "Role-based access control",
            "API documentation with OpenAPI",
            "Unit and integration tests",
            "Docker containerization"
        ],
        constraints={
            "deadline": "2025-12-01T00:00:00Z",
            "budget_hours": 80
        },
        decomposition_strategy=DecompositionStrategy.FUNCTIONAL
    )
    assert objective.decomposition_strategy == DecompositionStrategy.FUNCTIONAL
    assert len(objective.requirements) == 6
    short = Objective(
        objective_id="project-001",
        description="Build complete web application",
        requirements=["Frontend", "Backend", "Database", "Tests"],
        decomposition_strategy="functional"
    )
    assert short.decomposition_strategy == "functional"


# --------------------------------------------------------------------------- error text


def test_describe_validation_error_names_source_field_and_value() -> None:
    data = yaml.safe_load(SPEC_WORKFLOW_YAML)["workflow"]
    data["tasks"][1]["timeout"] = -5
    with pytest.raises(ValidationError) as info:
        Workflow.model_validate(data)
    assert describe_validation_error(info.value, "wf.yaml") == (
        "wf.yaml: tasks[1].timeout: Input should be greater than 0 (got -5)"
    )
    assert describe_validation_error(info.value, prefix="workflow").startswith(
        "workflow.tasks[1].timeout:"
    )


def test_describe_validation_error_joins_problems_and_omits_missing_values() -> None:
    with pytest.raises(ValidationError) as info:
        Task.model_validate({"task_id": "a:b"})
    text = describe_validation_error(info.value)
    assert "task_id: invalid ID 'a:b'" in text
    assert "; agent_type: Field required" in text
    assert "agent_type: Field required (got" not in text
    assert text.count("'a:b'") == 1  # the value is quoted once, not repeated as "(got ...)"


def test_describe_validation_error_truncates_long_values_and_hides_secrets() -> None:
    with pytest.raises(ValidationError) as info:
        make_task(task_id="x" * 500)
    text = describe_validation_error(info.value)
    assert len(text) < 300
    assert "task_id" in text and "500 characters" in text
    with pytest.raises(ValidationError) as secret:
        make_task(timeout="hunter2")
    hidden = describe_validation_error(secret.value, secret_fields={"timeout"})
    assert "hunter2" not in hidden
    assert "timeout" in hidden and "value hidden" in hidden


def test_models_package_exports_every_spec_model() -> None:
    import devcrew_core.models as models

    expected = {
        "Task", "Workflow", "TaskRequest", "AgentMatch", "TaskPriority", "RetryPolicy",
        "RetryBackoff", "ResourceLimits", "ResourceUsage", "Priority", "AgentContext",
        "HandoffPrecondition", "HandoffResult", "Objective", "DecompositionStrategy",
        "ExecutionMode",
    }
    assert expected <= set(models.__all__)
    assert all(hasattr(models, name) for name in models.__all__)


@pytest.mark.parametrize("dots", [".", "..", "..."])
def test_ids_made_only_of_dots_are_refused(dots: str) -> None:
    from devcrew_core.errors import DefinitionError
    from devcrew_core.ids import validate_id

    with pytest.raises(DefinitionError, match="not only dots"):
        validate_id(dots, "agent_id")
    with pytest.raises(ValueError, match="not only dots"):
        Task(task_id=dots, agent_type="T")
    assert validate_id(".hidden-ok", "agent_id") == ".hidden-ok"


def test_validate_id_shortens_huge_values() -> None:
    from devcrew_core.errors import DefinitionError
    from devcrew_core.ids import validate_id

    with pytest.raises(DefinitionError) as exc:
        validate_id("x" * 5000 + ":", "task_id")
    assert "5001 characters" in str(exc.value) and len(str(exc.value)) < 300
