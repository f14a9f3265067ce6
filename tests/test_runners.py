"""The built-in agent runners (python, command, http), run for real: real threads, real
subprocesses (checked with the kernel afterwards), a real HTTP server on loopback."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devcrew_core.errors import DefinitionError, TaskFailedError
from devcrew_core.models import AgentContext
from devcrew_core.plugins import PluginManager, resolve_ref
from devcrew_core.runners import Runner, TaskCall
from devcrew_core.runners.command import command_runner
from devcrew_core.runners.http import http_runner
from devcrew_core.runners.placeholders import Template
from devcrew_core.runners.python import (
    python_runner,
    register_local_callable,
    this_process,
    unregister_local_callable,
)

import runner_agents

TESTS_DIR = Path(__file__).resolve().parent
PY = sys.executable
#: Generous bound, only to turn a hang into a failure (never a speed assertion).
HANG = 30.0


def make_call(**overrides: Any) -> TaskCall:
    """A call with realistic values; keyword arguments replace fields."""
    values: dict[str, Any] = {
        "task_id": "implement",
        "workflow_id": "wf-1",
        "run_id": "run-7",
        "agent_id": "coder-1",
        "input": {"feature": "login form", "count": 3, "flag": True, "none": None,
                  "tags": ["a", "b"], "nested": {"k": "v"}},
        "upstream": {"write-tests": {"path": "tests/test_login.py", "files": ["x.py", "y.py"]},
                     "v1.2": {"path": "dotted"}},
        "attempt": 2,
        "idempotency_key": "run-7/implement/2",
    }
    values.update(overrides)
    return TaskCall(**values)


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run one coroutine on a fresh event loop."""
    return asyncio.run(coro)


def attempt(runner: Runner, call: TaskCall | None = None) -> dict[str, Any]:
    """One attempt of ``runner``, to completion."""
    async def one() -> dict[str, Any]:
        return await runner(call or make_call())

    result: dict[str, Any] = run(one())
    return result


def failure(runner: Runner, call: TaskCall | None = None) -> TaskFailedError:
    """The TaskFailedError one attempt of ``runner`` raises."""
    with pytest.raises(TaskFailedError) as info:
        attempt(runner, call)
    return info.value


# == python ==================================================================================
def test_python_sync_callable_by_import_path_runs_in_a_worker_thread() -> None:
    out = attempt(python_runner({"kind": "python", "callable": "runner_agents:sync_echo"}))
    assert out["task_id"] == "implement"
    assert out["input"]["feature"] == "login form"
    assert out["attempt"] == 2 and out["idempotency_key"] == "run-7/implement/2"
    assert out["main_thread"] is False  # never on the event loop's thread


def test_python_async_callable_is_awaited_on_the_loop() -> None:
    out = attempt(python_runner({"kind": "python", "callable": "runner_agents:async_echo"}))
    assert out == {"task_id": "implement", "input": make_call().input, "on_loop_thread": True}


def test_python_object_with_async_call() -> None:
    out = attempt(python_runner({"kind": "python", "callable": "runner_agents:async_object"}))
    assert out == {"from": "AsyncCallable", "task_id": "implement"}


def test_python_none_means_empty_output() -> None:
    assert attempt(python_runner({"kind": "python",
                                  "callable": "runner_agents:returns_none"})) == {}


def test_python_output_is_a_json_normalised_copy() -> None:
    out = attempt(python_runner({"kind": "python",
                                 "callable": "runner_agents:returns_tuple_and_int_keys"}))
    assert out == {"pair": [1, 2], "3": "three"}


@pytest.mark.parametrize(("name", "expected"), [
    ("returns_list", r"must return a dict \(or None\), got list: \[1, 2, 3\]"),
    ("returns_unserialisable", "not JSON-serialisable"),
    ("returns_nan", "not JSON-serialisable"),
])
def test_python_bad_return_value_fails_for_good(name: str, expected: str) -> None:
    error = failure(python_runner({"kind": "python", "callable": f"runner_agents:{name}"}))
    assert error.retryable is False
    assert error.args[0].startswith(f"runner_agents:{name}")
    assert re.search(expected, str(error))


def test_python_exception_becomes_a_retryable_failure() -> None:
    error = failure(python_runner({"kind": "python",
                                   "callable": "runner_agents:raises_value_error"}))
    assert str(error) == "ValueError: bad feature 'login form'"
    assert error.retryable is True
    assert isinstance(error.__cause__, ValueError)


def test_python_async_exception() -> None:
    error = failure(python_runner({"kind": "python", "callable": "runner_agents:async_raises"}))
    assert str(error) == "RuntimeError: async agent broke"


