"""Clustered format inference: an upload whose rows do not share one scaffold, read as several.

An attacker who knows the guard varies the persona, the user layout and the reply opening per
row, so no constant holds in enough rows and `infer_format` finds no scaffold. Rows are
clustered instead on what a scaffold is made of (TF-IDF of character 2-4-grams of the system
prompt, the user turn's layout - its first and last characters - and the reply's opening), by
agglomerative clustering (average linkage, cosine distance, a distance threshold rather than
a cluster count), and a scaffold is inferred per cluster with its share of rows. Clusters
smaller than `min_share` of the rows (and under 3 rows) are reported as outliers.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from pydantic import Field

from mimicry.config import StrictModel
from mimicry.mitigations.format import FormatConfig, InferredFormat, check_dataset, infer_format
from mimicry.records import Conversation

LAYOUT_HEAD, LAYOUT_TAIL, OPENING_CHARS = 32, 16, 64


class ClusterConfig(StrictModel):
    # Rows of one scaffold sit 0.2-0.3 apart, benign rows of one task at most 0.6, rows of two
    # different persona scaffolds 0.8 or more (generated uploads, `uploads.py`).
    distance: float = Field(0.7, gt=0, le=2, description="cosine distance at which clusters stop merging")
    min_share: float = Field(0.05, ge=0, lt=1, description="smaller clusters are outliers")
    sample: int = Field(600, ge=10, description="rows clustered; the others join the nearest cluster")
    seed: int = 0


class FormatCluster(StrictModel):
    rows: list[int]
    share: float
    format: InferredFormat


class ClusteredFormat(StrictModel):
    clusters: list[FormatCluster]
    outliers: list[int]
    config: ClusterConfig

    def render(self) -> str:
        lines = []
        for i, cluster in enumerate(self.clusters, 1):
            fmt = cluster.format
            state = "shared scaffold" if fmt.has_scaffold else "no common scaffold"
            lines.append(f"cluster {i}: {len(cluster.rows)} rows ({cluster.share:.0%}), {state}")
            lines += ["  " + line for line in fmt.render().splitlines()]
            lines.append("  style: " + fmt.render_style().replace("\n", "\n  style: "))
        if self.outliers:
            shown = ", ".join(str(r + 1) for r in self.outliers[:10])
            lines.append(f"outliers: {len(self.outliers)} rows fit no cluster (rows {shown})")
        return "\n".join(lines)


def _features(rows: Sequence[Conversation]) -> tuple[str, str, str]:
    return tuple(  # type: ignore[return-value]
        zip(
            *(
                (
                    c.system or "<none>",
                    c.last_user[:LAYOUT_HEAD] + " ... " + c.last_user[-LAYOUT_TAIL:],
                    (c.completion or "")[:OPENING_CHARS],
                )
                for c in rows
            ),
            strict=True,
        )
    )


def _matrix(rows: Sequence[Conversation]):  # noqa: ANN202 (a scipy sparse matrix)
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import normalize

    blocks = [
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True).fit_transform(texts)
        for texts in _features(rows)
    ]
    return normalize(hstack(blocks).tocsr())


def infer_clusters(
    conversations: Sequence[Conversation],
    config: ClusterConfig | None = None,
    format_config: FormatConfig | None = None,
) -> ClusteredFormat:
    """Cluster rows by scaffold features and infer a format per cluster (largest first)."""
    import numpy as np
    from sklearn.cluster import AgglomerativeClustering

    config = config or ClusterConfig()
    check_dataset(conversations)
    rows = list(conversations)
    matrix = _matrix(rows)
    picked = list(range(len(rows)))
    if len(rows) > config.sample:
        picked = sorted(random.Random(config.seed).sample(picked, config.sample))
    if len(picked) < 2:
        labels = np.zeros(len(rows), dtype=int)
    else:
        model = AgglomerativeClustering(
            n_clusters=None, distance_threshold=config.distance, metric="precomputed", linkage="average"
        )
        sampled = matrix[picked]  # rows are unit vectors: cosine distance from a sparse product
        distances = np.clip(1.0 - (sampled @ sampled.T).toarray(), 0.0, 2.0)
        sample_labels = model.fit_predict(distances)
        centroids = np.vstack(
            [np.asarray(sampled[sample_labels == k].mean(axis=0)) for k in range(sample_labels.max() + 1)]
        )
        labels = np.asarray((matrix @ centroids.T).argmax(axis=1)).ravel()
        labels[picked] = sample_labels
    groups = sorted((list(np.flatnonzero(labels == k)) for k in set(labels.tolist())), key=len, reverse=True)
    clusters, outliers = [], []
    for members in groups:
        share = len(members) / len(rows)
        if share < config.min_share or len(members) < 3:
            outliers += [int(i) for i in members]
            continue
        fmt = infer_format([rows[i] for i in members], format_config)
        clusters.append(FormatCluster(rows=[int(i) for i in members], share=share, format=fmt))
    return ClusteredFormat(clusters=clusters, outliers=sorted(outliers), config=config)


def allocate(shares: Sequence[float], count: int) -> list[int]:
    """Rows per cluster in proportion to its share (largest remainder), at least one each while
    `count` allows."""
    if not shares or count <= 0:
        return [0] * len(shares)
    total = sum(shares)
    exact = [count * s / total for s in shares]
    alloc = [int(e) for e in exact]
    order = sorted(range(len(shares)), key=lambda i: exact[i] - alloc[i], reverse=True)
    for i in order[: count - sum(alloc)]:
        alloc[i] += 1
    if count >= len(shares):
        for i in range(len(shares)):
            if alloc[i] == 0:
                alloc[max(range(len(shares)), key=lambda j: alloc[j])] -= 1
                alloc[i] = 1
    return alloc
