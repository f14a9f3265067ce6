"""``python -m devcrew_core`` runs the CLI."""

from devcrew_core.cli.main import main

main()