def test_python_task_failed_error_from_the_callable_is_kept() -> None:
    def refuse(call: TaskCall) -> None:
        raise TaskFailedError("cannot do that", retryable=False)

    spec = register_local_callable("refuser", refuse)
    try:
        error = failure(python_runner(spec))
    finally:
        unregister_local_callable("refuser")
    assert str(error) == "cannot do that" and error.retryable is False


def test_python_import_is_lazy_and_an_import_failure_is_not_retryable() -> None:
    runner = python_runner({"kind": "python", "callable": "no_such_module_xq:fn"})
    assert "no_such_module_xq" not in sys.modules
    error = failure(runner)
    assert "cannot import 'no_such_module_xq:fn': ModuleNotFoundError" in str(error)
    assert error.retryable is False


def test_python_target_that_is_not_callable() -> None:
    error = failure(python_runner({"kind": "python", "callable": "runner_agents:NOT_CALLABLE"}))
    assert "'runner_agents:NOT_CALLABLE' is not callable (got 42)" in str(error)
    assert error.retryable is False


def test_python_local_callable_runs_in_the_registering_process() -> None:
    seen: list[TaskCall] = []

    def agent(call: TaskCall) -> dict[str, Any]:
        seen.append(call)
        return {"closure": len(seen)}

    spec = register_local_callable("local-agent", agent)
    try:
        assert spec == {"kind": "python", "local": True, "agent_id": "local-agent",
                        "process": f"{socket.gethostname()}:{os.getpid()}"}
        json.dumps(spec)  # storable as it is
        assert attempt(python_runner(spec)) == {"closure": 1}
        assert seen[0].task_id == "implement"
    finally:
        unregister_local_callable("local-agent")


def test_python_local_async_callable() -> None:
    async def agent(call: TaskCall) -> dict[str, Any]:
        return {"async": True}

    spec = register_local_callable("local-async", agent)
    try:
        assert attempt(python_runner(spec)) == {"async": True}
    finally:
        unregister_local_callable("local-async")


def test_python_local_callable_of_another_process_is_refused_clearly() -> None:
    spec = {"kind": "python", "local": True, "agent_id": "coder-9",
            "process": "build-box:4242"}
    with pytest.raises(DefinitionError) as info:
        python_runner(spec)
    message = str(info.value)
    assert "'coder-9'" in message and "process build-box:4242" in message
    assert this_process() in message and "package.module:function" in message


def test_python_local_callable_not_registered_here() -> None:
    spec = {"kind": "python", "local": True, "agent_id": "never-registered",
            "process": this_process()}
    with pytest.raises(DefinitionError, match="lives only in this process"):
        python_runner(spec)


_CHILD = """
import asyncio, json, sys
from devcrew_core.errors import DefinitionError
from devcrew_core.runners import TaskCall
from devcrew_core.runners.python import python_runner
spec = json.loads(sys.argv[1])
call = TaskCall(task_id="t", workflow_id="w", run_id="r", agent_id="a", input={"x": 1},
                upstream={}, attempt=1, idempotency_key="r/t/1")
try:
    runner = python_runner(spec)
except DefinitionError as exc:
    print(json.dumps({"definition_error": str(exc)}))
else:
    print(json.dumps(asyncio.run(runner(call))))
"""


