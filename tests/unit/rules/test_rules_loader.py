"""Rule file validation: line-precise problems, API round trip, the CLI check."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ioc.cli import main
from ioc.rules import (
    Absent,
    Condition,
    Count,
    Rate,
    Rule,
    RuleFileError,
    Where,
    check_rules_file,
    load_rules_file,
    load_rules_text,
    rule_from_dict,
    rule_to_dict,
)
from ioc.rules.model import OPS

CONFIG = Path(__file__).parents[3] / "config" / "rules.yaml"


def problems(text: str) -> list[str]:
    with pytest.raises(RuleFileError) as e:
        load_rules_text(text, "rules.yaml")
    return str(e.value).splitlines()


def test_design_example_loads_into_typed_rules() -> None:
    flood, salt, offline, fire = load_rules_text("""
rules:
  - id: flood-vi-thanh
    kind: water_level
    where: {district: "Vị Thanh"}
    when: {op: ">", value: 1.8}
    for: 5m
    clear: {op: "<", value: 1.7}
    severity: critical
    message: "Mực nước {value:.2f} m tại {device_name}"
  - id: salinity-rising
    kind: salinity
    rate: {per: 1h, op: ">", value: 1.0}
  - id: sensor-offline
    absent: {for: 10m}
  - id: fire-confirmed
    kind: camera.fire
    when: {op: ">=", value: 0.8}
    count: {at_least: 2, within: 1m}
""")
    assert flood.where == Where(districts=("Vị Thanh",)) and flood.for_s == 300.0
    assert flood.clear == Condition("<", 1.7) and flood.severity == "critical"
    assert salt.rate == Rate(3600.0, Condition(">", 1.0)) and salt.severity == "warning"
    assert offline.absent is not None and offline.absent.for_s == 600.0 and offline.auto_resolve
    assert fire.count == Count(2, 60.0) and fire.enabled


def test_problems_name_file_line_rule_and_field() -> None:
    assert problems("""rules:
  - id: flood-vi-thanh
    kind: water_level
    when: {op: "=>", value: 1.8}
""") == [
        "rules.yaml:4: rule 'flood-vi-thanh': when.op: must be one of "
        ">, >=, <, <=, ==, !=, between, outside"
    ]


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("  - id: a\n    when: {op: '>', value: 1}\n    colour: red\n",
         "rules.yaml:4: rule 'a': colour: unknown field"),
        ("  - id: a\n    when: {op: '>', value: 1}\n    for: 5 minutes\n",
         "rules.yaml:4: rule 'a': for: cannot parse duration"),
        ("  - id: a\n    when: {op: '>'}\n", "rules.yaml:3: rule 'a': when.value: missing"),
        ("  - id: a\n    when: {op: between, value: [3, 1]}\n",
         "rules.yaml:3: rule 'a': when.value: between needs lo <= hi"),
        ("  - id: a\n    when: {op: outside, value: 3}\n",
         "rules.yaml:3: rule 'a': when.value: outside needs [lo, hi]"),
        ("  - id: a\n    kind: x\n", "rules.yaml:2: rule 'a': when: missing: a rule needs one of"),
        ("  - id: a\n    count: {at_least: 2, within: 1m}\n", "rules.yaml:3: rule 'a': count: needs when"),
        ("  - id: a\n    when: {op: '>', value: 1}\n    severity: urgent\n",
         "rules.yaml:4: rule 'a': severity: must be one of info, warning, critical"),
        ("  - id: a\n    when: {op: '>', value: 1}\n    message: 'x {valu}'\n",
         "rules.yaml:4: rule 'a': message: unknown field {valu}"),
        ("  - id: a\n    when: {op: '>', value: 1}\n    message: '{value:.2q}'\n",
         "rules.yaml:4: rule 'a': message: invalid template"),
        ("  - id: a\n    absent: {for: 10m}\n    message: '{value}'\n",
         "rules.yaml:4: rule 'a': message: unknown field {value} (absent rules have no value)"),
        ("  - id: a\n    absent: {for: 0s}\n", "rules.yaml:3: rule 'a': absent.for: must be greater"),
        ("  - id: a\n    when: {op: '>', value: 1}\n    rate: {per: 1h, op: '>', value: 1}\n",
         "rules.yaml:4: rule 'a': rate: use only one of"),
        ("  - id: a\n    when: {op: '>', value: true}\n",
         "rules.yaml:3: rule 'a': when.value: must be a number"),
        ("  - id: a\n    when: {op: '>', value: 1}\n    where: {tags: []}\n",
         "rules.yaml:4: rule 'a': where.tags: must be a non-empty list"),
        ("  - when: {op: '>', value: 1}\n", "rules.yaml:2: rule #1: id: missing"),
        ("  - id: a\n    when: {op: '>', value: 1}\n    when: {op: '<', value: 1}\n",
         "rules.yaml:4: rule 'a': when: duplicate key"),
    ],
)
def test_each_kind_of_problem(rule: str, expected: str) -> None:
    assert any(line.startswith(expected) for line in problems("rules:\n" + rule)), problems(
        "rules:\n" + rule
    )


def test_duplicate_ids_and_many_problems_are_all_reported_in_line_order() -> None:
    lines = problems("""rules:
  - id: a
    when: {op: '>', value: 1}
  - id: a
    when: {op: '>', value: 2}
    severity: loud
