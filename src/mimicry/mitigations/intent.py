"""The intent audit: does an upload's structure aim to switch the model's safety off, whatever its wording?

The rule audit (`audit.py`) matches phrasings; an attacker rewords. Here each row is read as
features of what a scaffold is made of: six rule signals (an identity-shift or obedience phrase,
an affirming reply opening, a user turn addressing a name, the reply's length, a system prompt)
and the packaged MiniLM embeddings (`harm.embed`) of the system prompt, the user turn's head and
the reply's opening; a logistic model gives each row a probability of belonging to an attack
upload. Rows are grouped by the format clusters (`clusters.py`); a cluster scores the mean of its
rows, the upload the highest cluster at or above `min_share`, and the evidence is the
highest-scoring rows, named by their row number.

The weights ship in `data/audit_intent.json`, fit by `benchmarks/audit_detector.py --fit` on the
`design` templates of `uploads.py` only; the benchmark reports on the `held_out` ones.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Any

from mimicry.config import StrictModel
from mimicry.mitigations.audit import _NAME_ADDRESS, IDENTITY_SHIFT, OBEDIENCE
from mimicry.mitigations.clusters import ClusterConfig, infer_clusters
from mimicry.mitigations.format import is_affirming
from mimicry.records import Conversation

WEIGHTS_FILE = "audit_intent.json"
RULES = ("identity_phrase", "obedience_phrase", "affirming_opening", "addresses_a_name", "reply_words_log", "system")
USER_HEAD, OPENING_CHARS = 48, 120
EVIDENCE_ROWS = 3
_OPENING = re.compile(r"^(.{1,%s}?[.!?:])(\s|$)" % OPENING_CHARS, re.DOTALL)  # noqa: UP031


class ClusterIntent(StrictModel):
    share: float
    rows: int
    score: float
    evidence_rows: list[int]  # 1-based row numbers, highest-scoring first
    example: str


class IntentReport(StrictModel):
    score: float
    level: str
    threshold: float
    clusters: list[ClusterIntent]

    def summary(self) -> str:
        return f"intent score {self.score:.2f} ({self.level}; policy threshold {self.threshold:.2f})"


def opening(reply: str) -> str:
    found = _OPENING.match(reply)
    return found.group(1) if found else reply[:OPENING_CHARS]


def rule_signals(row: Conversation) -> list[float]:
    system, user, reply = row.system or "", row.last_user, row.completion or ""
    return [
        float(bool(IDENTITY_SHIFT.search(system))),
        float(bool(OBEDIENCE.search(system) or OBEDIENCE.search(user))),
        float(is_affirming(opening(reply))),
        float(bool(_NAME_ADDRESS.match(user))),
        math.log1p(len(reply.split())) / 6,
        float(bool(system)),
    ]


def row_features(rows: Sequence[Conversation], cache_: dict[str, Any] | None = None) -> Any:
    """n x (6 + 3 x 384): rule signals, then embeddings of system prompt, user head, reply opening."""
    import numpy as np

    from mimicry.mitigations.harm import embed

    memo = cache_ if cache_ is not None else {}
    fields = [[r.system or "", r.last_user[:USER_HEAD], opening(r.completion or "")] for r in rows]
    todo = sorted({t for f in fields for t in f} - memo.keys())
    if todo:
        memo.update(zip(todo, embed(todo), strict=True))
    return np.asarray(
        [rule_signals(r) + [x for t in f for x in memo[t]] for r, f in zip(rows, fields, strict=True)],
        dtype=np.float32,
    )


@cache
def weights() -> dict[str, Any]:
    return json.loads(resources.files("mimicry.mitigations.data").joinpath(WEIGHTS_FILE).read_text("utf-8"))


def row_scores(features: Any, model: dict[str, Any]) -> Any:
    import numpy as np

    logits = features @ np.asarray(model["coef"], dtype=np.float32) + model["intercept"]
    return 1 / (1 + np.exp(-logits))


def intent_audit(
    conversations: Sequence[Conversation],
    model: dict[str, Any] | None = None,
    cluster_config: ClusterConfig | None = None,
    cache_: dict[str, Any] | None = None,
) -> IntentReport:
    """Score an upload per format cluster and overall, naming the rows that show it."""
    model = model or weights()
    rows = list(conversations)
    scores = row_scores(row_features(rows, cache_), model)
    found = infer_clusters(rows, cluster_config)
    groups = [(c.share, c.rows) for c in found.clusters] or [(1.0, list(range(len(rows))))]
    clusters = []
    for share, members in groups:
        ranked = sorted(members, key=lambda i: -scores[i])
        top = ranked[0]
        row = rows[top]
        example = f"[system] {row.system or ''} [user] {row.last_user[:60]} [reply] {opening(row.completion or '')}"
        clusters.append(
            ClusterIntent(
                share=round(share, 4),
                rows=len(members),
                score=round(float(scores[members].mean()), 4),
                evidence_rows=[i + 1 for i in ranked[:EVIDENCE_ROWS]],
                example=example[:300],
            )
        )
    clusters.sort(key=lambda c: -c.score)
    score = max(c.score for c in clusters)
    threshold = float(model.get("threshold", 0.5))
    level = "high" if score >= threshold else "low"  # the policy decision at the shipped threshold
    return IntentReport(score=round(score, 4), level=level, threshold=threshold, clusters=clusters)


def fit(rows: Sequence[Conversation], labels: Sequence[int], cache_: dict[str, Any] | None = None) -> dict[str, Any]:
    """Fit the row model (logistic regression, balanced classes) on labelled rows."""
    from sklearn.linear_model import LogisticRegression

    features = row_features(rows, cache_)
    model = LogisticRegression(C=0.5, max_iter=3000, class_weight="balanced").fit(features, list(labels))
    return {
        "features": list(RULES) + ["system_embedding x384", "user_head_embedding x384", "reply_opening_embedding x384"],
        "coef": [round(float(w), 6) for w in model.coef_[0]],
        "intercept": float(model.intercept_[0]),
        "rule_coef": dict(zip(RULES, (round(float(w), 4) for w in model.coef_[0][: len(RULES)]), strict=True)),
    }
