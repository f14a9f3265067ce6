"""The ``devcrew`` command-line interface (click)."""
