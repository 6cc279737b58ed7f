"""Text normalisation and near-duplicate detection, used for every disjointness proof."""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable

_NON_WORD = re.compile(r"[^a-z0-9]+")


def normalize(text: str) -> str:
    """Lower-case, strip accents and punctuation, collapse whitespace."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return _NON_WORD.sub(" ", text.lower()).strip()


def shingles(text: str, n: int = 3) -> frozenset[str]:
    words = normalize(text).split()
    if len(words) < n:
        return frozenset([" ".join(words)]) if words else frozenset()
    return frozenset(" ".join(words[i : i + n]) for i in range(len(words) - n + 1))


class NearDuplicateIndex:
    """Finds texts whose word-trigram Jaccard similarity to an indexed text reaches a threshold."""

    def __init__(self, texts: Iterable[str], threshold: float = 0.6) -> None:
        self.threshold = threshold
        self.exact: set[str] = set()
        self._sets: list[frozenset[str]] = []
        self._index: dict[str, list[int]] = defaultdict(list)
        for text in texts:
            self.exact.add(normalize(text))
            grams = shingles(text)
            idx = len(self._sets)
            self._sets.append(grams)
            for g in grams:
                self._index[g].append(idx)

    def best_match(self, text: str) -> float:
        """Highest Jaccard similarity to any indexed text (1.0 for a normalised exact match)."""
        if normalize(text) in self.exact:
            return 1.0
        grams = shingles(text)
        overlap: dict[int, int] = defaultdict(int)
        for g in grams:
            for idx in self._index.get(g, ()):
                overlap[idx] += 1
        best = 0.0
        for idx, shared in overlap.items():
            union = len(grams) + len(self._sets[idx]) - shared
            best = max(best, shared / union if union else 0.0)
        return best

    def is_duplicate(self, text: str) -> bool:
        return self.best_match(text) >= self.threshold
