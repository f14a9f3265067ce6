"""devcrew_redis: Redis state store: the Store contract on Redis, invariants guarded by Lua scripts.

Bundled with devcrew and registered through the ``devcrew`` entry-point group exactly
like a third-party plugin. Its hooks live in :mod:`devcrew_redis.plugin`.
"""