def run_in_child(spec: dict[str, Any]) -> dict[str, Any]:
    """Build and run a python runner from ``spec`` in a fresh interpreter."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(TESTS_DIR), *filter(None, [os.environ.get("PYTHONPATH")])]))
    done = subprocess.run([PY, "-c", _CHILD, json.dumps(spec)], capture_output=True,
                          text=True, env=env, timeout=120, check=True)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_python_import_path_works_in_another_process_and_local_does_not() -> None:
    out = run_in_child({"kind": "python", "callable": "runner_agents:sync_echo"})
    assert out["input"] == {"x": 1} and out["main_thread"] is False

    spec = register_local_callable("only-here", lambda call: {"ok": True})
    try:
        out = run_in_child(spec)
    finally:
        unregister_local_callable("only-here")
    assert f"process {this_process()}" in out["definition_error"]
    assert "'only-here'" in out["definition_error"]


def test_python_async_callable_is_cancelled() -> None:
    runner = python_runner({"kind": "python", "callable": "runner_agents:waits_forever"})

    async def scenario() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(runner(make_call(task_id="cancel-me")), 0.2)

    run(scenario())
    assert "cancel-me" in runner_agents.CANCELLED


def test_python_sync_callable_cancel_returns_at_once_and_discards_the_thread_result() -> None:
    runner = python_runner({"kind": "python",
                            "callable": "runner_agents:blocks_until_released"})
    for event in (runner_agents.RELEASE, runner_agents.STARTED, runner_agents.FINISHED):
        event.clear()

    async def scenario() -> None:
        task = asyncio.ensure_future(runner(make_call()))
        assert await asyncio.to_thread(runner_agents.STARTED.wait, HANG)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(task, 0.2)
        assert task.cancelled()
        # The attempt is over although its thread still runs: threads cannot be killed.
        assert not runner_agents.FINISHED.is_set()
        runner_agents.RELEASE.set()
        assert await asyncio.to_thread(runner_agents.FINISHED.wait, HANG)

    try:
        run(scenario())
    finally:
        runner_agents.RELEASE.set()


@pytest.mark.parametrize(("spec", "message"), [
    ({"kind": "python"}, "runner.callable: required"),
    ({"kind": "python", "callable": "os.path.join"},
     "runner.callable: must be an import path 'package.module:function'.*got 'os.path.join'"),
    ({"kind": "python", "callable": print}, r"runner.callable: .*got <built-in function print>"),
    ({"kind": "python", "callable": "a:b", "timeout": 3},
     r"runner: unknown option 'timeout' for kind 'python'"),
    ({"kind": "python", "calable": "a:b"}, r"did you mean 'callable'\?"),
    ({"kind": "python", "callable": "a:b", "local": True}, "either 'callable' or 'local'"),
    ({"kind": "python", "local": "yes", "agent_id": "a", "process": "h:1"},
     r"runner.local: must be true \(got 'yes'\)"),
    ({"kind": "python", "local": True, "agent_id": 5, "process": "h:1"}, "runner.agent_id"),
    ({"kind": "python", "local": True, "agent_id": "a"}, "runner.process"),
    ({"kind": "command", "callable": "a:b"}, "runner.kind: this is the 'python' runner"),
    ("python", "runner: must be a mapping"),
])
def test_python_declaration_errors_are_eager(spec: Any, message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        python_runner(spec)


def test_register_local_callable_validates() -> None:
    with pytest.raises(DefinitionError, match="agent_id"):
        register_local_callable("bad id!", lambda call: {})
    with pytest.raises(DefinitionError, match="not callable"):
        register_local_callable("ok-id", "not a function")  # type: ignore[arg-type]


# == command =================================================================================
def command(argv: list[str], **options: Any) -> Runner:
    """A command runner for ``argv``."""
    return command_runner({"kind": "command", "argv": argv, **options})


PRINT_ARGS = "import json, sys; print(json.dumps(sys.argv[1:]))"


def test_command_captures_exit_code_stdout_and_stderr() -> None:
    script = "import sys; print('out'); print('err', file=sys.stderr)"
    assert attempt(command([PY, "-c", script])) == {
        "exit_code": 0, "stdout": "out\n", "stderr": "err\n",
        "stdout_truncated": False, "stderr_truncated": False,
    }


def test_command_placeholders_each_inside_one_argument() -> None:
    runner = command([PY, "-c", PRINT_ARGS, "{input.feature}", "--path={upstream.write-tests.path}",
                      "{task_id}", "{workflow_id}", "{run_id}", "{attempt}",
                      "{idempotency_key}", "{agent_id}", "{input.count}", "{input.flag}",
                      "{input.none}", "{input.tags}", "{input.nested}", "{{literal}}",
                      "{upstream.write-tests.files.1}", "{upstream.v1.2.path}"],
                     parse_json=False)
    out = attempt(runner)
    assert json.loads(out["stdout"]) == [
        "login form", "--path=tests/test_login.py", "implement", "wf-1", "run-7", "2",
        "run-7/implement/2", "coder-1", "3", "true", "null", '["a","b"]', '{"k":"v"}',
        "{literal}", "y.py", "dotted",
    ]


def test_command_context_placeholder() -> None:
    context = AgentContext(agent_id="tester", agent_type="qa", state={"coverage": 91})
    out = attempt(command([PY, "-c", PRINT_ARGS, "{context.state.coverage}"]),
                  make_call(context=context))
    assert json.loads(out["stdout"]) == ["91"]


EVIL = ["x; touch X", "$(touch Y)", "`touch Z`", "a\nb && touch W", "' \" \\ | > out.txt",
        "*", "-rf /", "{input.feature}", "$HOME ${PATH}"]


@pytest.mark.parametrize("value", EVIL)
def test_command_injection_stays_one_literal_argument(value: str, tmp_path: Path) -> None:
    call = make_call(input={"evil": value})
    out = attempt(command([PY, "-c", PRINT_ARGS, "{input.evil}", "--x={input.evil}"],
                          cwd=str(tmp_path)), call)
    assert json.loads(out["stdout"]) == [value, f"--x={value}"]
    out = attempt(command(["echo", "{input.evil}"], cwd=str(tmp_path)), call)
    assert out["stdout"] == value + "\n"
    assert list(tmp_path.iterdir()) == []  # nothing was touched or redirected


@settings(max_examples=15, deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\0"),
               max_size=40))
def test_command_any_text_is_passed_through_unchanged(value: str) -> None:
    out = attempt(command([PY, "-c", PRINT_ARGS, "{input.v}"]), make_call(input={"v": value}))
    assert json.loads(out["stdout"]) == [value]


@given(st.text(max_size=60))
def test_template_escaped_text_renders_to_itself(text: str) -> None:
    escaped = text.replace("{", "{{").replace("}", "}}")
    assert Template.parse(escaped, "t").render({}) == text


@given(st.text(alphabet="{}.ab_ input", max_size=30))
def test_template_parse_either_works_or_raises_a_definition_error(text: str) -> None:
    try:
        Template.parse(text, "t")
    except DefinitionError as exc:
        assert str(exc).startswith("t: ")


def test_command_missing_key_fails_before_starting(tmp_path: Path) -> None:
    marker = tmp_path / "started"
    error = failure(command(["touch", str(marker), "{input.missing}"]))
    assert "runner.argv[2]: placeholder {input.missing}: input has no key 'missing'" in str(error)
    assert error.retryable is False
    assert not marker.exists()


def test_command_missing_upstream_and_bad_index() -> None:
    error = failure(command(["echo", "{upstream.design.path}"]))
    assert "{upstream.design.path}" in str(error) and "no key 'design'" in str(error)
    error = failure(command(["echo", "{upstream.write-tests.files.5}"]))
    assert "list of 2 items" in str(error) and error.retryable is False
    error = failure(command(["echo", "{input.feature.x}"]))
    assert "input.feature is str 'login form', which has no key 'x'" in str(error)


def test_command_value_that_no_argument_can_hold() -> None:
    error = failure(command(["echo", "{input.v}"]), make_call(input={"v": "a\0b"}))
    assert "NUL" in str(error) and error.retryable is False


@pytest.mark.parametrize(("argv", "message"), [
    (["echo", "{unknown}"], r"runner.argv\[1\]: unknown placeholder \{unknown\}"),
    (["echo", "{inptu.x}"], r"did you mean \{input\}\?"),
    (["echo", "{task_id.x}"], r"\{task_id\} is a plain value"),
    (["awk", "{print $1}"], r"is not a placeholder.*write '\{\{' and '\}\}'"),
    (["echo", "a}b"], r"single '\}'"),
    (["echo", "{input"], r"unclosed '\{'"),
    (["echo", "{}"], "is not a placeholder"),
    (["{input.tool}", "x"], r"runner.argv\[0\]: must name the program literally"),
])
def test_command_bad_placeholders_are_definition_errors(argv: list[str], message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        command(argv)


def test_command_stdin_absent_is_empty() -> None:
    script = "import sys; print(repr(sys.stdin.read()))"
    assert attempt(command([PY, "-c", script]))["stdout"] == "''\n"


def test_command_stdin_call_is_the_call_as_json() -> None:
    context = AgentContext(agent_id="tester", agent_type="qa")
    call = make_call(context=context, timeout=12.5)
    script = "import sys; sys.stdout.write(sys.stdin.read())"
    out = attempt(command([PY, "-c", script], stdin="call", parse_json=True), call)
    assert out["json"] == call.as_json()


def test_command_stdin_string_with_placeholders() -> None:
    script = "import sys; sys.stdout.write(sys.stdin.read())"
    out = attempt(command([PY, "-c", script], stdin="feature={input.feature} é {{x}}\n"))
    assert out["stdout"] == "feature=login form é {x}\n"


def test_command_large_stdin_to_a_program_that_reads_none_of_it() -> None:
    out = attempt(command(["true"], stdin="x" * 2_000_000))
    assert out["exit_code"] == 0


def test_command_large_stdin_is_delivered_whole() -> None:
    script = "import sys; print(len(sys.stdin.buffer.read()))"
    assert attempt(command([PY, "-c", script], stdin="é" * 500_000))["stdout"] == "1000000\n"


def test_command_env_is_added_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INHERITED_VAR", "from-parent")
    names = ["INHERITED_VAR", "FEATURE", "DEVCREW_TASK_ID", "DEVCREW_RUN_ID",
             "DEVCREW_WORKFLOW_ID", "DEVCREW_ATTEMPT", "DEVCREW_IDEMPOTENCY_KEY",
             "DEVCREW_AGENT_ID"]
    script = ("import json, os, sys; "
              "print(json.dumps({{n: os.environ.get(n) for n in sys.argv[1:]}}))")
    out = attempt(command([PY, "-c", script, *names], env={"FEATURE": "{input.feature}!"},
                          parse_json=True))
    assert out["json"] == {
        "INHERITED_VAR": "from-parent", "FEATURE": "login form!", "DEVCREW_TASK_ID": "implement",
        "DEVCREW_RUN_ID": "run-7", "DEVCREW_WORKFLOW_ID": "wf-1", "DEVCREW_ATTEMPT": "2",
        "DEVCREW_IDEMPOTENCY_KEY": "run-7/implement/2", "DEVCREW_AGENT_ID": "coder-1",
    }
    out = attempt(command([PY, "-c", script, "INHERITED_VAR", "DEVCREW_TASK_ID"],
                          inherit_env=False, parse_json=True))
    assert out["json"] == {"INHERITED_VAR": None, "DEVCREW_TASK_ID": "implement"}


def test_command_cwd_with_placeholder(tmp_path: Path) -> None:
    work = tmp_path / "wf-1"
    work.mkdir()
    out = attempt(command([PY, "-c", "import os; print(os.getcwd())"],
                          cwd=str(tmp_path / "{workflow_id}")))
    assert Path(out["stdout"].strip()).resolve() == work.resolve()


def test_command_missing_cwd_is_not_retryable(tmp_path: Path) -> None:
    error = failure(command(["true"], cwd=str(tmp_path / "nope")))
    assert "runner.cwd" in str(error) and "does not exist" in str(error)
    assert error.retryable is False


def test_command_output_keeps_the_tail_when_truncated() -> None:
    script = ("import sys; sys.stdout.write('a' * 10000 + 'END'); "
              "sys.stderr.write('é' * 5000 + 'TAIL')")
    out = attempt(command([PY, "-c", script], max_output_bytes=100))
    assert out["stdout"] == "a" * 97 + "END" and out["stdout_truncated"] is True
    assert out["stderr"].endswith("TAIL") and out["stderr_truncated"] is True
    assert len(out["stderr"].encode()) <= 100 and "\ufffd" not in out["stderr"]


def test_command_parse_json() -> None:
    out = attempt(command([PY, "-c", "print('{{\"passed\": 12}}')"], parse_json=True))
    assert out["json"] == {"passed": 12}
    error = failure(command([PY, "-c", "print('[1]')"], parse_json=True))
    assert "must be a JSON object, got list" in str(error) and error.retryable is False
    error = failure(command([PY, "-c", "print('nope')"], parse_json=True))
    assert "stdout is not JSON" in str(error)
    error = failure(command([PY, "-c", "print('{{' + '\"a\": 1, ' * 100 + '\"b\": 2}}')"],
                            parse_json=True, max_output_bytes=50))
    assert "truncated" in str(error)


def test_command_non_zero_exit_names_code_and_stderr_tail() -> None:
    script = ("import sys; [print('line %d' % i, file=sys.stderr) for i in range(100)]; "
              "sys.exit(3)")
    error = failure(command([PY, "-c", script]))
    message = str(error)
    assert "exited with code 3" in message and "line 99" in message
    assert "line 0\n" not in message
    assert error.retryable is True


def test_command_killed_by_a_signal() -> None:
    error = failure(command(["sh", "-c", 'kill -TERM "$$"']))
    assert "killed by SIGTERM" in str(error)


def test_command_missing_executable() -> None:
    error = failure(command(["devcrew-no-such-program-xyz", "arg"]))
    assert "executable 'devcrew-no-such-program-xyz' not found" in str(error)
    assert error.retryable is False


def test_command_not_executable(tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    error = failure(command([str(script)]))
    assert "cannot be executed" in str(error) and error.retryable is False


def is_gone(pid: int) -> bool:
    """True once ``pid`` no longer runs (a zombie has exited: only its parent's reaping,
    which in a container's init may be late, is left)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


def wait_until_gone(pid: int) -> bool:
    """Poll until ``pid`` is gone, up to :data:`HANG` seconds."""
    deadline = time.monotonic() + HANG
    while time.monotonic() < deadline:
        if is_gone(pid):
            return True
        time.sleep(0.05)
    return False


def kill_leftovers(*pids: int) -> None:
    """If the runner failed to, kill what the test started (never leak a sleep 1000)."""
    for pid in pids:
        if not is_gone(pid):
            os.kill(pid, signal.SIGKILL)


async def wait_for_file(path: Path) -> int:
    """The pid written to ``path`` once it is complete."""
    deadline = time.monotonic() + HANG
    while time.monotonic() < deadline:
        text = path.read_text() if path.exists() else ""
        if text.endswith("\n"):
            return int(text)
        await asyncio.sleep(0.02)
    raise AssertionError(f"{path} was never written")


@dataclass
class Hung:
    """A command that starts a child and hangs; both write their pids."""

    tmp_path: Path
    ignore_term: bool = False
    leader: Path = field(init=False)
    child: Path = field(init=False)

    def __post_init__(self) -> None:
        self.leader = self.tmp_path / "leader.pid"
        self.child = self.tmp_path / "child.pid"

    def runner(self) -> Runner:
        trap = "trap '' TERM; " if self.ignore_term else ""
        script = trap + 'echo $$ > "$1"; sleep 1000 & echo $! > "$2"; wait'
        return command(["sh", "-c", script, "sh", str(self.leader), str(self.child)],
                       kill_grace=0.3)

    async def start(self) -> tuple[asyncio.Future[dict[str, Any]], int, int]:
        task = asyncio.ensure_future(self.runner()(make_call()))
        leader = await wait_for_file(self.leader)
        child = await wait_for_file(self.child)
        return task, leader, child


@pytest.mark.parametrize("ignore_term", [False, True], ids=["term", "term-ignored-then-kill"])
def test_command_timeout_kills_the_whole_process_group(tmp_path: Path,
                                                       ignore_term: bool) -> None:
    hung = Hung(tmp_path, ignore_term=ignore_term)

    async def scenario() -> tuple[int, int]:
        task, leader, child = await hung.start()
        assert not is_gone(leader) and not is_gone(child)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(task, 0.5)
        return leader, child

    leader, child = run(asyncio.wait_for(scenario(), HANG))
    try:
        assert wait_until_gone(leader), f"leader {leader} survived"
        assert wait_until_gone(child), f"child {child} survived"
        with pytest.raises(ProcessLookupError):  # the leader was reaped, not left a zombie
            os.kill(leader, 0)
    finally:
        kill_leftovers(leader, child)


def test_command_sleep_under_wait_for_really_dies(tmp_path: Path) -> None:
    pidfile = tmp_path / "sleep.pid"
    runner = command(["sh", "-c", 'echo $$ > "$1"; exec sleep 1000', "sh", str(pidfile)])

    async def scenario() -> int:
        task = asyncio.ensure_future(runner(make_call()))
        pid = await wait_for_file(pidfile)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(task, 0.5)
        return pid

    pid = run(scenario())
    try:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    finally:
        kill_leftovers(pid)


def test_command_cancel_reraises_cancelled_error(tmp_path: Path) -> None:
    hung = Hung(tmp_path)

    async def scenario() -> tuple[int, int]:
        task, leader, child = await hung.start()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return leader, child

    leader, child = run(scenario())
    try:
        assert wait_until_gone(leader) and wait_until_gone(child)
    finally:
        kill_leftovers(leader, child)


@pytest.mark.parametrize(("options", "message"), [
    ({"argv": "ls -l"}, r"runner.argv: must be a non-empty list of strings \(got 'ls -l'\)"),
    ({"argv": []}, r"runner.argv: must be a non-empty list of strings \(got \[\]\)"),
    ({"argv": ["ls", 3]}, r"runner.argv\[1\]: must be a string \(got 3\)"),
    ({"argv": [""]}, r"runner.argv\[0\]: must name the program"),
    ({"argv": ["ls", "a\0b"]}, r"runner.argv\[1\]: must not contain a NUL"),
    ({}, "runner.argv: required for kind 'command'"),
    ({"argv": ["ls"], "shell": True}, "unknown option 'shell' for kind 'command'"),
    ({"argv": ["ls"], "cwd": 5}, r"runner.cwd: must be a directory path"),
    ({"argv": ["ls"], "env": ["A=1"]}, r"runner.env: must be a mapping"),
    ({"argv": ["ls"], "env": {"A=B": "1"}}, r"runner.env: variable names"),
    ({"argv": ["ls"], "env": {"TOKEN": 12345}},
     r"runner.env\['TOKEN'\]: must be a string without NUL \(got a value of type int, hidden\)"),
    ({"argv": ["ls"], "env": {"A": "{nope}"}}, r"runner.env\['A'\]: unknown placeholder"),
    ({"argv": ["ls"], "stdin": True}, r"runner.stdin: must be"),
    ({"argv": ["ls"], "stdin": "{bad"}, r"runner.stdin: unclosed"),
    ({"argv": ["ls"], "cwd": "/tmp/{x}"}, r"runner.cwd: unknown placeholder \{x\}"),
    ({"argv": ["ls"], "max_output_bytes": 0}, r"runner.max_output_bytes: .* \(got 0\)"),
    ({"argv": ["ls"], "max_output_bytes": "64k"}, r"runner.max_output_bytes"),
    ({"argv": ["ls"], "max_output_bytes": True}, r"runner.max_output_bytes"),
    ({"argv": ["ls"], "parse_json": "yes"}, r"runner.parse_json: must be true or false"),
    ({"argv": ["ls"], "inherit_env": 1}, r"runner.inherit_env"),
    ({"argv": ["ls"], "kill_grace": -1}, r"runner.kill_grace: must be a number >= 0"),
])
def test_command_declaration_errors_are_eager(options: dict[str, Any], message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        command_runner({"kind": "command", **options})


def test_command_env_error_never_shows_the_value() -> None:
    with pytest.raises(DefinitionError) as info:
        command_runner({"kind": "command", "argv": ["ls"], "env": {"TOKEN": 98765}})
    assert "98765" not in str(info.value)


# == http ====================================================================================
@dataclass
class Seen:
    """What the test server received and noticed."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    hang_started: threading.Event = field(default_factory=threading.Event)
    client_gone: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


def make_handler(seen: Seen) -> type[BaseHTTPRequestHandler]:
    """A handler whose path chooses the behaviour."""

    class Handler(BaseHTTPRequestHandler):
        timeout = HANG  # never let a handler thread outlive the test by much

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            seen.requests.append({"path": self.path, "body": body,
                                  "headers": {k.lower(): v for k, v in self.headers.items()}})
            if self.path == "/echo":
                answer = {"received": json.loads(body),
                          "headers": {k.lower(): v for k, v in self.headers.items()}}
                self.send(200, json.dumps(answer).encode(),
                          {"Content-Type": "application/json"})
            elif self.path == "/fail":
                self.send(500, b"internal kaboom " + b"x" * 2000)
            elif self.path == "/bad-request":
                self.send(400, b'{"error": "feature missing"}')
            elif self.path == "/busy":
                self.send(429, b"slow down")
            elif self.path == "/list":
                self.send(200, b"[1, 2]")
            elif self.path == "/text":
                self.send(200, b"hello, not json")
            elif self.path == "/nan":
                self.send(200, b'{"score": NaN}')
            elif self.path == "/empty":
                self.send(204, b"")
            elif self.path == "/redirect":
                self.send(302, b"", {"Location": "/echo?token=s3cret"})
            elif self.path == "/big":
                self.send(200, json.dumps({"blob": "x" * 5000}).encode())
            elif self.path == "/hang":
                seen.hang_started.set()
                # Block until the client goes away (EOF) or the test releases us.
                self.connection.settimeout(0.1)
                deadline = time.monotonic() + HANG
                while time.monotonic() < deadline and not seen.release.is_set():
                    try:
                        if self.connection.recv(1) == b"":
                            seen.client_gone.set()
                            return
                    except TimeoutError:
                        continue
                    except OSError:
                        seen.client_gone.set()
                        return
            else:
                self.send(404, b"no such path")

    return Handler


@dataclass
class Server:
    """A running test server."""

    base: str
    seen: Seen


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """A real ThreadingHTTPServer on 127.0.0.1, no proxy in between."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                 "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    seen = Seen()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(seen))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name="test-http", daemon=True)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{httpd.server_address[1]}", seen)
    finally:
        seen.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(HANG)


