"""Ranking eligible agents: the scorer's ``by_load`` fast path agrees with ``score``."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from devcrew_core.default_plugins.scoring import default_by_load, default_score
from devcrew_core.engine.matching import AgentMatcher
from devcrew_core.models import TaskRequest
from devcrew_core.plugin_types import Scorer
from devcrew_core.stores.memory import MemoryStore
from devcrew_core.stores.records import AgentRecord

SKILLS = ["a", "b", "c", "d", "e"]

agents_strategy = st.lists(
    st.builds(
        lambda caps, limit, weight, load: (sorted(set(caps)), limit, weight, load),
        st.lists(st.sampled_from(SKILLS), min_size=1, max_size=5),
        st.integers(1, 6), st.integers(1, 100), st.integers(0, 7)),
    min_size=1, max_size=12)


def _agents(rows: list[tuple[list[str], int, int, int]]) -> list[AgentRecord]:
    return [AgentRecord(agent_id=f"agent-{i:02d}", agent_type="Worker", capabilities=caps,
                        max_concurrent_tasks=limit, priority_weight=weight,
                        current_load=load)
            for i, (caps, limit, weight, load) in enumerate(rows)]


def _matcher(scorer: Scorer) -> AgentMatcher:
    return AgentMatcher(MemoryStore("memory://matching-test"), scorer)


def _request(required: list[str]) -> TaskRequest:
    return TaskRequest(task_id="t1", task_type="work", required_capabilities=required)


@settings(max_examples=200, deadline=None)
@given(rows=agents_strategy, required=st.lists(st.sampled_from(SKILLS), max_size=3))
def test_ranking_by_load_terms_equals_ranking_by_score(
        rows: list[tuple[list[str], int, int, int]], required: list[str]) -> None:
    agents = _agents(rows)
    request = _request(sorted(set(required)))
    fast = _matcher(Scorer(name="default", score=default_score, by_load=default_by_load))
    plain = _matcher(Scorer(name="plain", score=default_score))
    ranked = [(m.agent_id, m.effective_score, m.current_load)
              for m in fast.rank(request, agents)]
    assert ranked == [(m.agent_id, m.effective_score, m.current_load)
                      for m in plain.rank(request, agents)]
    # Full agents are never ranked; the best of limit=1 is the head of the full ranking.
    assert all(a.current_load < a.max_concurrent_tasks
               for a in agents if a.agent_id in {r[0] for r in ranked})
    assert [m.agent_id for m in fast.rank(request, agents, limit=1)] == \
        [r[0] for r in ranked[:1]]
    # One agent re-scored (the delegation hot path) agrees with its match, or is full.
    for matcher in (fast, plain):
        for agent in agents:
            match = matcher.match_for(request, agent)
            expected = None if match is None else \
                (match.score, match.effective_score, match.current_load)
            assert matcher.score_for(request, agent) == expected


@given(rows=agents_strategy, required=st.lists(st.sampled_from(SKILLS), max_size=3))
def test_default_score_is_affine_in_the_load(
        rows: list[tuple[list[str], int, int, int]], required: list[str]) -> None:
    request = _request(required)  # normalised: de-duplicated capabilities
    for agent in _agents(rows):
        base, per_task = default_by_load(request.required_capabilities, agent)
        load = min(agent.current_load, agent.max_concurrent_tasks)
        assert default_score(request, agent) == base - per_task * load


def test_tracked_loads_change_the_ranking() -> None:
    matcher = _matcher(Scorer(name="default", score=default_score, by_load=default_by_load))
    agents = _agents([(["a"], 2, 50, 0), (["a"], 2, 40, 0)])
    request = _request(["a"])
    assert matcher.rank(request, agents, limit=1)[0].agent_id == "agent-00"
    matcher.note_load("agent-00", 1)  # this process delegated one task to it
    [best] = matcher.rank(request, agents, limit=1)
    assert (best.agent_id, best.current_load) == ("agent-01", 0)
    matcher.note_load("agent-00", 2)  # full: never ranked
    assert [m.agent_id for m in matcher.rank(request, agents)] == ["agent-01"]


def test_a_fresh_record_of_an_agent_is_scored_afresh() -> None:
    """The scoring memo is keyed by the record object: a re-read agent whose weight
    changed (same agent_id) is ranked by its new weight."""
    matcher = _matcher(Scorer(name="default", score=default_score, by_load=default_by_load))
    request = _request(["a"])
    first = _agents([(["a"], 2, 10, 0), (["a"], 2, 50, 0)])
    assert matcher.rank(request, first, limit=1)[0].agent_id == "agent-01"
    again = _agents([(["a"], 2, 90, 0), (["a"], 2, 50, 0)])
    [best] = matcher.rank(request, again, limit=1)
    assert best.agent_id == "agent-00"
    assert best.priority_weight == 90


def test_the_same_agent_twice_ranks_without_comparing_records() -> None:
    """A list holding one agent twice (two reads of it) ties on score and ID: ranking
    must not fall back to comparing the records."""
    for scorer in (Scorer(name="default", score=default_score, by_load=default_by_load),
                   Scorer(name="plain", score=default_score)):
        matcher = _matcher(scorer)
        twice = _agents([(["a"], 2, 50, 0)]) + _agents([(["a"], 2, 50, 0)])
        assert [m.agent_id for m in matcher.rank(_request(["a"]), twice)] == \
            ["agent-00", "agent-00"]
        assert matcher.rank(_request(["a"]), twice, limit=1)[0].agent_id == "agent-00"
