"""The CLI skeleton: version, groups, output formats, exit codes, one-line errors."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import yaml

from devcrew_core import __version__
from devcrew_core.cli.main import main
from devcrew_core.errors import StoreError
from devcrew_core.hookspecs import hookimpl
from devcrew_core.plugin_types import CliCommand
from devcrew_core.plugins import PluginManager, reset_plugin_manager

SPEC_GROUPS = ("workflow", "agent", "task", "hub", "spoke", "handoff", "monitor")


def devcrew(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devcrew_core", *args],
        capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})},
    )


def test_version() -> None:
    result = devcrew("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"devcrew {__version__}"


def test_version_imports_no_plugin_or_backend() -> None:
    probe = (
        "import sys\n"
        "from devcrew_core.cli.main import main\n"
        "try:\n    main(['--version'])\n"
        "except SystemExit as exc:\n    assert exc.code == 0, exc.code\n"
        "heavy = {'stevedore', 'prefect', 'celery', 'redis', 'psycopg2', 'rich',\n"
        "         'devcrew_core.stores.sqlite', 'devcrew_core.default_plugins.scoring',\n"
        "         'devcrew_core.models', 'devcrew_core.config', 'devcrew_core.engine.run',\n"
        "         'pydantic', 'yaml', 'subprocess', 'importlib.metadata'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("[]")


def test_help_lists_the_spec_groups() -> None:
    result = devcrew("--help")
    assert result.returncode == 0
    for name in (*SPEC_GROUPS, "plugins", "config"):
        assert f"  {name} " in result.stdout
    for name in SPEC_GROUPS:
        group = devcrew(name, "--help")
        assert group.returncode == 0, group.stderr
        assert f"Usage: devcrew {name}" in group.stdout


def test_usage_errors_exit_2() -> None:
    assert devcrew("no-such-command").returncode == 2
    bad_format = devcrew("config", "show", "--output", "xml")
    assert bad_format.returncode == 2
    assert "'xml' is not one of" in bad_format.stderr


@pytest.mark.parametrize("fmt", ["json", "yaml", "table"])
def test_config_show_masks_passwords(fmt: str) -> None:
    env = {
        "REDIS_URL": "redis://:hunter2-redis@localhost:6379",
        "POSTGRES_HOST": "db.local",
        "POSTGRES_USER": "orchestrator",
        "POSTGRES_PASSWORD": "hunter2-postgres",
        "COLUMNS": "200",
    }
    result = devcrew("config", "show", "--format", fmt, env=env)
    assert result.returncode == 0, result.stderr
    assert "hunter2" not in result.stdout + result.stderr
    assert "********" in result.stdout
    if fmt == "json":
        shown = json.loads(result.stdout)
        assert shown["settings"]["state_url"] == "redis://:********@localhost:6379"
        assert shown["settings"]["audit_url"].startswith("postgresql://orchestrator:********@")
        assert shown["sources"]["redis_url"] == "env:REDIS_URL"
    if fmt == "yaml":
        masked = yaml.safe_load(result.stdout)["settings"]["postgres_password"]
        assert masked == "********"


def test_config_error_is_one_line_with_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("redis_ulr: redis://x\n")
    result = devcrew("--config", str(config), "config", "show")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert str(config) in lines[0] and "redis_ulr" in lines[0] and "redis_url" in lines[0]
    debug = devcrew("--debug", "--config", str(config), "config", "show")
    assert debug.returncode == 2 and "Traceback" in debug.stderr


def test_plugins_lists_json_and_all_adds_builtins() -> None:
    plain = devcrew("plugins")
    assert plain.returncode == 0, plain.stderr
    names = {row["name"] for row in json.loads(plain.stdout)}
    assert {"devcrew_redis", "devcrew_postgres", "devcrew_celery", "devcrew_prefect",
            "devcrew_templates"} <= names
    assert "devcrew.stores" not in names
    everything = json.loads(devcrew("plugins", "--all").stdout)
    by_name = {row["name"]: row for row in everything}
    assert by_name["devcrew.stores"]["hooks"] == ["devcrew_store_backends"]
    assert by_name["devcrew.stores"]["version"] == __version__
    assert all(row["error"] is None for row in everything)


class _CommandsPlugin:
    @hookimpl
    def devcrew_cli_commands(self) -> Iterator[CliCommand]:
        @click.command()
        def boom() -> None:
            """Fail unexpectedly."""
            raise RuntimeError("kaboom")

        @click.command()
        def unreachable() -> None:
            """Fail as an operation."""
            raise StoreError("cannot reach the store at redis://127.0.0.1:1")

        @click.command()
        def hello() -> None:
            """Greet."""
            click.echo("hello from a plugin")

        yield CliCommand(name="boom", command=boom)
        yield CliCommand(name="unreachable", command=unreachable)
        yield CliCommand(name="hello", command=hello)


@pytest.fixture
def plugin_commands() -> Iterator[None]:
    manager = PluginManager()
    manager.register(_CommandsPlugin(), name="commands-plugin")
    reset_plugin_manager(manager)
    try:
        yield
    finally:
        reset_plugin_manager(None)


def _run_main(args: list[str]) -> int:
    logger = logging.getLogger("devcrew")
    level, handlers = logger.level, list(logger.handlers)
    try:
        with pytest.raises(SystemExit) as exc:
            main(args)
    finally:  # main() configures CLI logging; leave the process as it was
        logger.setLevel(level)
        logger.handlers[:] = handlers
    return int(exc.value.code or 0)


def test_plugin_commands_and_exit_codes(
    plugin_commands: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run_main(["hello"]) == 0
    assert capsys.readouterr().out.strip() == "hello from a plugin"

    assert _run_main(["unreachable"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["Error: cannot reach the store at redis://127.0.0.1:1"]

    assert _run_main(["boom"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "RuntimeError: kaboom" in err[0] and "--debug" in err[0]

    assert _run_main(["--debug", "boom"]) == 1
    assert "Traceback" in capsys.readouterr().err

    assert _run_main(["--help"]) == 0
    assert "hello" in capsys.readouterr().out


def test_every_public_name_resolves() -> None:
    import devcrew_core

    for name in devcrew_core.__all__:
        assert getattr(devcrew_core, name) is not None, name
    assert set(devcrew_core.__all__) <= set(dir(devcrew_core))