""")
    assert lines == [
        "rules.yaml:4: rule 'a': id: duplicate id (first at line 2)",
        "rules.yaml:6: rule 'a': severity: must be one of info, warning, critical",
    ]


def test_invalid_yaml_reports_its_line() -> None:
    (line,) = problems("rules:\n  - id: a\n    when: {op: '>', value: 1\n")
    assert line.startswith("rules.yaml:4: invalid YAML")


def test_api_errors_have_the_same_messages_without_lines() -> None:
    with pytest.raises(RuleFileError) as e:
        rule_from_dict({"id": "flood", "when": {"op": "~", "value": 1}})
    assert str(e.value) == (
        "rule 'flood': when.op: must be one of >, >=, <, <=, ==, !=, between, outside"
    )
    assert e.value.problems[0].line is None


conditions = st.one_of(
    st.builds(Condition, st.sampled_from(OPS[:6]), st.floats(-1e6, 1e6)),
    st.builds(
        lambda op, lo, d: Condition(op, (lo, lo + d)),
        st.sampled_from(["between", "outside"]), st.floats(-1e3, 1e3), st.floats(0, 1e3),
    ),
)
durations = st.sampled_from([0.5, 1.0, 90.0, 300.0, 3600.0, 5400.0, 86400.0, 1.25])


@st.composite
def any_rule(draw: st.DrawFn) -> Rule:
    shape = draw(st.sampled_from(["when", "rate", "count", "absent"]))
    base = {
        "id": draw(st.from_regex(r"[a-z0-9][a-z0-9.-]{0,20}", fullmatch=True)),
        "kind": draw(st.none() | st.sampled_from(["water_level", "camera.fire"])),
        "where": draw(st.builds(
            Where, st.lists(st.sampled_from(["Vị Thanh", "Ngã Bảy"]), unique=True).map(tuple),
            st.lists(st.sampled_from(["a", "b"]), unique=True).map(tuple),
            st.lists(st.sampled_from(["river"]), unique=True).map(tuple),
        )),
        "severity": draw(st.sampled_from(["info", "warning", "critical"])),
        "auto_resolve": draw(st.booleans()), "enabled": draw(st.booleans()),
        "message": draw(st.none() | st.just("{device_name} {ts:%H:%M}")),
    }
    if shape == "absent":
        return Rule(absent=Absent(draw(durations)), **base)
    clear = draw(st.none() | conditions)
    if shape == "rate":
        return Rule(rate=Rate(draw(durations), draw(conditions)), clear=clear, **base)
    if shape == "count":
        count = Count(draw(st.integers(1, 5)), draw(durations))
        return Rule(when=draw(conditions), count=count, clear=clear, **base)
    return Rule(when=draw(conditions), for_s=draw(st.sampled_from([0.0, 300.0])), clear=clear, **base)


@settings(max_examples=200)
@given(rule=any_rule())
def test_dict_round_trip(rule: Rule) -> None:
    assert rule_from_dict(rule_to_dict(rule)) == rule


def test_shipped_rule_file_is_valid_and_covers_the_hazards() -> None:
    rules = {r.id: r for r in load_rules_file(CONFIG)}
    assert {"flood-vi-thanh", "flood-nga-bay", "flood-long-my", "salinity-high", "heavy-rain",
            "pm25-unhealthy", "traffic-congestion", "fire-confirmed", "sensor-offline"} <= set(rules)
    assert rules["pm25-unhealthy"].for_s == 900 and rules["sensor-offline"].absent.for_s == 900


def test_check_rules_file_returns_the_rules_or_every_problem(tmp_path: Path) -> None:
    good = check_rules_file(CONFIG)
    assert good.ok and good.error is None and len(good.rules) == len(load_rules_file(CONFIG))
    bad = tmp_path / "rules.yaml"
    bad.write_text("rules:\n  - id: x\n    when: {op: '>', value: 1}\n    for: soon\n")
    result = check_rules_file(bad)
    assert not result.ok and result.rules == []
    assert result.error is not None
    assert str(result.error).startswith(f"{bad}:4: rule 'x': for: cannot parse duration")
    missing = check_rules_file(tmp_path / "missing.yaml")
    assert missing.error is not None and "cannot read" in str(missing.error)


def test_rules_check_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`ioc rules check`: OK and exit 0, or the problems on stderr and exit 1."""
    assert main(["rules", "check", str(CONFIG)]) == 0
    assert capsys.readouterr().out.startswith("OK: ")
    bad = tmp_path / "rules.yaml"
    bad.write_text("rules:\n  - id: x\n    when: {op: '>', value: 1}\n    for: soon\n")
    assert main(["rules", "check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{bad}:4: rule 'x': for: cannot parse duration")
    assert main(["rules", "check", str(tmp_path / "missing.yaml")]) == 1
    assert "cannot read" in capsys.readouterr().err
