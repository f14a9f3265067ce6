"""devcrew_redis: the Redis state store (``redis://`` and ``rediss://`` URLs).

The Store contract on Redis, every invariant guarded by a Lua script kept as a ``.lua``
file in :mod:`devcrew_redis.lua`. Modules: :mod:`~devcrew_redis.store` (the store),
:mod:`~devcrew_redis.keys` (key layout), :mod:`~devcrew_redis.scripts` (loading the
scripts), :mod:`~devcrew_redis.connection` (URL, pool, errors).

Bundled with devcrew and registered through the ``devcrew`` entry-point group exactly
like a third-party plugin. Its hooks live in :mod:`devcrew_redis.plugin`.
"""
