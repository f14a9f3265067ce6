"""Smoke tests of the benchmarks: they run and print the promised JSON lines.

No timing is asserted (figures depend on the machine); only that every case runs, and
reports what docs/performance.md describes. Of the Redis and PostgreSQL cases only a
small Redis delegation case runs here: the others take longer, and those stores have
their own suites.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import allocation, delegation  # the repository root is on pythonpath

CASE_KEYS = {
    "case", "store", "agents", "matcher", "samples", "p50_us", "p99_us", "mean_us",
    "floor", "floor_us", "ratio", "target_ratio", "meets_target", "eligible_agents",
    "index_queries_per_cycle",
}


@pytest.mark.integration
def test_delegation_benchmark_quick_on_memory_and_sqlite(
    capsys: pytest.CaptureFixture[str],
) -> None:
    cases = delegation.main(["--quick"], stores=("memory", "sqlite"))
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines == cases
    # Every store x fleet size x matcher mode, once each.
    assert {(c["store"], c["agents"], c["matcher"]) for c in cases} == {
        (store, agents, mode)
        for store in ("memory", "sqlite")
        for agents in delegation.AGENT_COUNTS
        for mode in ("default", "uncached")
    }
    assert len(cases) == 2 * len(delegation.AGENT_COUNTS) * 2
    for case in cases:
        assert set(case) == CASE_KEYS
        assert case["case"] == "delegation-cycle"
        assert 0 < case["p50_us"] <= case["p99_us"]
        assert case["floor_us"] > 0 and case["ratio"] > 0
        # No hard target on these stores: reported, not judged.
        assert case["target_ratio"] is None and case["meets_target"] is None
        eligible = case["eligible_agents"]
        assert 1 <= eligible["min"] <= eligible["median"] <= eligible["max"]
        if case["matcher"] == "uncached":
            assert case["index_queries_per_cycle"] == 1.0
    # The fleet is diverse enough for the index to matter: at 1,000 agents every
    # request has at least ten eligible agents, yet a small share of the fleet.
    big = next(c for c in cases if c["agents"] == 1000)["eligible_agents"]
    assert big["min"] >= 10 and big["max"] <= 50


@pytest.mark.redis
def test_delegation_benchmark_redis_case_reports_both_floors(
    redis_server_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    cases = delegation.run_case("redis", 10, tmp_path, redis_server_url, quick=True)
    assert [c["matcher"] for c in cases] == ["default", "uncached"]
    for case in cases:
        assert set(case) == CASE_KEYS | {"raw_floor_us", "raw_ratio"}
        assert case["floor_us"] > 0 and case["raw_floor_us"] > 0
        assert case["raw_ratio"] == pytest.approx(case["p50_us"] / case["raw_floor_us"],
                                                  rel=0.01)
        # The target applies to 1,000 agents only.
        assert case["target_ratio"] is None


def test_unknown_store_is_refused() -> None:
    with pytest.raises(SystemExit, match="unknown store"):
        delegation.main(["--quick", "--stores", "memory,oracle"])


def test_the_workload_is_the_same_every_run() -> None:
    fleet, kinds = delegation.workload(100)
    assert (fleet, kinds) == delegation.workload(100)
    assert len({a.agent_type for a in fleet}) == delegation.AGENT_TYPES
    for agent in fleet:
        assert 3 <= len(agent.capabilities) <= 4
        assert 0 <= agent.background < agent.max_concurrent_tasks
    for kind in kinds:
        assert 1 <= len(kind.capabilities) <= 2 and kind.eligible(fleet) >= 1


ALLOCATION_KEYS = {
    "case", "store", "clients", "level", "variant", "client_mode", "capacity", "rounds",
    "seconds", "pairs", "refused", "pairs_per_s", "floor", "floor_pairs_per_s",
    "floor_refused", "ratio", "ratio_of_totals", "ratio_by_round", "target_ratio",
    "meets_target", "violations", "samples", "peak_cpu_cores", "peak_tasks", "floor_violations",
    "floor_samples", "spec_pairs_per_s", "meets_spec", "load_average_1m",
}


@pytest.mark.integration
def test_allocation_benchmark_quick_on_sqlite(capsys: pytest.CaptureFixture[str]) -> None:
    cases = allocation.main(["--quick", "--stores", "sqlite"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines == cases
    # Every client count x level in the throughput variant; contention from 2 clients.
    expected = {(clients, level, "throughput")
                for clients in allocation.CLIENT_COUNTS for level in allocation.LEVELS}
    expected |= {(clients, level, "contention")
                 for clients in allocation.CLIENT_COUNTS if clients >= 2
                 for level in allocation.LEVELS}
    assert {(c["clients"], c["level"], c["variant"]) for c in cases} == expected
    assert len(cases) == len(expected)
    for case in cases:
        assert set(case) == ALLOCATION_KEYS
        assert case["case"] == "allocate-release" and case["store"] == "sqlite"
        assert case["client_mode"] == "threads"
        assert case["pairs"] > 0 and case["pairs_per_s"] > 0
        assert case["floor_pairs_per_s"] > 0 and case["ratio"] > 0
        assert len(case["ratio_by_round"]) == case["rounds"]
        # Zero over-commit, and the checker did look (at the store and at the floor).
        assert case["violations"] == 0 and case["samples"] > 0
        assert case["floor_violations"] == 0 and case["floor_samples"] > 0
        capacity = case["capacity"]
        assert case["peak_tasks"] <= capacity["tasks"]
        assert case["peak_cpu_cores"] <= capacity["cpu_cores"]
        if case["variant"] == "throughput":
            # Limits admit every client at once: nothing is refused.
            assert capacity["tasks"] == case["clients"]
            assert case["refused"] == 0 and case["floor_refused"] == 0
            assert isinstance(case["meets_spec"], bool)
        else:
            assert capacity["tasks"] == case["clients"] // 2
            assert case["meets_spec"] is None
        if case["level"] == "store" and case["variant"] == "throughput":
            assert case["target_ratio"] == allocation.TARGET_RATIO
            assert isinstance(case["meets_target"], bool)
        else:
            assert case["target_ratio"] is None and case["meets_target"] is None


def test_allocation_benchmark_refuses_unknown_options() -> None:
    with pytest.raises(SystemExit, match="unknown store"):
        allocation.main(["--quick", "--stores", "sqlite,oracle"])
    with pytest.raises(SystemExit, match="unknown variant"):
        allocation.main(["--quick", "--stores", "sqlite", "--variants", "burst"])
