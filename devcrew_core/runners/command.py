"""The ``command`` runner: run a program (an argv list, never a shell) per attempt.

::

    {"kind": "command",
     "argv": ["pytest", "-q", "{upstream.write-tests.path}"],
     "cwd": "/srv/repo", "env": {"FEATURE": "{input.feature}"},
     "stdin": "call", "max_output_bytes": 65536, "parse_json": false}

Placeholders (see :mod:`devcrew_core.runners.placeholders`) are replaced inside each
argv element, ``cwd``, ``env`` values and a ``stdin`` string. The program is started
with :func:`asyncio.create_subprocess_exec` in a new session, so a substituted value is
always part of exactly one argument and is never interpreted by a shell. Cancelling the
attempt (timeout, workflow cancel) terminates the whole process group: ``SIGTERM``, then
``SIGKILL`` after ``kill_grace`` seconds. POSIX only.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import signal
from collections.abc import Mapping
from typing import Any

from devcrew_core.errors import TaskFailedError
from devcrew_core.runners import Runner, TaskCall
from devcrew_core.runners.placeholders import (
    Template,
    call_values,
    check_declaration,
    option_error,
    positive_number,
    shown,
)

log = logging.getLogger("devcrew.runners.command")

DEFAULT_MAX_OUTPUT_BYTES = 65536
DEFAULT_KILL_GRACE = 2.0
_STDERR_LINES = 20
_STDERR_CHARS = 2000
_CHUNK = 65536
_POLL = 0.05


def command_runner(spec: Mapping[str, Any]) -> Runner:
    """The factory of the ``command`` runner kind (see the module docstring)."""
    checked = check_declaration(
        spec, "command", required=("argv",),
        optional=("cwd", "env", "stdin", "max_output_bytes", "parse_json", "kill_grace",
                  "inherit_env"),
    )
    argv = checked["argv"]
    if not isinstance(argv, list) or not argv:
        raise option_error("argv", "must be a non-empty list of strings", argv)
    templates: list[Template] = []
    for index, element in enumerate(argv):
        where = f"runner.argv[{index}]"
        if not isinstance(element, str):
            raise option_error(f"argv[{index}]", "must be a string", element)
        if "\0" in element:
            raise option_error(f"argv[{index}]", "must not contain a NUL character", element)
        templates.append(Template.parse(element, where))
    if not argv[0] or templates[0].placeholders:
        raise option_error(
            "argv[0]", "must name the program literally (task data never chooses the "
            "executable; pass it as a later argument)", argv[0],
        )

    cwd = checked.get("cwd")
    if cwd is not None and (not isinstance(cwd, str) or not cwd or "\0" in cwd):
        raise option_error("cwd", "must be a directory path (a non-empty string)", cwd)

    env = checked.get("env", {})
    if env is None:
        env = {}
    if not isinstance(env, Mapping):
        raise option_error("env", "must be a mapping of variable names to strings", env)
    env_templates: dict[str, Template] = {}
    for name, value in env.items():
        if not isinstance(name, str) or not name or "=" in name or "\0" in name:
            raise option_error("env", "variable names must be non-empty strings without "
                               "'=' or NUL", name)
        if not isinstance(value, str) or "\0" in value:
            # The value may be a secret: name the variable, show only the type.
            raise option_error(f"env[{name!r}]", "must be a string without NUL", value,
                               hide=True)
        env_templates[name] = Template.parse(value, f"runner.env[{name!r}]")

    stdin = checked.get("stdin")
    if stdin is not None and not isinstance(stdin, str):
        raise option_error("stdin", "must be \"call\" (the call as JSON) or a string", stdin)

    max_output = checked.get("max_output_bytes", DEFAULT_MAX_OUTPUT_BYTES)
    if isinstance(max_output, bool) or not isinstance(max_output, int) or max_output < 1:
        raise option_error("max_output_bytes", "must be an integer >= 1", max_output)

    parse_json = checked.get("parse_json", False)
    if not isinstance(parse_json, bool):
        raise option_error("parse_json", "must be true or false", parse_json)
    inherit_env = checked.get("inherit_env", True)
    if not isinstance(inherit_env, bool):
        raise option_error("inherit_env", "must be true or false", inherit_env)
    kill_grace = positive_number("kill_grace", checked.get("kill_grace", DEFAULT_KILL_GRACE),
                                 allow_zero=True)

    return CommandRunner(
        argv=templates,
        cwd=None if cwd is None else Template.parse(cwd, "runner.cwd"),
        env=env_templates,
        stdin=(None if stdin is None else "call" if stdin == "call"
               else Template.parse(stdin, "runner.stdin")),
        max_output_bytes=max_output,
        parse_json=parse_json,
        inherit_env=inherit_env,
        kill_grace=kill_grace,
    )


class CommandRunner:
    """Runs one subprocess per attempt and returns its exit code and output."""

    def __init__(
        self,
        *,
        argv: list[Template],
        cwd: Template | None,
        env: dict[str, Template],
        stdin: Template | str | None,
        max_output_bytes: int,
        parse_json: bool,
        inherit_env: bool,
        kill_grace: float,
    ) -> None:
        self.argv = argv
        self.cwd = cwd
        self.env = env
        self.stdin = stdin
        self.max_output_bytes = max_output_bytes
        self.parse_json = parse_json
        self.inherit_env = inherit_env
        self.kill_grace = kill_grace

    @property
    def program(self) -> str:
        """The executable (``argv[0]``, which never holds placeholders)."""
        return self.argv[0].source

    def __repr__(self) -> str:
        return f"CommandRunner(program={self.program!r})"

    def _prepare(self, call: TaskCall) -> tuple[list[str], str | None, dict[str, str],
                                                bytes | None]:
        """Render argv, cwd, env and stdin for one attempt."""
        values = call_values(call)
        argv = [_os_string(t, t.render(values)) for t in self.argv]
        cwd = None if self.cwd is None else _os_string(self.cwd, self.cwd.render(values))
        if cwd is not None and not os.path.isdir(cwd):
            raise TaskFailedError(f"runner.cwd: directory {cwd!r} does not exist",
                                  retryable=False)
        if self.inherit_env:
            env = dict(os.environ)
        else:
            env = {"PATH": os.environ["PATH"]} if "PATH" in os.environ else {}
        for name, template in self.env.items():
            env[name] = _os_string(template, template.render(values))
        env.update({
            "DEVCREW_TASK_ID": call.task_id,
            "DEVCREW_RUN_ID": call.run_id,
            "DEVCREW_WORKFLOW_ID": call.workflow_id,
            "DEVCREW_AGENT_ID": call.agent_id,
            "DEVCREW_ATTEMPT": str(call.attempt),
            "DEVCREW_IDEMPOTENCY_KEY": call.idempotency_key,
        })
        if self.stdin is None:
            data = None
        elif self.stdin == "call":
            data = json.dumps(call.as_json()).encode("utf-8")
        else:
            assert isinstance(self.stdin, Template)
            try:
                data = self.stdin.render(values).encode("utf-8")
            except UnicodeEncodeError as exc:
                raise TaskFailedError(f"runner.stdin: cannot be encoded as UTF-8 ({exc})",
                                      retryable=False) from exc
        return argv, cwd, env, data

    async def __call__(self, call: TaskCall) -> dict[str, Any]:
        """Run the program for one attempt (see the module docstring)."""
        argv, cwd, env, data = self._prepare(call)
        log.debug("task %s attempt %s: running %s", call.task_id, call.attempt, self.program)
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL if data is None else asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=cwd,
                env=env,
                start_new_session=True,  # its own process group, killed as a whole
            )
        except FileNotFoundError as exc:
            raise TaskFailedError(f"runner.argv[0]: executable {self.program!r} not found",
                                  retryable=False) from exc
        except PermissionError as exc:
            raise TaskFailedError(
                f"runner.argv[0]: {self.program!r} cannot be executed (permission denied)",
                retryable=False) from exc
        except OSError as exc:
            raise TaskFailedError(
                f"runner.argv[0]: cannot start {self.program!r}: {exc}",
                retryable=exc.errno != errno.ENOEXEC) from exc

        assert process.stdout is not None and process.stderr is not None
        try:
            (out, out_cut), (err, err_cut), _, code = await asyncio.gather(
                _read_tail(process.stdout, self.max_output_bytes),
                _read_tail(process.stderr, self.max_output_bytes),
                _feed(process.stdin, data),
                process.wait(),
            )
        except BaseException:
            # Cancelled (timeout, workflow cancel) or failed while reading: the program
            # and everything it started must really stop before we let go of it.
            await _kill_group(process, self.kill_grace)
            raise

        stdout, stderr = _decode(out, out_cut), _decode(err, err_cut)
        if code != 0:
            raise TaskFailedError(_exit_message(self.program, code, stderr))
        result: dict[str, Any] = {
            "exit_code": code,
            "stdout": stdout,
            "stderr": stderr,
            "stdout_truncated": out_cut,
            "stderr_truncated": err_cut,
        }
        if self.parse_json:
            result["json"] = _stdout_json(stdout, out_cut, self.max_output_bytes)
        return result


def _os_string(template: Template, value: str) -> str:
    """``value`` if the OS can take it as an argument, variable or path."""
    problem = None
    if "\0" in value:
        problem = "a NUL character"
    else:
        try:
            os.fsencode(value)
        except UnicodeEncodeError:
            problem = "a character that cannot be encoded (a lone surrogate)"
    if problem is not None:
        raise TaskFailedError(f"{template.where}: the value of {template.source!r} contains "
                              f"{problem}, which no program argument can hold",
                              retryable=False)
    return value


async def _read_tail(stream: asyncio.StreamReader, limit: int) -> tuple[bytes, bool]:
    """Read ``stream`` to its end, keeping only the last ``limit`` bytes."""
    buffer = bytearray()
    truncated = False
    while chunk := await stream.read(_CHUNK):
        buffer += chunk
        if len(buffer) > limit:
            del buffer[: len(buffer) - limit]
            truncated = True
    return bytes(buffer), truncated


async def _feed(stdin: asyncio.StreamWriter | None, data: bytes | None) -> None:
    """Write ``data`` to the program's stdin and close it; a program that exits without
    reading all of it is not an error."""
    if stdin is None or data is None:
        return
    try:
        stdin.write(data)
        await stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        stdin.close()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            await stdin.wait_closed()


def _signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to the process group; False if the group no longer exists."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:  # only if the pgid was reused by someone else's process
        return False
    return True


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group is still running (zombies do not count: an init
    that reaps orphans late, as in many containers, must not stretch the grace)."""
    if not _signal_group(pgid, 0):
        return False
    try:
        entries = os.listdir("/proc")
    except OSError:
        return True  # no procfs: the group exists, assume it is running
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except OSError:
            continue
        # After the command name: state, ppid, pgrp, ...
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False


