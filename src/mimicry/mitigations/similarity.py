"""How much the added safety rows look like the user's data.

Two numbers: the template-match rate (the share of safety rows that hold every constant of
the format inferred from the user rows: system prompt, user and reply templates) and the
nearest-neighbour similarity (TF-IDF over character 3-5-grams; each safety row's cosine to its
closest user row, averaged). The user rows' own leave-one-out nearest-neighbour similarity is
the reference a good mimic approaches.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from mimicry.config import StrictModel
from mimicry.mitigations.format import InferredFormat
from mimicry.records import Conversation

MAX_USER_ROWS = 1000


class Similarity(StrictModel):
    match_rate: float
    nn_tfidf: float
    user_nn_baseline: float
    safety_rows: int


def render_text(conversation: Conversation) -> str:
    return "\n".join(f"[{m.role}] {m.content}" for m in conversation.messages)


def format_similarity(
    fmt: InferredFormat, user: Sequence[Conversation], safety: Sequence[Conversation], seed: int = 0
) -> Similarity:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics.pairwise import cosine_similarity

    if not safety:
        raise ValueError("no safety rows to compare")
    match_rate = sum(fmt.matches(c) for c in safety) / len(safety)
    reference = list(user)
    if len(reference) > MAX_USER_ROWS:
        reference = random.Random(seed).sample(reference, MAX_USER_ROWS)
    user_texts = [render_text(c) for c in reference]
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True)
    user_matrix = vectorizer.fit_transform(user_texts)
    safety_matrix = vectorizer.transform([render_text(c) for c in safety])
    nn = cosine_similarity(safety_matrix, user_matrix).max(axis=1).mean()
    baseline = 0.0
    if len(reference) > 1:
        within = cosine_similarity(user_matrix)
        for i in range(within.shape[0]):
            within[i, i] = -1.0
        baseline = float(within.max(axis=1).mean())
    return Similarity(match_rate=match_rate, nn_tfidf=float(nn), user_nn_baseline=baseline, safety_rows=len(safety))
