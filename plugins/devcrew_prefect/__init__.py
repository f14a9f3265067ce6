"""devcrew_prefect: Prefect 3 executor: task attempts run as Prefect tasks inside a Prefect flow.

Bundled with devcrew and registered through the ``devcrew`` entry-point group exactly
like a third-party plugin. Its hooks live in :mod:`devcrew_prefect.plugin`.
"""
