"""Validation of a rule file as ``ioc rules check FILE`` reports it, without a database.

The rules package only says what it found; what is printed and the exit code are the CLI's
(``ioc/cli.py``), so that this package stays free of I/O beyond reading the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ioc.rules.loader import load_rules_file
from ioc.rules.model import Rule
from ioc.rules.problems import RuleFileError


@dataclass(frozen=True, slots=True)
class RuleFileCheck:
    """The rules of a valid file, or the error listing every problem of an invalid one."""

    rules: list[Rule] = field(default_factory=list)
    error: RuleFileError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def check_rules_file(path: str | Path) -> RuleFileCheck:
    """Validate the file at ``path``; an unreadable file is a problem too, never an exception."""
    try:
        return RuleFileCheck(rules=load_rules_file(path))
    except RuleFileError as e:
        return RuleFileCheck(error=e)
