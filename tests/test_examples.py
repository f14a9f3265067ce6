"""The README's main job: the feature-development crew runs for real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "feature-crew.yaml"


def test_feature_crew_writes_code_runs_pytest_and_fans_out(tmp_path: Path) -> None:
    env = {**os.environ, "DEVCREW_HOME": str(tmp_path / "home")}
    result = subprocess.run(
        [sys.executable, "-m", "devcrew_core", "run", str(EXAMPLE), "--quiet", "--output",
         "json"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
        check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    doc = json.loads(result.stdout)
    assert doc["status"] == "completed" and doc["tasks_completed"] == 7
    workspace = tmp_path / ".devcrew-work" / "feature-crew"
    assert sorted(p.name for p in (workspace / "textstats").glob("*.py")) == [
        "__init__.py", "char_count.py", "top_words.py", "word_count.py"]
    pytest_out = doc["results"]["run-tests"]
    assert pytest_out["exit_code"] == 0 and "3 passed" in pytest_out["stdout"]
    assert doc["results"]["report"]["pytest"].startswith("3 passed")
    # Fan-out: the three implementation tasks ran at the same time (recorded times).
    spans = [(doc["results"][t]["started"], doc["results"][t]["finished"])
             for t in ("implement-word-count", "implement-char-count", "implement-top-words")]
    assert max(s for s, _ in spans) < min(f for _, f in spans)
    # Fan-in: run-tests started after every implementation and the tests were written.
    tasks = {t["task_id"]: t for t in doc["tasks"]}
    ledger = [json.loads(line) for line in (workspace / "ledger.jsonl").read_text().splitlines()]
    assert {e["task_id"] for e in ledger} >= {"design", "write-tests", "report"}
    assert tasks["run-tests"]["started_at"] > max(
        tasks[t]["completed_at"] for t in ("implement-word-count", "implement-char-count",
                                           "implement-top-words", "write-tests"))
