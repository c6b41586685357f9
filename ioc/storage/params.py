"""Bind parameters for SQL built from optional filters: values never enter the SQL text."""

from __future__ import annotations

from typing import Any


class Params:
    """Collects bind parameters and hands out their placeholders ($1, $2, …)."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"
