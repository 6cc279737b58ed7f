"""A rich progress bar for the HF Trainer: step, loss and training tokens per second."""

from __future__ import annotations

import time
from typing import Any

from transformers import TrainerCallback

from mimicry.console import info


class RichProgressCallback(TrainerCallback):
    """Replaces the Trainer's tqdm bar; tokens/s counts non-padding tokens seen in this session."""

    def __init__(self) -> None:
        self._progress: Any = None
        self._task: Any = None
        self._started = 0.0
        self._tokens_at_start = 0
        self._loss = float("nan")

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        from mimicry.console import err

        self._progress = Progress(
            TextColumn("[bold]training"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[speed]} tok/s"),
            TimeRemainingColumn(),
            console=err,
            transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task(
            "train", total=state.max_steps, completed=state.global_step, loss="-", speed="-"
        )
        self._started = time.perf_counter()
        self._tokens_at_start = int(state.num_input_tokens_seen)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        elapsed = max(time.perf_counter() - self._started, 1e-9)
        speed = (int(state.num_input_tokens_seen) - self._tokens_at_start) / elapsed
        self._progress.update(self._task, completed=state.global_step, speed=f"{speed:,.0f}")

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kw: Any) -> None:
        if logs and "loss" in logs:
            self._progress.update(self._task, loss=f"{logs['loss']:.4f}")
            if not self._progress.console.is_terminal:
                # A redirected run (a log file) gets a line per logging step instead of a live bar.
                task = self._progress.tasks[0]
                info(f"step {state.global_step}/{state.max_steps} loss {logs['loss']:.4f} {task.fields['speed']} tok/s")

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._progress.stop()