async def _kill_group(process: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM the program's process group, give it ``grace`` seconds to exit, SIGKILL
    whatever is left, and reap the program."""
    pgid = process.pid  # start_new_session=True: the program leads its own group
    loop = asyncio.get_running_loop()
    try:
        if _signal_group(pgid, signal.SIGTERM):
            deadline = loop.time() + grace
            while loop.time() < deadline:
                if process.returncode is None:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(process.wait(), _POLL)
                elif not _group_alive(pgid):
                    break  # the whole group is gone
                else:
                    await asyncio.sleep(_POLL)
    finally:
        # Runs even if the clean-up itself is cancelled again.
        _signal_group(pgid, signal.SIGKILL)
    await process.wait()


def _decode(data: bytes, truncated: bool) -> str:
    if truncated:
        # The cut may fall inside a UTF-8 sequence: drop its continuation bytes.
        cut = 0
        while cut < min(3, len(data)) and data[cut] & 0xC0 == 0x80:
            cut += 1
        data = data[cut:]
    return data.decode("utf-8", errors="replace")


def _exit_message(program: str, code: int, stderr: str) -> str:
    if code < 0:
        try:
            how = f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            how = f"was killed by signal {-code}"
    else:
        how = f"exited with code {code}"
    tail = "\n".join(stderr.rstrip().splitlines()[-_STDERR_LINES:])[-_STDERR_CHARS:]
    return f"{program} {how}" + (f"; stderr ends with:\n{tail}" if tail else " (no stderr)")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _stdout_json(stdout: str, truncated: bool, limit: int) -> dict[str, Any]:
    if truncated:
        raise TaskFailedError(
            f"runner.parse_json: stdout is longer than max_output_bytes ({limit}) and was "
            "truncated, so it cannot be parsed as JSON", retryable=False)
    try:
        value = json.loads(stdout, parse_constant=_no_constant)
    except ValueError as exc:
        raise TaskFailedError(
            f"runner.parse_json: stdout is not JSON ({exc}): {shown(stdout)}",
            retryable=False) from exc
    if not isinstance(value, dict):
        raise TaskFailedError(
            f"runner.parse_json: stdout must be a JSON object, got {type(value).__name__}: "
            f"{shown(value)}", retryable=False)
    return value

