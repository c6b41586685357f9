"""``ioc rules check FILE``: validate a rule file without a database."""

from __future__ import annotations

import sys

from ioc.rules.loader import load_rules_file
from ioc.rules.problems import RuleFileError


def check_command(path: str) -> int:
    """Print each problem to stderr and return 1, or print ``OK: N rules`` and return 0."""
    try:
        rules = load_rules_file(path)
    except RuleFileError as e:
        print(str(e), file=sys.stderr)
        return 1
    print(f"OK: {len(rules)} rules")
    return 0