SECRET = "Bearer sk-test-0123456789"


def http(url: str, **options: Any) -> Runner:
    """An http runner for ``url``."""
    return http_runner({"kind": "http", "url": url, **options})


def test_http_posts_the_call_and_returns_the_object(server: Server) -> None:
    call = make_call(context=AgentContext(agent_id="tester", agent_type="qa"), timeout=20)
    out = attempt(http(f"{server.base}/echo", headers={"Authorization": SECRET,
                                                       "X-Team": "core"}), call)
    assert out["received"] == call.as_json()
    headers = out["headers"]
    assert headers["content-type"] == "application/json"
    assert headers["idempotency-key"] == "run-7/implement/2"
    assert headers["authorization"] == SECRET and headers["x-team"] == "core"
    assert server.seen.requests[0]["path"] == "/echo"


def test_http_declared_headers_override_defaults(server: Server) -> None:
    out = attempt(http(f"{server.base}/echo",
                       headers={"content-type": "application/vnd.devcrew+json"}))
    assert out["headers"]["content-type"] == "application/vnd.devcrew+json"


def test_http_server_error_is_retryable_with_a_snippet(server: Server) -> None:
    error = failure(http(f"{server.base}/fail", headers={"Authorization": SECRET}))
    message = str(error)
    assert "HTTP 500" in message and "internal kaboom" in message
    assert len(message) < 1000 and SECRET not in message
    assert error.retryable is True


