"""Hook implementations of devcrew_celery.

This bundled plugin is registered (it appears in ``devcrew plugins``) but contributes
no records yet: the backend it will provide is built by a later issue, and a plugin
must not advertise a backend it cannot open. Its client library is imported only by
the backend module, never here, so listing plugins stays fast.
"""
