"""The stages of a grid cell: align -> build -> mix -> train -> evaluate.

Each stage is a pure function from inputs (earlier artifacts, or plain values such as a model
name) and a typed spec, owned by the package that does the work (`AlignConfig`, `BuildSpec`,
`MixSpec`, `SFTConfig`, `EvalSpec`), to files in an output directory. Its key hashes the stage name
and version, the spec's JSON dump, the keys of its input artifacts and the checksums of the bundle
files it reads, so changing any of them recomputes exactly the stages that depend on it. The
stages only call the other packages' public APIs; they add no experiment logic of their own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel

from mimicry.artifacts import Artifact, ArtifactStore, Stopwatch
from mimicry.hashing import hash_obj, sha256_file
from mimicry.records import atomic_write_text
from mimicry.registry import Registry

if TYPE_CHECKING:
    from mimicry.evaluation.suites import EvalSpec
    from mimicry.mitigations import MixSpec
    from mimicry.strategies import BuildSpec
    from mimicry.training.alignment import AlignConfig
    from mimicry.training.sft import SFTConfig

Inputs = Mapping[str, Any]  # input name -> Artifact or a JSON value
# A stage's settings: its typed spec, validated once where it is built (a plain JSON mapping
# serves a stage without a spec of its own).
Config = BaseModel | Mapping[str, Any]

AOA_FILE = "safety/qi_aoa_train.json"
CONTENT_OUTPUT = "content_sha256"  # an output naming the hash of the artifact's data file
EVAL_DIR = "eval"  # where the evaluate stage keeps its generations and verdicts, inside the artifact


@runtime_checkable
class Stage(Protocol):
    name: str
    resumable: bool  # a killed run's partial directory is handed back to `run` instead of wiped

    def identity(self, inputs: Inputs, config: Config) -> dict[str, Any]: ...

    def key(self, inputs: Inputs, config: Config) -> str: ...

    def run(self, inputs: Inputs, config: Config, out_dir: Path) -> dict[str, Any]: ...

    def is_valid(self, artifact: Artifact) -> bool: ...


STAGES: Registry[Stage] = Registry("stage", base=Stage)


def materialize(store: ArtifactStore, stage: Stage, inputs: Inputs, config: Config) -> tuple[Artifact, bool]:
    """The stage's artifact for these inputs and config, and whether it was found finished.

    The lock makes a second process wait for, then reuse, what the first one computes. An
    artifact whose external outputs no longer check out (`is_valid`) is recomputed. A resumable
    stage that refuses the partial work of a killed run (e.g. the trainer finds a checkpoint of
    code that has changed since) starts afresh once, with a warning.
    """
    from mimicry.console import warn
    from mimicry.errors import MimicryError
    from mimicry.memory import release_memory

    key = stage.key(inputs, config)
    with store.lock(stage.name, key):
        found = store.get(stage.name, key)
        if found is not None and stage.is_valid(found):
            return found, True
        if found is not None:
            store.discard(stage.name, key)
        work = store.begin(stage.name, key, resume=stage.resumable)
        resuming = stage.resumable and any(work.iterdir())
        watch = Stopwatch()
        try:
            outputs = stage.run(inputs, config, work)
        except MimicryError as err:
            if not resuming:
                raise
            warn(f"{stage.name}: the partial work in {work} cannot be resumed ({err}); starting afresh")
            work = store.begin(stage.name, key, resume=False)
            resuming = False
            outputs = stage.run(inputs, config, work)
        finally:
            release_memory()  # a grid runs every cell in this process: it must not keep each stage's heap
        # A resumed stage's wall time misses the killed attempt's: the cost estimate does not calibrate on it.
        timings = {**watch.record(), "resumed": resuming}
        record = {**stage.identity(inputs, config), "outputs": outputs, "timings": timings}
        return store.commit(stage.name, key, work, record), False


def bundle_files_in(obj: Any) -> set[str]:
    """Bundle paths mentioned anywhere in a (dumped) spec: what a task or prompt set reads."""
    from mimicry.data.root import data_root

    known = data_root().expected_checksums()
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, str) and value in known:
            found.add(value)
        elif isinstance(value, Mapping):
            for v in value.values():
                walk(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v)

    walk(obj)
    return found


def task_files(task: str) -> set[str]:
    from mimicry.tasks import load_task

    return bundle_files_in(load_task(task).model_dump(mode="json"))


def prompt_set_files() -> set[str]:
    from mimicry.data.sources import PROMPT_SETS

    return {PROMPT_SETS.get(name).file for name in PROMPT_SETS}


def config_json(config: Config) -> dict[str, Any]:
    """How a stage's settings enter its key and manifest: the spec's JSON dump, a mapping as given."""
    return config.model_dump(mode="json") if isinstance(config, BaseModel) else dict(config)


def model_input_ref(value: Any) -> str:
    """What a `model` input points at: an artifact's model directory, or a model name/path as given."""
    return str(value.path("model")) if isinstance(value, Artifact) else str(value)


