"""Built-in ``log`` notifier: writes each notification to the ``devcrew.notify`` logger."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from devcrew_core.hookspecs import hookimpl
from devcrew_core.plugin_types import Notification, Notifier

logger = logging.getLogger("devcrew.notify")


def log_notification(notification: Notification) -> None:
    """Log one line per notification (recipients, event, subject)."""
    logger.info(
        "notify %s [%s]: %s", ", ".join(notification.recipients), notification.event,
        notification.subject,
    )


@hookimpl
def devcrew_notifiers() -> Iterator[Notifier]:
    """The log notifier."""
    yield Notifier(name="log", notify=log_notification, description="log each notification")
