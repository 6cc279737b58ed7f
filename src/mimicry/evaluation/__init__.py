"""Evaluation: attack success, over-refusal and task accuracy, scored by validated judges.

Importing this package stays light (no torch, no transformers, no scikit-learn).
"""

from mimicry.evaluation.judge_base import Judge, JudgeSpec, Verdict
from mimicry.evaluation.judges import JUDGES, build_judge, parse_judge_spec
from mimicry.evaluation.suites import SUITES, EvalConfig, EvalSpec, EvalSummary, MetricKey, MetricRow, evaluate

__all__ = [
    "JUDGES",
    "SUITES",
    "EvalConfig",
    "EvalSpec",
    "EvalSummary",
    "Judge",
    "JudgeSpec",
    "MetricKey",
    "MetricRow",
    "Verdict",
    "build_judge",
    "evaluate",
    "parse_judge_spec",
]