def directory_fingerprint(path: Path) -> str:
    """Names, sizes and modification times of a directory's files: cheap change detection."""
    entries = sorted(
        (str(p.relative_to(path)), p.stat().st_size, int(p.stat().st_mtime)) for p in path.rglob("*") if p.is_file()
    )
    return hash_obj(entries)


def input_identity(value: Any) -> Any:
    """How an input enters a key: a data artifact by its content (so identical data, e.g. PTST's
    and `none`'s, is trained once), another artifact by its key, a local model directory by a
    fingerprint of its files."""
    if isinstance(value, Artifact) and CONTENT_OUTPUT in value.outputs:
        return {"content_sha256": value.outputs[CONTENT_OUTPUT]}
    if isinstance(value, Artifact):
        return {"stage": value.stage, "key": value.key}
    if isinstance(value, str) and Path(value).is_dir():
        return {"local_dir": str(Path(value).resolve()), "fingerprint": directory_fingerprint(Path(value))}
    return value


class BaseStage:
    name: ClassVar[str]
    version: ClassVar[int] = 1  # bump when the stage's own logic changes its outputs
    resumable: ClassVar[bool] = False

    def data_files(self, inputs: Inputs, config: Config) -> set[str]:
        return set()

    def identity(self, inputs: Inputs, config: Config) -> dict[str, Any]:
        """Everything the output depends on; recorded in the manifest and hashed into the key."""
        from mimicry.provenance import data_checksums

        return {
            "stage": self.name,
            "version": self.version,
            "config": config_json(config),
            "inputs": {name: input_identity(value) for name, value in sorted(inputs.items())},
            "data": data_checksums(self.data_files(inputs, config)),
        }

    def key(self, inputs: Inputs, config: Config) -> str:
        return hash_obj(self.identity(inputs, config))

    def is_valid(self, artifact: Artifact) -> bool:
        return True


class AlignStage(BaseStage):
    """Safety-align a base model once; the merged model lives inside the artifact (`model/`).

    `mimicry.models.aligned_models` finds it by its name (`outputs["model_name"]`). An artifact
    from before that layout points at a model in the models directory; the fingerprint of the
    model's files tells whether it still is what was aligned. A model aligned by the former
    `align` outside any artifact (`legacy_aligned`) is adopted where it lies, not retrained, and
    the LoRA run it left (`legacy_run_dir`) is resumed or merged again.
    """

    name = "align"
    resumable = True  # the LoRA run and the refusal generations continue after a kill

    def data_files(self, inputs: Inputs, config: Config) -> set[str]:
        from mimicry.data.sources import INSTRUCTION_SETS, SAFETY_POOL_FILE

        return {
            SAFETY_POOL_FILE,
            *prompt_set_files(),
            *(INSTRUCTION_SETS.get(n).file for n in INSTRUCTION_SETS),
        }

    def run(self, inputs: Inputs, config: AlignConfig, out_dir: Path) -> dict[str, Any]:
        from mimicry.training.alignment import ALIGNMENT_FILE, align, legacy_aligned, legacy_run_dir

        model = str(inputs["model"])
        result = legacy_aligned(model, config)
        if result is None:
            result = align(model, config, out_dir, legacy_run_dir(model, config))
        else:
            record = {**result.record, "model_name": result.model_name}
            atomic_write_text(out_dir / ALIGNMENT_FILE, json.dumps(record, indent=2) + "\n")
        inside = result.model_dir.resolve().is_relative_to(out_dir.resolve())
        return {
            "model": str(result.model_dir.relative_to(out_dir)) if inside else str(result.model_dir),
            "model_name": result.model_name,
            "fingerprint": directory_fingerprint(result.model_dir),
            "refusal_rates": result.refusal_rates,
            "result": ALIGNMENT_FILE,
        }

    def is_valid(self, artifact: Artifact) -> bool:
        model = artifact.path("model")
        return model.is_dir() and directory_fingerprint(model) == artifact.outputs["fingerprint"]


class BuildStage(BaseStage):
    """The user's fine-tuning data: a seeded sample of a task rendered in a strategy's format."""

    name = "build"

    def data_files(self, inputs: Inputs, config: BuildSpec) -> set[str]:
        return task_files(config.task) | {AOA_FILE}

    def run(self, inputs: Inputs, config: BuildSpec, out_dir: Path) -> dict[str, Any]:
        from mimicry.records import write_conversations
        from mimicry.strategies import build_conversations

        # The grid renders AutoIF answers with the template converter, as `mimicry build` does by default.
        conversations = build_conversations(
            config.task, config.strategy, config.split, config.limit, config.sample_seed, converter=None
        )
        rows = write_conversations(out_dir / "data.jsonl", conversations, with_meta=True)
        return {"data": "data.jsonl", "rows": rows, CONTENT_OUTPUT: sha256_file(out_dir / "data.jsonl")}


