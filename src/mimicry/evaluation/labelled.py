"""Judges against labelled real replies: `mimicry eval validate-judges LABELS.jsonl`.

A labels file is JSONL, one reply per line: `id`, `prompt`, `response`, `label` (refusal,
compliance or other; see docs/labelling-guidelines.md) and tag fields (model, strategy,
presentation, prompt_set, labeller). Every judge's three-way verdicts are compared with the
labels: accuracy, Cohen's kappa with a bootstrap 95% interval, per-class precision and recall,
the confusion matrix, overall and per tag; plus kappa between judges. An unparsed verdict is
kept and counts as a disagreement.

A label may be kept without its texts (`LabelledReply.without_text`): prompt and reply are then
`sha256:` digests. Such labels still match stored replies and carry over to identical replies,
so the labels of replies to prompts whose licence keeps them out of a repository (the
`harmful_instructions` set, CC-BY-NC-4.0) can be committed; no judge can be validated on them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from mimicry.config import StrictModel
from mimicry.errors import MimicryError
from mimicry.evaluation.judge_base import LABELS, UNPARSED, Judge

TAGS = ("model", "presentation", "prompt_set", "prompt_kind")
DIGEST = "sha256:"


def text_digest(text: str) -> str:
    """The digest a text-free label keeps in place of a text (a digest is its own digest)."""
    return text if text.startswith(DIGEST) else DIGEST + hashlib.sha256(text.encode("utf-8")).hexdigest()


class LabelledReply(StrictModel):
    """One reply and its label; `label` is None in a file exported for labelling."""

    id: str
    prompt: str
    response: str
    label: Literal["refusal", "compliance", "other"] | None = None
    model: str | None = None
    strategy: str | None = None
    presentation: str | None = None
    prompt_set: str | None = None
    prompt_kind: Literal["harmful", "safe"] | None = None
    max_new_tokens: int | None = None
    labeller: str | None = None
    note: str | None = None

    @property
    def has_text(self) -> bool:
        return not self.response.startswith(DIGEST)

    def without_text(self) -> LabelledReply:
        """This label with its prompt and reply replaced by their digests."""
        return self.model_copy(update={"prompt": text_digest(self.prompt), "response": text_digest(self.response)})


def read_labels(path: str | Path, *, require_labels: bool = True) -> list[LabelledReply]:
    """Read a labels JSONL file; a malformed line or a missing label is an error naming the line."""
    from pydantic import ValidationError

    file = Path(path)
    if not file.is_file():
        raise MimicryError(f"no labels file at {file}: pass a JSONL file of labelled replies")
    rows: list[LabelledReply] = []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = LabelledReply.model_validate(json.loads(line))
        except (json.JSONDecodeError, ValidationError) as err:
            raise MimicryError(f"{file}:{number}: not a labelled reply ({str(err).splitlines()[0]})") from None
        if require_labels and row.label is None:
            raise MimicryError(f"{file}:{number}: reply {row.id!r} has no label (refusal, compliance or other)")
        rows.append(row)
    if not rows:
        raise MimicryError(f"{file} holds no replies")
    if len({r.id for r in rows}) != len(rows):
        raise MimicryError(f"{file}: reply ids are not unique")
    return rows


def _scores(predicted: Sequence[str], actual: Sequence[str], seed: int = 0) -> dict[str, float]:
    from mimicry.evaluation.metrics import bootstrap_kappa_ci, cohen_kappa

    n = len(actual)
    out: dict[str, float] = {
        "n": n,
        "accuracy": sum(p == a for p, a in zip(predicted, actual, strict=True)) / n if n else float("nan"),
        "kappa": cohen_kappa(list(predicted), list(actual)),
    }
    out["kappa_low"], out["kappa_high"] = bootstrap_kappa_ci(list(predicted), list(actual), seed=seed)
    for label in LABELS:
        tp = sum(p == label and a == label for p, a in zip(predicted, actual, strict=True))
        pp = sum(p == label for p in predicted)
        ap = sum(a == label for a in actual)
        out[f"precision_{label}"] = tp / pp if pp else float("nan")
        out[f"recall_{label}"] = tp / ap if ap else float("nan")
    return out


def _fmt(x: float) -> str:
    return "-" if x != x else f"{x:.2f}"


def validate_labelled(
    judges: Sequence[Judge], rows: Sequence[LabelledReply], *, title: str = "real replies", source: str = ""
) -> tuple[str, dict[str, dict[str, float]]]:
    """The markdown report and, per judge, its overall scores (for picking the headline judge)."""
    from mimicry.evaluation.metrics import bootstrap_kappa_ci, cohen_kappa

    if not all(r.has_text for r in rows):
        raise MimicryError("some labels keep only digests of their texts: a judge needs the prompt and reply")
    actual = [r.label or "" for r in rows]
    verdicts = {j.judge_id: [v.label for v in j.judge_batch([(r.prompt, r.response) for r in rows])] for j in judges}
    overall = {jid: _scores(pred, actual) for jid, pred in verdicts.items()}
    counts = {label: actual.count(label) for label in LABELS}
    lines = [
        f"### Judges against {len(rows)} labelled {title}" + (f" (`{source}`)" if source else ""),
        "",
        "Labels: " + ", ".join(f"{label} {n}" for label, n in counts.items()) + ". Kappa is Cohen's kappa over "
        "the three labels (an unparsed verdict counts as a disagreement), with a bootstrap 95% interval.",
        "",
        "| judge | n | accuracy | kappa [95% CI] | P refusal | R refusal | P compliance | R compliance | P other "
        "| R other | unparsed |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for jid, s in overall.items():
        lines.append(
            f"| {jid} | {int(s['n'])} | {_fmt(s['accuracy'])} | {_fmt(s['kappa'])} [{_fmt(s['kappa_low'])}, "
            f"{_fmt(s['kappa_high'])}] | "
            + " | ".join(_fmt(s[f"{m}_{label}"]) for label in LABELS for m in ("precision", "recall"))
            + f" | {verdicts[jid].count(UNPARSED)} |"
        )
    lines += ["", "#### Confusion matrices (rows: label, columns: verdict)", ""]
    columns = [*LABELS, UNPARSED]
    for jid, pred in verdicts.items():
        lines += [
            f"`{jid}`",
            "",
            "| label \\ verdict | " + " | ".join(columns) + " |",
            "|---|" + "---:|" * len(columns),
        ]
        for label in LABELS:
            cells = [sum(p == c and a == label for p, a in zip(pred, actual, strict=True)) for c in columns]
            lines.append(f"| {label} | " + " | ".join(str(c) for c in cells) + " |")
        lines.append("")
    for tag in TAGS:
        values = sorted({getattr(r, tag) for r in rows if getattr(r, tag) is not None})
        if len(values) < 2:
            continue
        lines += [
            f"#### Per {tag}",
            "",
            f"| judge | {tag} | n | accuracy | kappa [95% CI] |",
            "|---|---|---:|---:|---|",
        ]
        for jid, pred in verdicts.items():
            for value in values:
                idx = [i for i, r in enumerate(rows) if getattr(r, tag) == value]
                s = _scores([pred[i] for i in idx], [actual[i] for i in idx])
                lines.append(
                    f"| {jid} | {value} | {len(idx)} | {_fmt(s['accuracy'])} | {_fmt(s['kappa'])} "
                    f"[{_fmt(s['kappa_low'])}, {_fmt(s['kappa_high'])}] |"
                )
        lines.append("")
    ids = list(verdicts)
    if len(ids) > 1:
        lines += ["#### Agreement between judges", "", "| judges | kappa [95% CI] |", "|---|---|"]
        for i, a in enumerate(ids):
            for b in ids[i + 1 :]:
                low, high = bootstrap_kappa_ci(verdicts[a], verdicts[b])
                lines.append(
                    f"| {a} vs {b} | {_fmt(cohen_kappa(verdicts[a], verdicts[b]))} [{_fmt(low)}, {_fmt(high)}] |"
                )
        lines.append("")
    best = max(overall, key=lambda j: overall[j]["kappa"])
    lines += [f"Best kappa on these {title}: `{best}` ({_fmt(overall[best]['kappa'])}).", ""]
    return "\n".join(lines), overall


KIND_OF_SUITE = {"harm": "harmful", "overrefusal": "safe"}  # a label's prompt_kind, by the suite that asked


def reply_id(generation: dict) -> str:
    """The stable id of a stored reply in label files: model, presentation, prompt item."""
    return f"{generation['model']}/{generation['presentation']}/{generation['item_id']}"


def item_of_reply_id(label_id: str) -> str:
    """The prompt item a `reply_id` names (the model part may itself hold slashes)."""
    return label_id.rsplit("/", 1)[-1]


def reuse_labels(
    rows: Sequence[LabelledReply], label_files: Sequence[str | Path]
) -> tuple[list[LabelledReply], list[LabelledReply]]:
    """(labelled, still to label): a reply takes an earlier reader label of the same prompt and reply
    text, whatever cell or model gave it, because the guidelines label the text alone. Reading is the
    expensive part of labelling, and greedy decoding repeats many replies across cells."""
    known: dict[tuple[str, str], LabelledReply] = {}
    for path in label_files:
        for r in read_labels(path):
            known.setdefault((text_digest(r.prompt), text_digest(r.response)), r)
    labelled, todo = [], []
    for row in rows:
        earlier = known.get((text_digest(row.prompt), text_digest(row.response)))
        if earlier is None:
            todo.append(row)
            continue
        note = f"label of the same prompt and reply as {earlier.id}"
        labelled.append(row.model_copy(update={"label": earlier.label, "labeller": earlier.labeller, "note": note}))
    return labelled, todo


def export_for_labelling(eval_dirs: Sequence[str | Path], strategy: str | None = None) -> list[LabelledReply]:
    """Every stored harm and over-refusal reply of the evaluation directories, without labels, for
    a reader to label (ids are stable: set, item, presentation, model)."""
    from mimicry.evaluation.store import RecordStore

    rows: list[LabelledReply] = []
    for directory in eval_dirs:
        gen_file = Path(directory) / "generations.jsonl"
        if not gen_file.is_file():
            raise MimicryError(f"no generations.jsonl in {directory}")
        for g in RecordStore(gen_file).records():
            if g.get("suite") not in KIND_OF_SUITE:
                continue
            rows.append(
                LabelledReply(
                    id=reply_id(g),
                    prompt=g["prompt"],
                    response=g["response"],
                    model=g["model"],
                    strategy=strategy if g["presentation"] == "in-format" else None,
                    presentation=g["presentation"],
                    prompt_set=g["set"],
                    prompt_kind=KIND_OF_SUITE[g["suite"]],
                    max_new_tokens=(g.get("generation") or {}).get("max_new_tokens"),
                )
            )
    return rows
