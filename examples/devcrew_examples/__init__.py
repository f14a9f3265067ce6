"""Agents used by the example workflows in ``examples/`` (installed with devcrew so
``"devcrew_examples.<module>:<function>"`` runners import in any process)."""
