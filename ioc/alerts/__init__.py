"""Alerts: lifecycle and dedup, silences, notifications (outbox, webhooks, MQTT), live feed.

Writes and reads through ``storage.alerts`` (every statement is there) and takes
``rules.Transition``; nothing here imports the API or the service. :class:`Alerts` is the one
object the service owns.
"""

from ioc.alerts.config import (
    NotificationConfig,
    NotificationConfigError,
    Webhook,
    load_notifications,
)
from ioc.alerts.feed import FeedFilter
from ioc.alerts.lifecycle import AlertNotFound, AlertStateConflict
from ioc.alerts.manager import Alerts
from ioc.alerts.senders import DELIVERY_HEADER, SIGNATURE_HEADER, signature
from ioc.storage.alerts import FEED_LOCK

__all__ = [
    "DELIVERY_HEADER",
    "FEED_LOCK",
    "SIGNATURE_HEADER",
    "AlertNotFound",
    "AlertStateConflict",
    "Alerts",
    "FeedFilter",
    "NotificationConfig",
    "NotificationConfigError",
    "Webhook",
    "load_notifications",
    "signature",
]
