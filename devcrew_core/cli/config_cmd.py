"""``devcrew config``: show the effective settings and where each came from."""

from __future__ import annotations

import click

from devcrew_core.cli.output import output_option, render


@click.group("config")
def config_group() -> None:
    """Inspect devcrew's configuration."""


@config_group.command("show")
@output_option()
@click.pass_context
def show(ctx: click.Context, output: str) -> None:
    """Print every setting, its value and its source (default, file, env, argument).

    Passwords, including passwords inside URLs, are masked.
    """
    from devcrew_core.config import load_settings

    settings = load_settings(config_file=ctx.find_root().params.get("config_file"))
    values = settings.display()
    if output == "table":
        rows = [{"setting": k, "value": v, "source": settings.sources.get(k, "default")}
                for k, v in values.items()]
        file = str(settings.config_file) if settings.config_file else "none"
        render(rows, output, title=f"config file: {file}")
        return
    render(
        {
            "config_file": str(settings.config_file) if settings.config_file else None,
            "settings": values,
            "sources": settings.sources,
        },
        output,
    )