@pytest.mark.parametrize(("path", "retryable"), [("/bad-request", False), ("/busy", True),
                                                  ("/nowhere", False)])
def test_http_client_errors(server: Server, path: str, retryable: bool) -> None:
    error = failure(http(server.base + path))
    assert error.retryable is retryable


def test_http_bad_request_names_status_and_body(server: Server) -> None:
    error = failure(http(f"{server.base}/bad-request"))
    assert "HTTP 400" in str(error) and "feature missing" in str(error)


@pytest.mark.parametrize(("path", "message"), [
    ("/list", "JSON that is not an object"),
    ("/text", "not JSON"),
    ("/nan", "not JSON"),
])
def test_http_body_that_is_not_an_object(server: Server, path: str, message: str) -> None:
    error = failure(http(server.base + path))
    assert message in str(error) and error.retryable is False


def test_http_no_content_is_empty_output(server: Server) -> None:
    assert attempt(http(f"{server.base}/empty")) == {}


def test_http_redirects_are_not_followed(server: Server) -> None:
    error = failure(http(f"{server.base}/redirect"))
    assert "HTTP 302" in str(error) and "not followed" in str(error)
    assert "s3cret" not in str(error)
    assert [r["path"] for r in server.seen.requests] == ["/redirect"]


def test_http_response_too_large(server: Server) -> None:
    error = failure(http(f"{server.base}/big", max_response_bytes=100))
    assert "max_response_bytes (100)" in str(error)


