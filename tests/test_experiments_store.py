"""The artifact store and `materialize`: keys, manifests written last, reuse, resume, invalidation.

The stages here are small real stages (they write files computed from their inputs), defined
for these tests; the full chain with the project's stages is tested in test_experiments_chain.py.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from mimicry.artifacts import MANIFEST, ArtifactStore, Stopwatch
from mimicry.errors import MimicryError
from mimicry.experiments.stages import BaseStage, materialize


class WordCount(BaseStage):
    """Counts the words of a text given in its config; records each run so tests can count work."""

    name = "wordcount"
    runs: list[str] = []

    def run(self, inputs: Any, config: Any, out_dir: Path) -> dict[str, Any]:
        WordCount.runs.append(config["text"])
        (out_dir / "count.txt").write_text(str(len(config["text"].split())))
        return {"count": "count.txt"}


class Doubler(BaseStage):
    """Reads an upstream artifact: its key must follow the upstream key."""

    name = "doubler"

    def run(self, inputs: Any, config: Any, out_dir: Path) -> dict[str, Any]:
        value = int(inputs["source"].path("count").read_text())
        (out_dir / "double.txt").write_text(str(2 * value))
        return {"double": "double.txt"}


class Interrupted(Exception):
    pass


class Checkpointing(BaseStage):
    """A resumable stage: writes a checkpoint, and can be 'killed' after it."""

    name = "checkpointing"
    resumable = True
    kill_after_checkpoint = True

    def run(self, inputs: Any, config: Any, out_dir: Path) -> dict[str, Any]:
        checkpoint = out_dir / "step1.done"
        resumed = checkpoint.exists()
        checkpoint.write_text("1")
        if self.kill_after_checkpoint:
            raise Interrupted
        return {"resumed_from_checkpoint": resumed}


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    WordCount.runs = []
    return ArtifactStore(tmp_path / "artifacts")


def test_a_stage_runs_once_and_its_manifest_describes_it(store: ArtifactStore) -> None:
    stage = WordCount()
    first, reused_first = materialize(store, stage, {}, {"text": "one two three"})
    second, reused_second = materialize(store, stage, {}, {"text": "one two three"})
    assert (reused_first, reused_second) == (False, True)
    assert WordCount.runs == ["one two three"]
    assert first.key == second.key and first.dir == store.root / "wordcount" / first.key
    assert first.path("count").read_text() == "3"
    manifest = json.loads((first.dir / MANIFEST).read_text())
    assert manifest["stage"] == "wordcount" and manifest["key"] == first.key
    assert manifest["config"] == {"text": "one two three"}
    assert manifest["timings"]["seconds"] >= 0 and "package_versions" in manifest and "git_sha" in manifest
    assert not list((store.root / "wordcount").glob(".partial-*"))


def test_a_config_change_gives_a_new_key_and_downstream_keys_follow(store: ArtifactStore) -> None:
    a, _ = materialize(store, WordCount(), {}, {"text": "a b"})
    b, _ = materialize(store, WordCount(), {}, {"text": "a b c"})
    assert a.key != b.key
    double_a, _ = materialize(store, Doubler(), {"source": a}, {})
    double_b, _ = materialize(store, Doubler(), {"source": b}, {})
    assert double_a.key != double_b.key
    assert (double_a.path("double").read_text(), double_b.path("double").read_text()) == ("4", "6")
    manifest = json.loads((double_b.dir / MANIFEST).read_text())
    assert manifest["inputs"] == {"source": {"stage": "wordcount", "key": b.key}}


def test_a_directory_without_manifest_is_not_an_artifact(store: ArtifactStore) -> None:
    artifact, _ = materialize(store, WordCount(), {}, {"text": "x"})
    (artifact.dir / MANIFEST).unlink()
    assert store.get("wordcount", artifact.key) is None
    again, reused = materialize(store, WordCount(), {}, {"text": "x"})
    assert not reused and (again.dir / MANIFEST).is_file()
    assert WordCount.runs == ["x", "x"]


def test_a_failed_non_resumable_stage_leaves_no_artifact_and_starts_afresh(store: ArtifactStore) -> None:
    class Failing(WordCount):
        def run(self, inputs: Any, config: Any, out_dir: Path) -> dict[str, Any]:
            (out_dir / "half.txt").write_text("half")
            raise Interrupted

    with pytest.raises(Interrupted):
        materialize(store, Failing(), {}, {"text": "y"})
    key = WordCount().key({}, {"text": "y"})
    assert store.get("wordcount", key) is None
    assert (store.partial_dir("wordcount", key) / "half.txt").exists()
    artifact, reused = materialize(store, WordCount(), {}, {"text": "y"})
    assert not reused and not (artifact.dir / "half.txt").exists()


def test_a_killed_resumable_stage_resumes_from_its_partial_directory(store: ArtifactStore) -> None:
    stage = Checkpointing()
    with pytest.raises(Interrupted):
        materialize(store, stage, {}, {"steps": 2})
    stage.kill_after_checkpoint = False
    artifact, reused = materialize(store, stage, {}, {"steps": 2})
    assert not reused and artifact.outputs["resumed_from_checkpoint"] is True


def test_an_invalid_artifact_is_recomputed(store: ArtifactStore) -> None:
    class External(WordCount):
        valid = True

        def is_valid(self, artifact: Any) -> bool:
            return self.valid

    stage = External()
    materialize(store, stage, {}, {"text": "z"})
    stage.valid = False
    _, reused = materialize(store, stage, {}, {"text": "z"})
    assert not reused and WordCount.runs == ["z", "z"]


def test_data_checksums_enter_the_key(store: ArtifactStore) -> None:
    class ReadsAoa(WordCount):
        def data_files(self, inputs: Any, config: Any) -> set[str]:
            return {"safety/qi_aoa_train.json"}

    identity = ReadsAoa().identity({}, {"text": "w"})
    assert list(identity["data"]) == ["safety/qi_aoa_train.json"]
    assert len(identity["data"]["safety/qi_aoa_train.json"]) == 64
    assert ReadsAoa().key({}, {"text": "w"}) != WordCount().key({}, {"text": "w"})


def test_partial_work_that_cannot_be_resumed_is_restarted_once(store: ArtifactStore) -> None:
    class RefusesStaleCheckpoints(BaseStage):
        """Like the trainer: refuses a partial run written for other inputs."""

        name = "strict"
        resumable = True

        def run(self, inputs: Any, config: Any, out_dir: Path) -> dict[str, Any]:
            marker = out_dir / "run_key.txt"
            if marker.exists() and marker.read_text() != "current":
                raise MimicryError(f"{out_dir} holds a run with a different config")
            marker.write_text("current")
            return {"fresh": True}

    stage = RefusesStaleCheckpoints()
    work = store.begin("strict", stage.key({}, {}), resume=True)
    (work / "run_key.txt").write_text("stale")
    artifact, reused = materialize(store, stage, {}, {})
    assert not reused and artifact.outputs == {"fresh": True}


def test_outputs_resolve_inside_the_artifact_unless_absolute(store: ArtifactStore, tmp_path: Path) -> None:
    work = store.begin("words", "k1", resume=False)
    artifact = store.commit("words", "k1", work, {"outputs": {"inside": "a.txt", "outside": str(tmp_path / "b")}})
    assert artifact.path("inside") == artifact.dir / "a.txt"
    assert artifact.path("outside") == tmp_path / "b"


def test_discarding_forgets_an_artifact_even_without_its_manifest(store: ArtifactStore) -> None:
    work = store.begin("words", "k1", resume=False)
    store.commit("words", "k1", work, {"outputs": {}})
    store.discard("words", "k1")
    assert store.get("words", "k1") is None and not store.final_dir("words", "k1").exists()
    store.final_dir("words", "k2").mkdir(parents=True)  # e.g. copied in by hand, no manifest
    store.discard("words", "k2")
    assert not store.final_dir("words", "k2").exists()
    store.discard("words", "never-made")


def test_a_stopwatch_records_when_a_stage_ran_and_for_how_long() -> None:
    watch = Stopwatch()
    time.sleep(0.01)
    record = watch.record()
    assert set(record) == {"started", "finished", "seconds"}
    assert record["seconds"] == round(record["finished"] - record["started"], 3) >= 0.01
