"""Provenance in one module: the git sha's dirty flag, versions and data checksums, recorded
everywhere alike and never part of a cache key."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from mimicry import provenance
from mimicry.artifacts import ArtifactStore
from mimicry.experiments.stages import BaseStage, materialize


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_git_sha_flags_changes_to_tracked_files_only(tmp_path: Path) -> None:
    git_sha = provenance.git_sha.__wrapped__  # uncached: the repository changes under the test
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "code.py").write_text("x = 1\n")
    _git(repo, "add", "code.py")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    sha = _git(repo, "rev-parse", "HEAD")
    assert git_sha(repo) == sha
    (repo / "notes.txt").write_text("untracked files do not make a checkout dirty\n")
    assert git_sha(repo) == sha
    (repo / "code.py").write_text("x = 2\n")
    assert git_sha(repo) == f"{sha}-dirty"
    outside = tmp_path / "not-a-repo"
    outside.mkdir()
    assert git_sha(outside) is None


def test_data_checksums_are_the_bundle_sums_sorted_by_file() -> None:
    from mimicry.data.root import data_root

    sums = data_root().expected_checksums()
    first, second = sorted(sums)[:2]
    unknown = "not/in/the/bundle.json"
    recorded = provenance.data_checksums([second, unknown, first])
    assert list(recorded) == sorted([first, second, unknown])
    assert recorded == {first: sums[first], second: sums[second], unknown: None}


class Echo(BaseStage):
    name = "echo"

    def run(self, inputs: Any, config: Any, out_dir: Path) -> dict[str, Any]:
        (out_dir / "text.txt").write_text(config["text"])
        return {"text": "text.txt"}


def test_manifests_record_the_provenance_module_and_a_new_commit_recomputes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    first, reused = materialize(store, Echo(), {}, {"text": "a"})
    assert not reused
    assert first.manifest["git_sha"] == provenance.git_sha()
    assert first.manifest["package_versions"] == provenance.package_versions()
    monkeypatch.setattr("mimicry.artifacts.git_sha", lambda: "another-commit-dirty")
    monkeypatch.setattr("mimicry.artifacts.package_versions", lambda: {"torch": "9.9"})
    again, reused = materialize(store, Echo(), {}, {"text": "a"})
    assert reused and again.key == first.key
