"""The Lua scripts of the Redis store, one file each (``_*.lua`` are shared helpers)."""
