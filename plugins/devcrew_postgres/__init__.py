"""devcrew_postgres: PostgreSQL audit and state store: the Store contract on PostgreSQL, SQL migrations kept as .sql files.

Bundled with devcrew and registered through the ``devcrew`` entry-point group exactly
like a third-party plugin. Its hooks live in :mod:`devcrew_postgres.plugin`.
"""
