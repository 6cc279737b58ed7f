"""Mix safety rows into a user's fine-tuning data, and prove what was added.

`mix` is pure: the same user rows, method, amount, seed and config give the same mixed rows.
The amount is `count` rows, or `ratio` safety rows per user row (0.1 adds 10% of the user
data's size, the paper's percentages). Pool pairs come from the mitigation part of the safety
pool, those whose request is harmful (`harm`) and whose response refuses, in a seeded order;
the mixed rows are shuffled with the same seed. Every added request is checked against every
evaluation prompt (normalised exact match and word-trigram Jaccard), and the report records
each pair id with its highest Jaccard.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from mimicry.data.sources import SafetyPair
from mimicry.errors import MimicryError
from mimicry.evaluation.refusal import is_refusal
from mimicry.generation.base import GenerationBackend
from mimicry.hashing import hash_obj
from mimicry.mitigations.format import InferredFormat, infer_format
from mimicry.mitigations.methods import MITIGATIONS, Addition, MitigationInput, MixConfig
from mimicry.mitigations.similarity import Similarity, format_similarity
from mimicry.records import Conversation
from mimicry.text import normalize


@dataclass
class MixResult:
    conversations: list[Conversation]
    added: list[Conversation]
    similarity: Similarity | None
    report: dict[str, Any]
    inference_system_prompt: str | None


def safety_count(user_rows: int, count: int | None, ratio: float | None, default_ratio: float) -> int:
    if count is not None and ratio is not None:
        raise MimicryError("give either a count or a ratio of safety rows, not both")
    if count is not None:
        if count < 0:
            raise MimicryError(f"count must be >= 0, got {count}")
        return count
    ratio = default_ratio if ratio is None else ratio
    if ratio < 0:
        raise MimicryError(f"ratio must be >= 0, got {ratio}")
    return round(ratio * user_rows)


@cache
def refusing_pool(pairs: tuple[SafetyPair, ...]) -> tuple[SafetyPair, ...]:
    """Pairs whose response refuses: about a fifth of Bianchi's pool answers borderline requests
    helpfully, and a safety row must teach refusal."""
    return tuple(p for p in pairs if is_refusal(p.refusal))


@cache
def safety_rows_pool(pairs: tuple[SafetyPair, ...]) -> tuple[tuple[SafetyPair, ...], dict[str, int]]:
    """Pairs fit to be safety rows: the request is harmful (`harm.pool_harm_scores`, on the
    request, not the reply) and the reply refuses; with the counts dropped at each step."""
    from mimicry.mitigations.harm import HARM_THRESHOLD, pool_harm_scores

    scores = pool_harm_scores()
    harmful = tuple(p for p in pairs if scores[p.id] >= HARM_THRESHOLD)
    kept = refusing_pool(harmful)
    counts = {
        "partition": len(pairs),
        "dropped_not_harmful": len(pairs) - len(harmful),
        "dropped_not_refusing": len(harmful) - len(kept),
        "kept": len(kept),
    }
    return kept, counts


@cache
def contrast_pool(pairs: tuple[SafetyPair, ...]) -> tuple[SafetyPair, ...]:
    """Pairs fit to be contrast rows: the request is benign by the same classifier (below the harm
    threshold: sensitive-sounding, as everything in a safety pool is) and the reply does not refuse."""
    from mimicry.mitigations.harm import HARM_THRESHOLD, pool_harm_scores

    scores = pool_harm_scores()
    return tuple(p for p in pairs if scores[p.id] < HARM_THRESHOLD and not is_refusal(p.refusal))


def contrast_count(wanted: int, share: float) -> int:
    """How many of the `wanted` added rows are contrast rows; at least one safety row stays."""
    return min(round(wanted * share), max(wanted - 1, 0))


def disjointness(requests: Sequence[str], pair_ids: Sequence[str]) -> dict[str, Any]:
    """Proof that no added request is, or nearly is, an evaluation prompt."""
    from mimicry.data.sources import evaluation_index

    index = evaluation_index()
    rows = [
        {
            "pair_id": pid,
            "exact": normalize(text) in index.exact,
            "max_jaccard": round(index.best_match(text), 4),
        }
        for pid, text in zip(pair_ids, requests, strict=True)
    ]
    return {
        "checked": len(rows),
        "exact_overlaps": sum(r["exact"] for r in rows),
        "near_duplicates": sum(r["max_jaccard"] >= index.threshold for r in rows),
        "jaccard_threshold": index.threshold,
        "max_jaccard": max((r["max_jaccard"] for r in rows), default=0.0),
        "per_request": rows,
    }


def mix(
    user: Sequence[Conversation],
    method: str,
    count: int | None = None,
    ratio: float | None = None,
    seed: int = 0,
    config: MixConfig | None = None,
    backend: GenerationBackend | None = None,
) -> MixResult:
    """The user's rows plus the method's safety rows, shuffled by seed, with a report."""
    from mimicry.data.sources import safety_partition

    config = config or MixConfig()
    mitigation = MITIGATIONS.get(method)
    fmt = infer_format(user, config.format)
    wanted = safety_count(len(user), count, ratio, config.ratio) if mitigation.adds_rows else 0
    contrasts = contrast_count(wanted, config.contrast)
    if contrasts and mitigation.contrast is None:
        with_contrast = ", ".join(n for n in MITIGATIONS if MITIGATIONS.get(n).contrast is not None)
        raise MimicryError(f"{method} has no contrast rows (contrast works with: {with_contrast}): set contrast: 0")
    wanted -= contrasts
    partition = safety_partition("mitigation")
    kept, pool_filter = safety_rows_pool(partition)
    pool = list(kept)
    if wanted > len(pool):
        raise MimicryError(
            f"{wanted} safety rows asked for, but the mitigation pool holds {len(pool)}: lower --count/--ratio"
        )
    random.Random(seed).shuffle(pool)
    clusters = None
    if method == "mimic" and config.mimic.mode == "structural":
        from mimicry.mitigations.clusters import infer_clusters

        clusters = infer_clusters(user, config.clusters, config.format)
    addition: Addition = mitigation.build(MitigationInput(user, fmt, pool, wanted, seed, config, backend, clusters))
    contrast = Addition()
    if contrasts:
        benign = list(contrast_pool(partition))
        if contrasts > len(benign):
            raise MimicryError(f"{contrasts} contrast rows asked for, but the pool holds {len(benign)}: lower contrast")
        random.Random(seed).shuffle(benign)
        assert mitigation.contrast is not None
        contrast = mitigation.contrast(MitigationInput(user, fmt, benign, contrasts, seed, config))
    proof = disjointness(addition.requests + contrast.requests, addition.pair_ids + contrast.pair_ids)
    if proof["exact_overlaps"] or proof["near_duplicates"]:
        raise MimicryError(
            f"{proof['exact_overlaps'] + proof['near_duplicates']} added requests overlap evaluation "
            "prompts; "
            "nothing was written (the pool partition should exclude them: check the data bundle)"
        )
    added = [
        c.model_copy(update={"meta": {"source": f"mitigation:{method}", "pair_id": pid}})
        for c, pid in zip(addition.conversations, addition.pair_ids, strict=True)
    ]
    added += [
        c.model_copy(update={"meta": {"source": f"contrast:{method}", "pair_id": pid}})
        for c, pid in zip(contrast.conversations, contrast.pair_ids, strict=True)
    ]
    mixed = list(user) + added
    random.Random(seed).shuffle(mixed)
    similarity = format_similarity(fmt, user, added, seed) if added else None
    report: dict[str, Any] = {
        "method": method,
        "seed": seed,
        "input_hash": hash_obj(
            {
                "user": [c.to_openai() for c in user],
                "method": method,
                "count": count,
                "ratio": ratio,
                "seed": seed,
                "config": config,
            }
        ),
        "user_rows": len(user),
        "requested": wanted + contrasts,
        "added": len(added),
        "total_rows": len(mixed),
        "pool_size": len(pool),
        "pool_filter": pool_filter,
        "pair_ids": addition.pair_ids,
        "contrast": {"added": len(contrast.conversations), "pair_ids": contrast.pair_ids} if contrasts else None,
        "details": addition.details,
        "format": {
            "summary": fmt.summary(),
            "template": fmt.render(),
            "style": fmt.render_style(),
            "has_scaffold": fmt.has_scaffold,
        },
        "style_match_rate": sum(fmt.style_matches(c) for c in added) / len(added) if added else None,
        "similarity": similarity.model_dump() if similarity else None,
        "disjointness": proof,
        "inference_system_prompt": addition.inference_system_prompt,
    }
    if (
        method == "mimic"
        and config.mimic.mode == "structural"
        and fmt.answer_style.acknowledgement
        and added
        and "clusters" not in addition.details
    ):
        report["variants"] = _variant_match_rates(user, fmt, pool[:wanted], config, seed)
    return MixResult(mixed, added, similarity, report, addition.inference_system_prompt)


def _variant_match_rates(
    user: Sequence[Conversation],
    fmt: InferredFormat,
    pairs: Sequence[SafetyPair],
    config: MixConfig,
    seed: int,
) -> dict[str, float]:
    """Match rate of both persona variants (style-placed rows against the prompting style, task-placed
    rows against the template), so the choice is reported either way."""
    from mimicry.mitigations.mimic import placed_in_style, structural_mimic

    rates = {}
    for variant in ("ack_refusal", "plain_refusal"):
        settings = config.mimic.model_copy(update={"variant": variant})
        rows = structural_mimic(user, pairs, fmt, settings, seed, config.placement).conversations
        rates[variant] = sum(
            fmt.style_matches(c) if placed_in_style(i, config.placement) else fmt.matches(c) for i, c in enumerate(rows)
        ) / len(rows)
    return rates
