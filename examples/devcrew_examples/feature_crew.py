"""A small feature-development crew that does real work on disk.

``design`` plans a ``textstats`` package; ``implement`` writes one function module
(fan-out: one task per function); ``write_tests`` writes pytest tests for it; a command
agent then runs ``python -m pytest`` on the result (fan-in), and ``report`` summarises.
Every agent appends to ``ledger.jsonl`` in the workspace so a run can be audited.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

#: The functions the feature consists of, with their code and a test for each.
FUNCTIONS: dict[str, dict[str, str]] = {
    "word_count": {
        "code": "def word_count(text: str) -> int:\n    return len(text.split())\n",
        "test": "assert word_count('a b  c') == 3\n    assert word_count('') == 0\n",
    },
    "char_count": {
        "code": "def char_count(text: str, spaces: bool = True) -> int:\n"
                "    return len(text) if spaces else len(text.replace(' ', ''))\n",
        "test": "assert char_count('a b') == 3\n    assert char_count('a b', spaces=False) == 2\n",
    },
    "top_words": {
        "code": "from collections import Counter\n\n\n"
                "def top_words(text: str, n: int = 3) -> list[str]:\n"
                "    counts = Counter(text.lower().split())\n"
                "    ranked = sorted(counts.items(), key=lambda i: (-i[1], i[0]))\n"
                "    return [w for w, _ in ranked[:n]]\n",
        "test": "assert top_words('b a b c a b', 2) == ['b', 'a']\n",
    },
}


def _workspace(call: Any) -> Path:
    raw = call.input.get("workspace") or call.upstream.get("design", {}).get("workspace")
    if not raw:
        raise ValueError("input.workspace is required")
    path = Path(str(raw)).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _ledger(workspace: Path, call: Any, event: str, **extra: Any) -> None:
    entry = {"task_id": call.task_id, "attempt": call.attempt, "agent_id": call.agent_id,
             "event": event, "pid": os.getpid(), "time": time.time(), **extra}
    with (workspace / "ledger.jsonl").open("a", encoding="utf-8") as ledger:
        ledger.write(json.dumps(entry) + "\n")


def design(call: Any) -> dict[str, Any]:
    """Plan the package: which functions, where the files go."""
    workspace = _workspace(call)
    package = workspace / "textstats"
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text('"""Text statistics, written by a devcrew crew."""\n')
    _ledger(workspace, call, "designed")
    return {"workspace": str(workspace), "package": str(package), "functions": list(FUNCTIONS)}


def implement(call: Any) -> dict[str, Any]:
    """Write one function's module (``input.function``)."""
    workspace = _workspace(call)
    name = str(call.input["function"])
    started = time.time()
    time.sleep(float(call.input.get("think_seconds", 0.2)))  # stands in for real work
    target = workspace / "textstats" / f"{name}.py"
    target.write_text(FUNCTIONS[name]["code"], encoding="utf-8")
    _ledger(workspace, call, "implemented", function=name, started=started)
    return {"file": str(target), "function": name, "started": started, "finished": time.time()}


def write_tests(call: Any) -> dict[str, Any]:
    """Write a pytest module covering every planned function."""
    workspace = _workspace(call)
    functions = call.upstream["design"]["functions"]
    lines = []
    for name in functions:
        lines.append(f"from textstats.{name} import {name}\n")
    for name in functions:
        lines.append(f"\n\ndef test_{name}() -> None:\n    {FUNCTIONS[name]['test']}")
    target = workspace / "test_textstats.py"
    target.write_text("".join(lines), encoding="utf-8")
    _ledger(workspace, call, "tests-written")
    return {"file": str(target), "tests": len(functions)}


def report(call: Any) -> dict[str, Any]:
    """Summarise what the crew produced and what pytest said."""
    workspace = _workspace(call)
    pytest_run = call.upstream.get("run-tests", {})
    summary = (pytest_run.get("stdout") or "").strip().splitlines()[-1:] or ["(no output)"]
    _ledger(workspace, call, "reported")
    return {"workspace": str(workspace), "pytest": summary[0],
            "files": sorted(p.name for p in (workspace / "textstats").glob("*.py"))}
