"""One exception hierarchy for devcrew.

Every error a user can see derives from :class:`DevcrewError`. Subclasses say *what*
went wrong; messages say *where* (file, field, value) and, when there is one, the fix.
``exit_code`` is what the CLI exits with: 1 for a failed operation, 2 for a usage or
configuration mistake the user must correct.
"""

from __future__ import annotations


class DevcrewError(Exception):
    """Root of every devcrew error."""

    exit_code: int = 1


class UsageError(DevcrewError):
    """The caller asked for something that cannot work as asked (exit code 2)."""

    exit_code = 2


class ConfigError(UsageError):
    """A configuration file, environment variable or argument is invalid."""


class DefinitionError(UsageError, ValueError):
    """A model, workflow or other definition failed validation.

    Also a ``ValueError`` because the spec documents ``ValueError`` for invalid input.
    """


class PluginError(DevcrewError):
    """A plugin is missing, broken, or clashes with another plugin."""


class StoreError(DevcrewError):
    """A state or audit store cannot be reached or refused an operation."""


class NotFoundError(DevcrewError, KeyError):
    """A referenced object (agent, run, handoff, ...) does not exist."""

    def __str__(self) -> str:
        # KeyError.__str__ would wrap the message in quotes.
        return str(self.args[0]) if self.args else ""


class NoCapacityError(DevcrewError):
    """No eligible agent has a free slot for a task (try again later, or add agents)."""


class TaskFailedError(DevcrewError):
    """A task attempt failed (the runner raised, exited non-zero, answered non-2xx, ...).

    ``retryable`` is False for failures a retry cannot fix (e.g. a bad runner declaration).
    """

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable
