"""The accelerators (ioc/fast) against their plain references."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ioc import fast


@contextmanager
def accelerated(on: bool) -> Iterator[None]:
    """The switch set to ``on`` inside, then back as it was."""
    was = fast.enabled()
    fast.set_enabled(on)
    try:
        yield
    finally:
        fast.set_enabled(was)
