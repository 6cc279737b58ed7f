"""Evaluation: attack success, over-refusal and task accuracy, scored by validated judges."""
