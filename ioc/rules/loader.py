"""Rule files: YAML → validated rules, with problems pinned to lines.

PyYAML's ``compose`` keeps the position of every node, so each problem the
codec reports on a field path is mapped back to the line where that field
(or its closest existing parent) is written. Duplicate keys, which
``safe_load`` would silently collapse, are reported too.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path as FsPath

import yaml

from ioc.rules.codec import ID_PATTERN, Path, field_name, parse_rule
from ioc.rules.model import Rule
from ioc.rules.problems import RuleFileError, RuleProblem


def _node_lines(
    node: yaml.Node, path: Path, lines: dict[Path, int], dups: list[tuple[Path, int]]
) -> None:
    """Record the 1-based line of every mapping key and sequence item under ``node``."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = str(key.value)
            sub = (*path, name)
            if name in seen:
                dups.append((sub, key.start_mark.line + 1))
            seen.add(name)
            lines.setdefault(sub, key.start_mark.line + 1)
            _node_lines(value, sub, lines, dups)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*path, i)] = item.start_mark.line + 1
            _node_lines(item, (*path, i), lines, dups)


def _line(lines: dict[Path, int], path: Path) -> int:
    for n in range(len(path), 0, -1):
        if path[:n] in lines:
            return lines[path[:n]]
    return 1


def load_rules_text(text: str, name: str = "<rules>") -> list[Rule]:
    """Every rule in ``text`` (YAML with a top-level ``rules:`` list); raises RuleFileError."""
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        reason = getattr(e, "problem", None) or str(e)
        raise RuleFileError([RuleProblem(line, None, "", f"invalid YAML: {reason}")], name) from None
    lines: dict[Path, int] = {}
    dups: list[tuple[Path, int]] = []
    if root is not None:
        _node_lines(root, (), lines, dups)
    if data is None:
        data = {"rules": []}
    if not isinstance(data, Mapping):
        raise RuleFileError([RuleProblem(1, None, "", "must be a mapping with a 'rules' list")], name)
    problems: list[RuleProblem] = []
    for key in data:
        if key != "rules":
            problems.append(RuleProblem(_line(lines, (str(key),)), None, str(key), "unknown field"))
    items = data.get("rules", [])
    if items is None:
        items = []
    if not isinstance(items, list):
        problems.append(RuleProblem(_line(lines, ("rules",)), None, "rules", "must be a list"))
        items = []
    rules: list[Rule] = []
    first_line: dict[str, int] = {}
    for i, item in enumerate(items):
        raw_id = item.get("id") if isinstance(item, Mapping) else None
        label = raw_id if isinstance(raw_id, str) and ID_PATTERN.fullmatch(raw_id) else f"#{i + 1}"
        base: Path = ("rules", i)
        for dup, dup_line in dups:
            if dup[:2] == base:
                problems.append(RuleProblem(dup_line, label, field_name(dup[2:]), "duplicate key"))
        rule, raw = parse_rule(item)
        for path, message in raw:
            problems.append(RuleProblem(_line(lines, base + path), label, field_name(path), message))
        if not label.startswith("#"):
            id_line = _line(lines, (*base, "id"))
            if label in first_line:
                problems.append(RuleProblem(
                    id_line, label, "id", f"duplicate id (first at line {first_line[label]})"
                ))
                continue
            first_line[label] = id_line
        if rule is not None:
            rules.append(rule)
    if problems:
        raise RuleFileError(sorted(problems, key=lambda p: p.line or 0), name)
    return rules


def load_rules_file(path: str | FsPath) -> list[Rule]:
    """The rules in the YAML file at ``path``; problems are reported as ``path:line: ...``."""
    try:
        text = FsPath(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RuleFileError([RuleProblem(None, None, "", f"cannot read {path}: {e}")]) from None
    return load_rules_text(text, str(path))
