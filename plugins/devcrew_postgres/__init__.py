"""devcrew_postgres: the PostgreSQL audit and state store.

The Store contract on PostgreSQL, with SQL migrations kept as .sql files.

Bundled with devcrew and registered through the ``devcrew`` entry-point group exactly
like a third-party plugin. Its hooks live in :mod:`devcrew_postgres.plugin`.
"""
