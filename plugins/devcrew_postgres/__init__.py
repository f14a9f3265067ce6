"""devcrew_postgres: the PostgreSQL audit and state store.

The Store contract on PostgreSQL (:mod:`devcrew_postgres.store`), opened for
``postgresql://`` and ``postgres://`` URLs, with its schema kept as versioned SQL
migrations in ``sql/``.

Bundled with devcrew and registered through the ``devcrew`` entry-point group exactly
like a third-party plugin. Its hooks live in :mod:`devcrew_postgres.plugin`.
"""
