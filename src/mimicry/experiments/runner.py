"""Run a grid: every cell is a chain of cached stages; the run directory indexes the results.

The run directory holds no experiment state in folder names: `index.json` maps each cell to
the artifact keys behind it, `results.sqlite` holds one row per cell x metric, `grid.json` the
validated config and `provenance.json` the data checksums, package versions and git sha.
Both tables are rewritten after every cell, so a killed run leaves a consistent partial table,
and a rerun reuses every finished artifact.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from mimicry.artifacts import Artifact, ArtifactStore
from mimicry.errors import unknown_name
from mimicry.evaluation.suites import EvalSpec
from mimicry.experiments.estimate import GridEstimate, estimate_grid, write_timings
from mimicry.experiments.grid import Cell, GridConfig, ModelEntry, check_names, expand
from mimicry.experiments.results import KEY_COLUMNS, RESULTS_FILE, ResultRow, write_results
from mimicry.experiments.stages import STAGES, Inputs, input_identity, materialize
from mimicry.mitigations import MixSpec
from mimicry.provenance import data_checksums, git_sha, package_versions
from mimicry.records import atomic_write_text
from mimicry.strategies import BuildSpec
from mimicry.training.sft import SFTConfig

INDEX_FILE = "index.json"
TIMINGS_FILE = "timings.json"  # measured seconds of the stages a run computed, beside their estimate


@dataclass
class RunOutcome:
    """What a run did: which stages it computed and which it found finished."""

    run_dir: Path
    cells: int
    computed: Counter[str] = field(default_factory=Counter)
    reused: Counter[str] = field(default_factory=Counter)
    results: int = 0
    seconds: float = 0.0
    estimate: GridEstimate | None = None
    timings: list[dict[str, Any]] = field(default_factory=list)  # computed stages: cell, stage, seconds


class Runner:
    def __init__(
        self,
        grid: GridConfig,
        run_dir: Path,
        *,
        store: ArtifactStore | None = None,
        skip_align: bool = False,
        show_progress: bool = True,
    ) -> None:
        from mimicry.paths import artifacts_dir

        if skip_align:  # fine-tune the models as named; results then name them as such, too
            grid = grid.model_copy(update={"models": [m.model_copy(update={"align": False}) for m in grid.models]})
        self.grid = grid
        self.run_dir = Path(run_dir)
        self.store = store or ArtifactStore(artifacts_dir())
        self.show_progress = show_progress
        self.outcome = RunOutcome(self.run_dir, 0)
        self._on_stage: Any = None
        self._cell: str | None = None  # the cell whose stages are timed now (real runs only)
        self._estimating = False
        self._made_for_estimate: set[tuple[str, str]] = set()  # (stage, key) computed while estimating

    # -- one stage -------------------------------------------------------------------------------

    def materialize(self, stage_name: str, inputs: Inputs, config: BaseModel) -> Artifact:
        """The stage's artifact for these inputs and spec: found finished, or computed now."""
        if self._on_stage:
            self._on_stage(stage_name)
        artifact, reused = materialize(self.store, STAGES.get(stage_name), inputs, config)
        if self._estimating:  # counted when the run itself gets to it
            if not reused:
                self._made_for_estimate.add((stage_name, artifact.key))
            return artifact
        if reused and (stage_name, artifact.key) in self._made_for_estimate:
            reused = False  # built and mixed by this run's own estimate, moments ago
            self._made_for_estimate.discard((stage_name, artifact.key))
        (self.outcome.reused if reused else self.outcome.computed)[stage_name] += 1
        if not reused and self._cell is not None:
            seconds = artifact.manifest.get("timings", {}).get("seconds")
            self.outcome.timings.append({"cell": self._cell, "stage": stage_name, "seconds": seconds})
        return artifact

    # -- the specs of a cell's stages -------------------------------------------------------------

    def build_spec(self, cell: Cell) -> BuildSpec:
        data = self.grid.data
        return BuildSpec(
            task=cell.task, strategy=cell.strategy, split=data.split, limit=data.limit, sample_seed=data.sample_seed
        )

    def mix_spec(self, cell: Cell) -> MixSpec:
        return MixSpec(
            method=cell.mitigation,
            amount_kind=cell.amount_kind,
            amount=cell.amount,
            seed=cell.seed,
            options=dict(cell.options),
        )

    def train_spec(self, cell: Cell) -> SFTConfig:
        return self.grid.training.model_copy(update={"seed": cell.seed})

    def eval_spec(self, cell: Cell, system_prompt: str | None) -> EvalSpec:
        """What the evaluate stage asks; `system_prompt` is the mix's inference-time prompt (PTST, BackdoorAlign)."""
        return EvalSpec(
            task=cell.task,
            strategy=cell.strategy,
            suites=self.grid.suites,
            inference_system_prompt=system_prompt,
            evaluation=self.grid.evaluation,
            generation=self.grid.generation,
        )

    # -- the chain of a cell ---------------------------------------------------------------------

    def base_model(self, model: ModelEntry) -> Artifact | str:
        """The model a cell fine-tunes: the aligned model (a cached stage) or the model as named."""
        if model.align:
            return self.materialize("align", {"model": model.name}, self.grid.alignment)
        return model.name

    def data_artifacts(self, cell: Cell) -> tuple[Artifact, Artifact]:
        built = self.materialize("build", {}, self.build_spec(cell))
        mixed = self.materialize("mix", {"user": built}, self.mix_spec(cell))
        return built, mixed

    def run_cell(self, cell: Cell) -> dict[str, Artifact]:
        artifacts: dict[str, Artifact] = {}
        model = self.base_model(cell.model)
        if isinstance(model, Artifact):
            artifacts["align"] = model
        system_prompt = None
        if cell.fine_tuned:
            artifacts["build"], artifacts["mix"] = self.data_artifacts(cell)
            model = artifacts["train"] = self.materialize(
                "train", {"model": model, "data": artifacts["mix"]}, self.train_spec(cell)
            )
            system_prompt = artifacts["mix"].outputs.get("inference_system_prompt")
        artifacts["evaluate"] = self.materialize("evaluate", {"model": model}, self.eval_spec(cell, system_prompt))
        return artifacts

    def stages_of(self, cell: Cell) -> int:
        return (1 if cell.model.align else 0) + (4 if cell.fine_tuned else 1)

    # -- the whole grid --------------------------------------------------------------------------

    def run(self) -> RunOutcome:
        watch = time.time()
        check_names(self.grid)
        cells = expand(self.grid)
        self.outcome.cells = len(cells)
        self.write_run_files()
        self.outcome.estimate = self.estimate(cells)
        index: list[dict[str, Any]] = []
        rows: list[ResultRow] = []
        with self.progress() as progress:
            overall = progress.add_task("grid", total=sum(self.stages_of(c) for c in cells))
            current = progress.add_task("cell", total=1)
            for number, cell in enumerate(cells, start=1):
                progress.update(
                    current,
                    description=f"cell {number}/{len(cells)}: {cell.describe()}",
                    total=self.stages_of(cell),
                    completed=0,
                )

                def on_stage(stage: str, cell_number: int = number, this: Cell = cell) -> None:
                    progress.update(
                        current,
                        description=f"cell {cell_number}/{len(cells)}: {this.describe()} [bold]{stage}[/bold]",
                    )

                self._on_stage, self._cell = on_stage, cell.id
                artifacts = self.run_cell(cell)
                progress.update(current, completed=self.stages_of(cell))
                progress.advance(overall, self.stages_of(cell))
                keys = {stage: a.key for stage, a in artifacts.items()}
                index.append(
                    {"cell": cell.id, **cell.key.model_dump(), "fine_tuned": cell.fine_tuned, "artifacts": keys}
                )
                rows.extend(result_rows(cell, artifacts))
                self.write_index(index)
                self.outcome.results = write_results(self.run_dir / RESULTS_FILE, rows)
                write_timings(self.run_dir / TIMINGS_FILE, self.outcome.estimate, self.outcome.timings)
        self._on_stage, self._cell = None, None
        self.outcome.seconds = round(time.time() - watch, 3)
        return self.outcome

    def dry_run(self) -> RunOutcome:
        """Check every cell without training: names, settings, model references, data and mixing."""
        watch = time.time()
        check_names(self.grid)
        for model in self.grid.models:
            check_model_reference(model.name)
        cells = expand(self.grid)
        self.outcome.cells = len(cells)
        data_cells = [c for c in cells if c.fine_tuned]
        with self.progress() as progress:
            task = progress.add_task("dry run: build and mix", total=len(data_cells))
            for cell in data_cells:
                progress.update(task, description=f"dry run: {cell.describe()}")
                self.data_artifacts(cell)
                progress.advance(task)
        self.outcome.estimate = self.estimate(cells)
        self.outcome.seconds = round(time.time() - watch, 3)
        return self.outcome

    def estimate(self, cells: list[Cell]) -> GridEstimate:
        """The grid's cost on this machine; what it builds and mixes counts when the run itself gets to it."""
        self._estimating = True
        try:
            return estimate_grid(self, cells)
        finally:
            self._estimating = False

    def progress(self) -> Any:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        from mimicry.console import err

        return Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=err,
            disable=not self.show_progress,
        )

    def write_run_files(self) -> None:
        from mimicry.data.root import data_root

        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.run_dir / "grid.json", self.grid.model_dump_json(indent=2) + "\n")
        provenance = {
            "grid": self.grid.name,
            "config_hash": self.grid.config_hash(),
            "models": [m.model_dump() for m in self.grid.models],
            "model_identities": {m.name: input_identity(m.name) for m in self.grid.models},
            "data_root": str(data_root().path),
            "data_checksums": data_checksums(self.used_data_files()),
            "package_versions": package_versions(),
            "git_sha": git_sha(),
            "artifacts_root": str(self.store.root),
        }
        atomic_write_text(self.run_dir / "provenance.json", json.dumps(provenance, indent=2) + "\n")

    def used_data_files(self) -> set[str]:
        """The bundle files the grid's stages read, for provenance: each stage's spec asked once per task."""
        files: set[str] = set()
        asked: set[tuple[str, str]] = set()
        for cell in expand(self.grid):
            specs: dict[str, BaseModel] = {"evaluate": self.eval_spec(cell, None)}
            if cell.model.align:
                specs["align"] = self.grid.alignment
            if cell.fine_tuned:
                specs.update(build=self.build_spec(cell), mix=self.mix_spec(cell), train=self.train_spec(cell))
            for stage, spec in specs.items():
                if (stage, cell.task) not in asked:
                    asked.add((stage, cell.task))
                    files |= STAGES.get(stage).data_files({}, spec)
        return files

    def write_index(self, cells: list[dict[str, Any]]) -> None:
        index = {
            "grid": self.grid.name,
            "config_hash": self.grid.config_hash(),
            "artifacts_root": str(self.store.root),
            "cells": cells,
        }
        atomic_write_text(self.run_dir / INDEX_FILE, json.dumps(index, indent=2) + "\n")