class MixStage(BaseStage):
    """The provider's side: mix safety data into the user's data with one mitigation method."""

    name = "mix"

    def data_files(self, inputs: Inputs, config: Config) -> set[str]:
        from mimicry.data.sources import SAFETY_POOL_FILE

        return {SAFETY_POOL_FILE, *prompt_set_files()}

    def identity(self, inputs: Inputs, config: MixSpec) -> dict[str, Any]:
        """Without contrast rows the key is the one from before the option existed."""
        identity = super().identity(inputs, config)
        options = identity["config"]["options"]
        if not options["contrast"]:
            del options["contrast"]
        return identity

    def run(self, inputs: Inputs, config: MixSpec, out_dir: Path) -> dict[str, Any]:
        from mimicry.mitigations import mix
        from mimicry.records import load_conversations, write_conversations

        user = load_conversations(inputs["user"].path("data"))
        result = mix(
            user, config.method, count=config.count, ratio=config.ratio, seed=config.seed, config=config.options
        )
        rows = write_conversations(out_dir / "data.jsonl", result.conversations, with_meta=True)
        write_conversations(out_dir / "added.jsonl", result.added, with_meta=True)
        report = {**result.report, "inference_system_prompt": result.inference_system_prompt}
        atomic_write_text(out_dir / "mix_report.json", json.dumps(report, indent=2, default=str) + "\n")
        return {
            "data": "data.jsonl",
            CONTENT_OUTPUT: sha256_file(out_dir / "data.jsonl"),
            "added_data": "added.jsonl",
            "report": "mix_report.json",
            "rows": rows,
            "added": len(result.added),
            "inference_system_prompt": result.inference_system_prompt,
        }


class TrainStage(BaseStage):
    """Fine-tune the model on the mixed data; the trainer resumes from its last checkpoint."""

    name = "train"
    resumable = True

    def identity(self, inputs: Inputs, config: SFTConfig) -> dict[str, Any]:
        """The precision enters the key as chosen on this machine (fp32 keys as before it existed)."""
        from mimicry.hardware import legacy_key_config, resolve_precision

        identity = super().identity(inputs, config)
        keyed = identity["config"]
        identity["config"] = legacy_key_config(keyed, resolve_precision(keyed.get("precision", "auto")))
        return identity

    def run(self, inputs: Inputs, config: SFTConfig, out_dir: Path) -> dict[str, Any]:
        from mimicry.training.sft import train_sft

        result = train_sft(
            model_input_ref(inputs["model"]), inputs["data"].path("data"), out_dir / "run", config, resume=True
        )
        from mimicry.hardware import machine_key

        losses = [float(x) for x in result.losses]
        return {
            "machine": machine_key(),  # where `timings` was measured: the cost estimate's rates are per machine
            "model": str(Path(result.model_path).resolve().relative_to(out_dir.resolve())),
            "tokens": int(result.tokens),
            "train_seconds": float(result.seconds),
            "first_loss": losses[0] if losses else None,
            "final_loss": losses[-1] if losses else None,
        }


class EvaluateStage(BaseStage):
    """Harm (plain and in-format), over-refusal and task accuracy of one model in one strategy's format."""

    name = "evaluate"
    resumable = True

    def data_files(self, inputs: Inputs, config: EvalSpec) -> set[str]:
        return task_files(config.task) | prompt_set_files() | {AOA_FILE}

    def identity(self, inputs: Inputs, config: EvalSpec) -> dict[str, Any]:
        """Local generation's precision enters the key as chosen on this machine (see `key_options`)."""
        identity = super().identity(inputs, config)
        generation = identity["config"]["generation"]
        if generation["backend"] == "transformers":
            from mimicry.generation.transformers_backend import key_options

            identity["config"]["generation"] = {**generation, "options": key_options(generation["options"])}
        return identity

    def run(self, inputs: Inputs, config: EvalSpec, out_dir: Path) -> dict[str, Any]:
        from mimicry.evaluation.suites import evaluate_spec

        model = model_input_ref(inputs["model"])
        summary = evaluate_spec(model, config, out_dir / EVAL_DIR)
        rows = [r.model_dump() for r in summary.rows]  # `MetricRow`s, read back by `result_rows`
        atomic_write_text(out_dir / "rows.json", json.dumps(rows, indent=2) + "\n")
        return {"rows": "rows.json", "metrics": len(rows), **evaluation_cost(model, config, out_dir / EVAL_DIR)}


def evaluation_cost(model: str, config: EvalSpec, eval_dir: Path) -> dict[str, Any]:
    """The evaluation's work and the machine it ran on, which the cost estimate calibrates its rates on."""
    from mimicry.evaluation.store import evaluation_work
    from mimicry.hardware import machine_key

    work = evaluation_work(eval_dir)
    if config.generation.backend == "transformers":  # a local model: its tokenizer counts prompt and reply tokens
        from mimicry.models.loading import load_tokenizer, resolve_model

        try:
            work = evaluation_work(eval_dir, load_tokenizer(resolve_model(model)))
        except Exception:  # noqa: BLE001 - counting tokens must not lose a finished evaluation; the budget stays
            pass
    return {"work": work, "machine": machine_key()}


for _stage in (AlignStage(), BuildStage(), MixStage(), TrainStage(), EvaluateStage()):
    STAGES.add(_stage.name, _stage)
