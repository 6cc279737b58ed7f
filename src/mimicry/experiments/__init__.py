"""Experiments: declarative grids, content-addressed cached stages, the runner, results and report.

Importing this package is cheap; the stages import the heavy libraries when they run.
"""

from mimicry.artifacts import Artifact, ArtifactStore
from mimicry.experiments.grid import Cell, GridConfig, expand, load_grid
from mimicry.experiments.runner import Runner, RunOutcome, run_grid
from mimicry.experiments.stages import STAGES, Stage

__all__ = [
    "STAGES",
    "Artifact",
    "ArtifactStore",
    "Cell",
    "GridConfig",
    "RunOutcome",
    "Runner",
    "Stage",
    "expand",
    "load_grid",
    "run_grid",
]
