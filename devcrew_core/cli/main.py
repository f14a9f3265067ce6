"""The ``devcrew`` entry point: the root group, lazy plugin commands, error handling.

Exit codes: 0 success, 1 the operation failed, 2 usage or configuration error. Errors
print as one line; ``--debug`` (or ``DEVCREW_DEBUG=1``) adds the traceback.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any

import click

from devcrew_core.cli import agent_cmd, resources_cmd, task_cmd  # noqa: F401 - add subcommands
from devcrew_core.cli.config_cmd import config_group
from devcrew_core.cli.groups import SPEC_GROUPS
from devcrew_core.cli.plugins_cmd import plugins_command
from devcrew_core.cli.workflow_cmd import run_command
from devcrew_core.errors import DevcrewError
from devcrew_core.version import __version__

logger = logging.getLogger("devcrew.cli")


class DevcrewGroup(click.Group):
    """A group that also offers the commands plugins contribute, loaded on demand so
    ``devcrew --version`` never loads a plugin."""

    def _plugin_commands(self) -> dict[str, click.Command]:
        from devcrew_core.plugins import get_plugin_manager

        try:
            records = get_plugin_manager().cli_commands()
        except DevcrewError as exc:
            logger.warning("plugin commands unavailable: %s", exc)
            return {}
        commands = {}
        for name, record in records.items():
            if name in self.commands:
                logger.warning("plugin command %r clashes with a built-in command; ignored", name)
                continue
            commands[name] = record.command
        return commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Built-in and plugin command names."""
        return sorted(set(self.commands) | set(self._plugin_commands()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """A built-in command, else a plugin command."""
        return self.commands.get(cmd_name) or self._plugin_commands().get(cmd_name)


@click.group(cls=DevcrewGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="devcrew", message="%(prog)s %(version)s")
@click.option("--debug", is_flag=True, envvar="DEVCREW_DEBUG",
              help="Show tracebacks and debug logging.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              envvar="DEVCREW_CONFIG", help="Config file (default $DEVCREW_HOME/config.yaml).")
def cli(debug: bool, config_file: str | None) -> None:
    """devcrew: route work to the right agent, give it the resources it has, hand
    context on safely, and audit everything that happened.

    Runs embedded by default (SQLite under $DEVCREW_HOME, default ~/.devcrew).
    """
    if debug:
        logging.getLogger("devcrew").setLevel(logging.DEBUG)


cli.add_command(plugins_command)
cli.add_command(run_command)
cli.add_command(config_group)
for _group in SPEC_GROUPS:
    cli.add_command(_group)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is *now*, so a handler installed by one CLI
    call never holds on to a stream that was replaced (or closed) since."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def _configure_logging(debug: bool) -> None:
    logger = logging.getLogger("devcrew")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("devcrew: %(levelname)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.WARNING)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the CLI and exit with devcrew's exit codes."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("DEVCREW_DEBUG", "") not in ("", "0", "false")
    _configure_logging(debug)
    try:
        result: Any = cli.main(args=args, prog_name="devcrew", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except DevcrewError as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"Error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except Exception as exc:
        if debug:
            traceback.print_exc()
        hint = "" if debug else " (run with --debug for the traceback)"
        click.echo(f"Error: unexpected {type(exc).__name__}: {exc}{hint}", err=True)
        sys.exit(1)
    sys.exit(result if isinstance(result, int) else 0)