def test_http_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    error = failure(http(f"http://127.0.0.1:{port}/run"))
    assert "connection refused" in str(error) and error.retryable is True


@pytest.mark.parametrize("where", ["spec", "call"])
def test_http_timeout_is_the_smaller_one_and_aborts(server: Server, where: str) -> None:
    if where == "spec":
        runner, call = http(f"{server.base}/hang", timeout=0.3), make_call()
    else:
        runner, call = http(f"{server.base}/hang", timeout=60), make_call(timeout=0.3)
    error = failure(runner, call)
    assert "timed out after 0.3s" in str(error) and error.retryable is True
    assert server.seen.client_gone.wait(HANG)


def test_http_cancel_aborts_the_request(server: Server) -> None:
    runner = http(f"{server.base}/hang", timeout=60)

    async def scenario() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(runner(make_call()), 0.3)

    run(asyncio.wait_for(scenario(), HANG))
    assert server.seen.hang_started.is_set()
    assert server.seen.client_gone.wait(HANG)  # the worker thread let go of the socket


def test_http_header_values_are_never_logged(server: Server,
                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="devcrew")  # whatever an earlier CLI run set
    runner = http(f"{server.base}/echo", headers={"Authorization": SECRET})
    attempt(runner)
    failure(http(f"{server.base}/fail", headers={"Authorization": SECRET}))
    assert "POST" in caplog.text  # something is logged, but never the header value
    assert SECRET not in caplog.text and SECRET not in repr(runner)