def result_rows(cell: Cell, artifacts: dict[str, Artifact]) -> list[ResultRow]:
    """The cell's rows: the evaluate artifact's `MetricRow`s with the cell and its artifact keys."""
    metrics = json.loads(artifacts["evaluate"].path("rows").read_text(encoding="utf-8"))
    keys = {KEY_COLUMNS[stage]: a.key for stage, a in artifacts.items()}
    context = {"cell_id": cell.id, "cell": cell.key, "fine_tuned": cell.fine_tuned, **keys}
    return [ResultRow.model_validate({**m, **context}) for m in metrics]


def check_model_reference(name: str) -> None:
    """A model must be a registry name, an existing local directory or a hub id (org/name)."""
    from mimicry.models import MODELS

    if name in MODELS or Path(name).is_dir():
        return
    if name.count("/") == 1 and not name.startswith((".", "/")) and all(name.split("/")):
        return
    raise unknown_name("model (not a registry name, local directory or hub id org/name)", name, MODELS)


def run_grid(
    grid: GridConfig,
    run_dir: Path,
    *,
    dry_run: bool = False,
    skip_align: bool = False,
    store: ArtifactStore | None = None,
    show_progress: bool = True,
) -> RunOutcome:
    runner = Runner(grid, run_dir, store=store, skip_align=skip_align, show_progress=show_progress)
    if dry_run:
        return runner.dry_run()
    return runner.run()
