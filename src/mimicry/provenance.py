"""Provenance in one place: package versions, the git commit (with a dirty flag), data checksums.

Every record of how something was made (artifact manifests, training run cards, a run's
`provenance.json`) reads these functions, so they cannot disagree. Versions and the git sha are
recorded, never hashed into a cache key (a new commit must not recompute finished work); the
data checksums are what stage keys hold for the bundle files a stage reads.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from functools import cache
from pathlib import Path

PACKAGES = ("mimicry", "torch", "transformers", "peft", "accelerate", "pydantic", "vllm")


@cache
def package_versions() -> dict[str, str]:
    """The installed versions of the packages a result depends on; missing ones are left out."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            continue
    return versions


@cache
def git_sha(source: Path | None = None) -> str | None:
    """The commit of the checkout holding `source` (default: mimicry's own), with '-dirty' when
    tracked files have local changes; None outside a git checkout (an installed wheel)."""
    where = source or Path(__file__).resolve().parent

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=where, capture_output=True, text=True, timeout=10, check=True)
        return done.stdout.strip()

    try:
        sha = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}-dirty" if dirty else sha


def data_checksums(files: Iterable[str]) -> dict[str, str | None]:
    """The bundle's recorded sha256 of each file (sorted by name; None for a file it does not list)."""
    from mimicry.data.root import data_root

    sums = data_root().expected_checksums()
    return {f: sums.get(f) for f in sorted(files)}
