"""Content-addressed artifact store: one directory per (stage, key), complete iff its manifest exists.

A stage works in `<stage>/.partial-<key>/`, writes its files, then `manifest.json` last, and the
directory is renamed to `<stage>/<key>/`. A killed run therefore leaves either a finished
artifact (reused by the next run) or a partial directory: resumable stages (training,
evaluation) continue from what it holds, the others start it afresh. A per-key file lock keeps
two processes from computing the same artifact at once. The store sits in the foundation layer
so that every package caches through it (the grid's stages, the self-answers of alignment) and the
models package can find aligned models by name in it.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mimicry.hashing import canonical_json
from mimicry.provenance import git_sha, package_versions
from mimicry.records import atomic_write_text

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Artifact:
    """A finished stage output: its directory and the manifest describing how it was made."""

    stage: str
    key: str
    dir: Path
    manifest: dict[str, Any] = field(hash=False, compare=False)

    @property
    def outputs(self) -> dict[str, Any]:
        return self.manifest["outputs"]

    def path(self, output: str) -> Path:
        """An output that names a file or directory inside the artifact (stored relative to it)."""
        value = self.outputs[output]
        return Path(value) if Path(value).is_absolute() else self.dir / value


class ArtifactStore:
    """Finished and partial artifacts under one root (normally `mimicry.paths.artifacts_dir()`)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def final_dir(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def partial_dir(self, stage: str, key: str) -> Path:
        return self.root / stage / f".partial-{key}"

    def get(self, stage: str, key: str) -> Artifact | None:
        """The finished artifact, or None; a directory without a manifest is not an artifact."""
        directory = self.final_dir(stage, key)
        manifest = directory / MANIFEST
        if not manifest.is_file():
            return None
        return Artifact(stage, key, directory, json.loads(manifest.read_text(encoding="utf-8")))

    def finished(self, stage: str) -> list[Artifact]:
        """Every finished artifact of a stage, oldest first (read-only: nothing is locked or written)."""
        directory = self.root / stage
        found = [self.get(stage, d.name) for d in sorted(directory.iterdir())] if directory.is_dir() else []
        return sorted(
            (a for a in found if a is not None), key=lambda a: a.manifest.get("timings", {}).get("finished", 0)
        )

    @contextmanager
    def lock(self, stage: str, key: str) -> Iterator[None]:
        lock_path = self.root / stage / ".locks" / f"{key}.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def begin(self, stage: str, key: str, *, resume: bool) -> Path:
        """The work directory for a new artifact: kept from a killed run only when the stage can resume."""
        work = self.partial_dir(stage, key)
        if work.exists() and not resume:
            shutil.rmtree(work)
        work.mkdir(parents=True, exist_ok=True)
        return work

    def commit(self, stage: str, key: str, work: Path, record: Mapping[str, Any]) -> Artifact:
        """Write the manifest last, then move the work directory into place in one rename."""
        manifest = {
            "stage": stage,
            "key": key,
            **record,
            "package_versions": package_versions(),
            "git_sha": git_sha(),
        }
        atomic_write_text(work / MANIFEST, json.dumps(json.loads(canonical_json(manifest)), indent=2) + "\n")
        final = self.final_dir(stage, key)
        if final.exists():  # a directory without a manifest (e.g. copied in by hand) is not trusted
            shutil.rmtree(final)
        os.replace(work, final)
        artifact = self.get(stage, key)
        assert artifact is not None
        return artifact

    def cached(
        self, stage: str, key: str, make: Callable[[Path], Mapping[str, Any]], identity: Mapping[str, Any]
    ) -> Artifact:
        """The finished artifact, else `make(work_dir)` (it writes the files and returns the outputs)
        run once under the key's lock and committed with `identity`: a cache for work inside a stage."""
        with self.lock(stage, key):
            found = self.get(stage, key)
            if found is not None:
                return found
            work = self.begin(stage, key, resume=False)
            watch = Stopwatch()
            outputs = make(work)
            return self.commit(stage, key, work, {**identity, "outputs": outputs, "timings": watch.record()})

    def discard(self, stage: str, key: str) -> None:
        """Forget a finished artifact whose external outputs vanished, so it is recomputed."""
        final = self.final_dir(stage, key)
        if final.exists():
            (final / MANIFEST).unlink(missing_ok=True)
            shutil.rmtree(final)


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.time()

    def record(self) -> dict[str, float]:
        end = time.time()
        return {"started": self.start, "finished": end, "seconds": round(end - self.start, 3)}
