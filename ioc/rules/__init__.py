"""Rules: model, YAML loading/validation, the vectorized engine and backtests.

Pure computation (numpy, PyYAML, stdlib): nothing here does I/O except
reading a rule file, and nothing imports the other ``ioc`` packages.
"""

from ioc.rules.backtest import backtest
from ioc.rules.check import RuleFileCheck, check_rules_file
from ioc.rules.codec import rule_fingerprint, rule_from_dict, rule_to_dict
from ioc.rules.corrections import AlertRecord, Correction, Episode
from ioc.rules.engine import (
    Evaluation,
    RuleBatch,
    RuleEngine,
    StaleEvaluationError,
    Transition,
)
from ioc.rules.loader import load_rules_file, load_rules_text
from ioc.rules.model import Absent, Condition, Count, DeviceMeta, Rate, Rule, Where
from ioc.rules.problems import RuleFileError, RuleProblem

__all__ = [
    "Absent",
    "AlertRecord",
    "Condition",
    "Correction",
    "Count",
    "DeviceMeta",
    "Episode",
    "Evaluation",
    "Rate",
    "Rule",
    "RuleBatch",
    "RuleEngine",
    "RuleFileCheck",
    "RuleFileError",
    "RuleProblem",
    "StaleEvaluationError",
    "Transition",
    "Where",
    "backtest",
    "check_rules_file",
    "load_rules_file",
    "load_rules_text",
    "rule_fingerprint",
    "rule_from_dict",
    "rule_to_dict",
]
