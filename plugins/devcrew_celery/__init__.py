"""devcrew_celery: the Celery executor and the ``devcrew worker`` command.

Task attempts run on Celery workers (JSON only, never pickle).

Bundled with devcrew and registered through the ``devcrew`` entry-point group exactly
like a third-party plugin. Its hooks live in :mod:`devcrew_celery.plugin`.
"""
