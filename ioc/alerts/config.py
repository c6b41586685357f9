"""Notification endpoints from ``config/notifications.yaml`` (``IOC_NOTIFICATIONS_FILE``).

Read and validated once at start, before anything connects, so that a typo fails the start with
one line naming the entry instead of silently dropping notifications later.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ioc.durations import parse_duration

MATCHER_KEYS = ("rule_id", "device_id", "district", "severity")
CHANGES = ("fired", "repeated", "acknowledged", "resolved", "corrected")
DEFAULT_CHANGES = frozenset({"fired", "resolved"})
_WEBHOOK_KEYS = {"name", "url", "secret", "secret_env", "match", "changes", "timeout",
                 "max_attempts", "max_age"}


class NotificationConfigError(ValueError):
    """The notifications file is invalid; ``str()`` names the file and the entry."""


@dataclass(frozen=True, slots=True)
class Webhook:
    """One HTTP endpoint; an alert change is sent when every given matcher holds."""

    name: str
    url: str
    secret: str
    match: Mapping[str, frozenset[str]] = field(default_factory=dict)
    changes: frozenset[str] = DEFAULT_CHANGES
    timeout_s: float = 5.0
    max_attempts: int = 12
    max_age_s: float = 86400.0

    def wants(self, change: str, alert: Mapping[str, Any]) -> bool:
        if change not in self.changes:
            return False
        return all(alert.get(key) in allowed for key, allowed in self.match.items())


@dataclass(frozen=True, slots=True)
class NotificationConfig:
    webhooks: tuple[Webhook, ...] = ()

    def webhook(self, name: str) -> Webhook | None:
        return next((w for w in self.webhooks if w.name == name), None)


def load_notifications(path: Path) -> NotificationConfig:
    """Parse the file; a missing file means no webhooks (MQTT publishing is a setting)."""
    if not path.exists():
        return NotificationConfig()
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise NotificationConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict) or set(doc) - {"webhooks"}:
        raise NotificationConfigError(f"{path}: expected a mapping with the key 'webhooks'")
    entries = doc.get("webhooks")
    entries = [] if entries is None else entries
    if not isinstance(entries, list):
        raise NotificationConfigError(f"{path}: 'webhooks' must be a list")
    hooks = [_webhook(entry, f"{path}: webhooks[{i}]") for i, entry in enumerate(entries)]
    names = [h.name for h in hooks]
    if len(set(names)) != len(names):
        raise NotificationConfigError(f"{path}: webhook names must be unique")
    return NotificationConfig(tuple(hooks))


def _webhook(entry: object, where: str) -> Webhook:
    if not isinstance(entry, dict):
        raise NotificationConfigError(f"{where}: expected a mapping")
    unknown = set(entry) - _WEBHOOK_KEYS
    if unknown:
        raise NotificationConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    name, url = entry.get("name"), entry.get("url")
    if not isinstance(name, str) or not name.strip():
        raise NotificationConfigError(f"{where}: 'name' is required")
    where = f"{where} ({name})"
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise NotificationConfigError(f"{where}: 'url' must be an http:// or https:// URL")
    secret = entry.get("secret")
    if "secret_env" in entry:
        secret = os.environ.get(str(entry["secret_env"]))
        if not secret:
            raise NotificationConfigError(f"{where}: environment variable "
                                          f"{entry['secret_env']} is not set")
    if not isinstance(secret, str) or not secret:
        raise NotificationConfigError(f"{where}: 'secret' or 'secret_env' is required "
                                      "(it signs every request)")
    match = entry.get("match") or {}
    if not isinstance(match, dict) or set(match) - set(MATCHER_KEYS):
        raise NotificationConfigError(f"{where}: 'match' keys are {', '.join(MATCHER_KEYS)}")
    matchers = {k: frozenset(map(str, v if isinstance(v, list) else [v])) for k, v in match.items()}
    changes = entry.get("changes", sorted(DEFAULT_CHANGES))
    if not isinstance(changes, list) or not changes or set(changes) - set(CHANGES):
        raise NotificationConfigError(f"{where}: 'changes' is a list of {', '.join(CHANGES)}")
    try:
        timeout = parse_duration(entry.get("timeout", 5.0))
        max_age = parse_duration(entry.get("max_age", 86400.0))
    except ValueError as exc:
        raise NotificationConfigError(f"{where}: {exc}") from None
    attempts = entry.get("max_attempts", 12)
    if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1:
        raise NotificationConfigError(f"{where}: 'max_attempts' must be a positive integer")
    if timeout <= 0 or max_age <= 0:
        raise NotificationConfigError(f"{where}: 'timeout' and 'max_age' must be positive")
    return Webhook(name.strip(), url, secret, matchers, frozenset(changes), timeout, attempts, max_age)
