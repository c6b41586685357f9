"""Validation problems, reported all at once and each pinned to a rule, a field and a line."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RuleProblem:
    """One thing wrong with a rule. ``rule_id`` is ``#N`` (1-based) when the rule has no usable id."""

    line: int | None
    rule_id: str | None
    field: str
    message: str

    def format(self, source: str | None = None) -> str:
        """``source:line: rule 'id': field: message`` with absent parts left out."""
        parts = []
        if source is not None and self.line is not None:
            parts.append(f"{source}:{self.line}")
        elif self.line is not None:
            parts.append(f"line {self.line}")
        if self.rule_id is not None:
            parts.append(
                f"rule {self.rule_id}" if self.rule_id.startswith("#") else f"rule {self.rule_id!r}"
            )
        if self.field:
            parts.append(self.field)
        return ": ".join([*parts, self.message])


class RuleFileError(ValueError):
    """Rules that failed validation; ``str()`` gives one line per problem."""

    def __init__(self, problems: list[RuleProblem], source: str | None = None) -> None:
        self.problems = problems
        self.source = source
        super().__init__("\n".join(p.format(source) for p in problems))
