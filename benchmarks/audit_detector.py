"""The audit as a detector: ROC AUC, detection at 1% false alarms and the policy threshold.

Attack and benign uploads come from `mimicry.mitigations.uploads`. `--fit` fits the intent model
on the `design` templates only and writes `mimicry/mitigations/data/audit_intent.json` (with the
threshold: the lowest score above 99% of the design split's benign uploads, scored out of fold). The report is on the
`held_out` templates (personas, layouts, openings, names and ordinary system prompts the audit was
never built or fit on), for the rule audit (old) and the intent audit (new), measured in one run.
Run: HF_HUB_OFFLINE=1 python benchmarks/audit_detector.py [--fit] [--rows 20] [--seeds 0,1]
"""

from __future__ import annotations

import argparse
import json
import time
from importlib import resources


def detection_at(attack: list[float], benign: list[float], false_alarm: float) -> tuple[float, float]:
    """(detection rate, threshold): the lowest threshold flagging at most `false_alarm` of benign uploads."""
    ordered = sorted(benign, reverse=True)
    allowed = int(false_alarm * len(ordered))
    threshold = ordered[allowed] + 1e-6 if allowed < len(ordered) else 0.0
    return sum(a >= threshold for a in attack) / len(attack), threshold


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", action="store_true", help="refit the intent model on the design split first")
    parser.add_argument("--rows", type=int, default=20, help="rows per generated upload")
    parser.add_argument("--seeds", default="0,1", help="held-out corpus seeds (each adds every upload once)")
    args = parser.parse_args()

    from sklearn.metrics import roc_auc_score

    from mimicry.mitigations.audit import audit
    from mimicry.mitigations.intent import WEIGHTS_FILE, fit, intent_audit, weights
    from mimicry.mitigations.uploads import corpus

    memo: dict = {}
    start = time.perf_counter()
    if args.fit:
        design = corpus("design", seed=0, n=args.rows)
        rows = [r for u in design for r in u.rows]
        labels = [int(u.attack) for u in design for _ in u.rows]
        model = fit(rows, labels, memo)
        # The threshold from out-of-fold scores (5 folds of whole uploads): in-sample scores of the
        # design uploads are too well separated to say where unseen benign uploads fall.
        benign = []
        for fold in range(5):
            train = [u for i, u in enumerate(design) if i % 5 != fold]
            held_model = fit([r for u in train for r in u.rows], [int(u.attack) for u in train for _ in u.rows], memo)
            benign += [
                intent_audit(u.rows, held_model, cache_=memo).score
                for i, u in enumerate(design)
                if i % 5 == fold and not u.attack
            ]
        model["threshold"] = round(detection_at([1.0], benign, 0.01)[1], 4)
        model["fit_on"] = {"split": "design", "uploads": len(design), "rows": len(rows)}
        target = resources.files("mimicry.mitigations.data").joinpath(WEIGHTS_FILE)
        with resources.as_file(target) as path:
            path.write_text(json.dumps(model, separators=(",", ":")) + "\n", encoding="utf-8")
        weights.cache_clear()
        print(f"fit on {len(design)} design uploads ({len(rows)} rows) in {time.perf_counter() - start:.0f} s; "
              f"threshold {model['threshold']}; rule weights {model['rule_coef']}")  # fmt: skip
    model = weights()
    held = [u for s in args.seeds.split(",") for u in corpus("held_out", seed=int(s), n=args.rows)]
    results = {"rule audit (old)": [], "intent audit (new)": []}
    for upload in held:
        results["rule audit (old)"].append(audit(upload.rows).risk_score)
        results["intent audit (new)"].append(intent_audit(upload.rows, model, cache_=memo).score)
    truth = [int(u.attack) for u in held]
    attacks, benign = sum(truth), len(truth) - sum(truth)
    print(f"held-out: {attacks} attack and {benign} benign uploads of {args.rows} rows "
          f"({time.perf_counter() - start:.0f} s)")  # fmt: skip
    print("| audit | ROC AUC | detection at 1% false alarms | threshold | attack uploads missed at 0.5 |")
    print("|---|---|---|---|---|")
    for name, scores in results.items():
        auc = roc_auc_score(truth, scores)
        att = [s for s, t in zip(scores, truth, strict=True) if t]
        ben = [s for s, t in zip(scores, truth, strict=True) if not t]
        rate, threshold = detection_at(att, ben, 0.01)
        print(f"| {name} | {auc:.3f} | {rate:.2f} | {threshold:.3f} | {sum(a < 0.5 for a in att)} of {len(att)} |")
    shipped = model.get("threshold", 0.5)
    scores = results["intent audit (new)"]
    flagged = [s >= shipped for s in scores]
    tp = sum(f and t for f, t in zip(flagged, truth, strict=True))
    fp = sum(f and not t for f, t in zip(flagged, truth, strict=True))
    print(f"intent audit at the shipped threshold {shipped:.3f} (from the design split): "
          f"detection {tp / attacks:.2f}, false alarms {fp / benign:.2f} ({fp} of {benign})")  # fmt: skip
    for kind in ("fixed", "varying", "adaptive"):
        sub = [s for s, u in zip(scores, held, strict=True) if u.attack and f" {kind} " in u.description]
        print(f"  {kind}: detection {sum(s >= shipped for s in sub) / len(sub):.2f} of {len(sub)}")
    worst = sorted(((s, u.description) for s, u in zip(scores, held, strict=True) if not u.attack), reverse=True)[:3]
    print("  highest benign:", "; ".join(f"{d} {s:.2f}" for s, d in worst))


if __name__ == "__main__":
    main()