@pytest.mark.parametrize(("options", "message"), [
    ({"url": "ftp://example.com/x"}, r"runner.url: must be an http:// or https:// URL"),
    ({"url": "file:///etc/passwd"}, r"runner.url: must be an http"),
    ({"url": "http:///nohost"}, r"with a host"),
    ({"url": "http://example.com:99999/"}, r"runner.url: must be a valid"),
    ({"url": 8080}, r"runner.url: .*\(got 8080\)"),
    ({}, r"runner.url: required for kind 'http'"),
    ({"url": "http://x/", "method": "GET"}, "unknown option 'method'"),
    ({"url": "http://x/", "headers": ["a"]}, r"runner.headers: must be a mapping"),
    ({"url": "http://x/", "headers": {"Bad Name": "v"}}, r"runner.headers: header names"),
    ({"url": "http://x/", "headers": {"X-A": "v\r\nInjected: 1"}},
     r"runner.headers\['X-A'\]: must be a string without CR"),
    ({"url": "http://x/", "timeout": 0}, r"runner.timeout: must be a number > 0 \(got 0\)"),
    ({"url": "http://x/", "timeout": "30"}, r"runner.timeout"),
    ({"url": "http://x/", "timeout": True}, r"runner.timeout"),
    ({"url": "http://x/", "timeout": float("nan")}, r"runner.timeout"),
    ({"url": "http://x/", "max_response_bytes": 0}, r"runner.max_response_bytes"),
])
def test_http_declaration_errors_are_eager(options: dict[str, Any], message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        http_runner({"kind": "http", **options})


def test_http_declaration_errors_hide_secrets() -> None:
    with pytest.raises(DefinitionError) as info:
        http_runner({"kind": "http", "url": "http://bob:hunter2@example.com/run"})
    assert "credentials" in str(info.value) and "hunter2" not in str(info.value)
    with pytest.raises(DefinitionError) as info:
        http_runner({"kind": "http", "url": "http://x/", "headers": {"Authorization": 12345}})
    assert "12345" not in str(info.value) and "Authorization" in str(info.value)


# == plugin wiring ===========================================================================
@pytest.mark.parametrize(("kind", "factory"), [
    ("python", python_runner), ("command", command_runner), ("http", http_runner),
])
def test_builtin_kinds_are_registered_by_import_path(kind: str,
                                                     factory: Callable[..., Any]) -> None:
    record = PluginManager.discover().agent_runner(kind)
    assert isinstance(record.factory, str)  # nothing imported before the kind is used
    assert resolve_ref(record.factory) is factory

