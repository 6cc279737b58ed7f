"""Supervised fine-tuning, full or LoRA, with loss on assistant tokens only.

Built on the HF `Trainer` (checkpoints, resume, bf16 autocast, gradient checkpointing, seeds)
with our own tokenisation (`mimicry.training.tokenize`), because TRL's assistant-only loss needs
`{% generation %}` markers that common chat templates lack. A run directory holds:

- `checkpoints/` while training (removed once the final model is saved), so a killed run resumes;
- `adapter/` (LoRA: a PEFT adapter dir whose base model is resolvable) or `model/` (full weights);
- `run_card.json`: config, data checksum, base model, package versions, git sha, tokens, seconds.

A finished run with the same base model, data and config is not trained again.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from mimicry.config import StrictModel
from mimicry.console import info, warn
from mimicry.errors import MimicryError
from mimicry.hardware import Precision, legacy_key_config, precision_record, resolve_precision
from mimicry.hashing import canonical_json, hash_obj
from mimicry.provenance import git_sha, package_versions
from mimicry.records import Conversation, atomic_write_text, load_conversations

if TYPE_CHECKING:
    from transformers import TrainerCallback

RUN_CARD = "run_card.json"
RUN_KEY = "run_key.txt"


class SFTConfig(StrictModel):
    method: Literal["lora", "full"] = "lora"
    lora_r: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    lora_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: str | list[str] = "all-linear"
    learning_rate: float = Field(2e-4, gt=0)
    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, ge=1)
    batch_size: int = Field(8, ge=1)
    grad_accum: int = Field(1, ge=1)
    max_length: int = Field(512, ge=8)
    overlong: Literal["truncate", "reject"] = "truncate"
    precision: Precision = "auto"  # auto: bf16 autocast where this machine runs bf16 measurably faster
    gradient_checkpointing: bool = False
    seed: int = 0
    save_steps: int = Field(50, ge=1)
    logging_steps: int = Field(5, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _legacy_bf16_flag(cls, data: Any) -> Any:
        """Configs written before `precision`: `bf16: false` is `precision: fp32`, `bf16: true` is `auto`."""
        if isinstance(data, dict) and "bf16" in data:
            data = dict(data)
            if not data.pop("bf16"):
                data["precision"] = "fp32"
        return data


@dataclass
class TrainResult:
    out_dir: Path
    model_path: Path
    losses: list[float]
    tokens: int
    seconds: float
    run_card: dict[str, Any]


def _base_model_reference(model: str) -> str:
    """How an adapter names its base: the registry/hub name, or the absolute path of a local dir."""
    from mimicry.models import MODELS

    path = Path(model).expanduser()
    return str(path.resolve()) if model not in MODELS and path.exists() else model


def load_result(out_dir: Path) -> TrainResult | None:
    """The finished run in `out_dir`, or None when there is none."""
    import json

    card_path = out_dir / RUN_CARD
    if not card_path.is_file():
        return None
    card = json.loads(card_path.read_text(encoding="utf-8"))
    model_path = out_dir / card["model_path"]
    if not model_path.is_dir():
        return None
    return TrainResult(out_dir, model_path, card["losses"], card["tokens"], card["seconds"], card)


def train_sft(
    model: str,
    data: Path | Sequence[Conversation],
    out_dir: Path,
    config: SFTConfig,
    *,
    resume: bool = True,
    callbacks: Sequence[TrainerCallback] = (),
    eval_data: Sequence[Conversation] | None = None,
) -> TrainResult:
    """Fine-tune `model` (registry name or path) on chat data; resumable, cached by inputs+config.

    `callbacks` are extra `TrainerCallback`s (e.g. to stop early); they do not change the result key.
    `eval_data` (held-out conversations) is scored at every checkpoint (`eval_loss` in the Trainer's
    logs) and once at the end (`valid_loss` in the run card); it enters the key only when given.
    """
    import torch
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments, set_seed
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    from mimicry.models import load_causal_lm, load_tokenizer, resolve_model
    from mimicry.models.loading import remember_base
    from mimicry.training.progress import RichProgressCallback
    from mimicry.training.tokenize import tokenize_conversations

    out_dir = Path(out_dir)
    conversations = load_conversations(data) if isinstance(data, (str, Path)) else list(data)
    if not conversations:
        raise MimicryError("the training data is empty: give at least one conversation with an assistant turn")

    tokenizer = load_tokenizer(resolve_model(model))
    dataset = tokenize_conversations(conversations, tokenizer, config.max_length, config.overlong)
    if dataset.truncated or dataset.rejected or dataset.without_targets:
        warn(
            f"{len(conversations)} conversations: {dataset.truncated} truncated to "
            f"{config.max_length} tokens, "
            f"{dataset.rejected} rejected as longer than {config.max_length} tokens, "
            f"{dataset.without_targets} dropped without an assistant token"
        )

    eval_dataset = None
    if eval_data:
        eval_dataset = tokenize_conversations(list(eval_data), tokenizer, config.max_length, config.overlong)

    device = "cuda" if torch.cuda.is_available() else "cpu"
    precision = resolve_precision(config.precision, device)
    key = hash_obj(
        {
            "model": _base_model_reference(model),
            "data": dataset.sha256,
            "config": legacy_key_config(config.model_dump(mode="json"), precision),
            **({"eval_data": eval_dataset.sha256} if eval_dataset is not None else {}),
        }
    )
    finished = load_result(out_dir)
    if finished is not None and finished.run_card.get("key") == key:
        info(f"reusing the finished run in {out_dir}")
        return finished
    key_path = out_dir / RUN_KEY
    if key_path.is_file() and key_path.read_text().strip() != key:
        raise MimicryError(
            f"{out_dir} holds a run with a different model, data or config; choose another output "
            "directory or delete that one"
        )
    atomic_write_text(key_path, key)

    base, _ = load_causal_lm(model, dtype="float32")
    set_seed(config.seed)
    info(f"training in {precision} ({'bf16 autocast' if precision == 'bf16' else 'full fp32'})")
    if config.method == "lora":
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=config.target_modules,
            task_type="CAUSAL_LM",
        )
        if config.gradient_checkpointing:
            base.enable_input_require_grads()
        trainee = get_peft_model(base, lora)
    else:
        trainee = base

    checkpoints = out_dir / "checkpoints"
    args = TrainingArguments(
        output_dir=str(checkpoints),
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.learning_rate,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        bf16=precision == "bf16",
        activation_checkpointing=config.gradient_checkpointing,
        seed=config.seed,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=2,
        logging_steps=config.logging_steps,
        include_num_input_tokens_seen="non_padding",
        use_cpu=device == "cpu",
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        per_device_eval_batch_size=config.batch_size,
        eval_strategy="steps" if eval_dataset is not None else "no",
        eval_steps=config.save_steps,
    )
    trainer = Trainer(
        model=trainee,
        args=args,
        train_dataset=dataset,
        eval_dataset=eval_dataset,
        data_collator=DataCollatorForSeq2Seq(tokenizer, padding="longest", label_pad_token_id=-100),
        callbacks=[RichProgressCallback(), *callbacks],
    )
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)

    last = _last_checkpoint(checkpoints) if resume else None
    if last is not None:
        info(f"resuming from {last}")
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(last) if last else None)
    seconds = time.perf_counter() - started
    state = trainer.state
    if state.global_step < state.max_steps:
        # Stopped early (a callback or an interrupt): the checkpoints stay for a resume.
        tokens = int(state.num_input_tokens_seen)
        return TrainResult(out_dir, checkpoints, _losses(state), tokens, seconds, {})

    valid_loss = None
    if eval_dataset is not None:  # the last step's evaluation when it had one, else one now
        done = [e["eval_loss"] for e in state.log_history if "eval_loss" in e and e.get("step") == state.global_step]
        valid_loss = float(done[-1] if done else trainer.evaluate()["eval_loss"])
    model_path = out_dir / ("adapter" if config.method == "lora" else "model")
    if config.method == "lora":
        base_reference = _base_model_reference(model)
        trainee.peft_config["default"].base_model_name_or_path = base_reference
        if Path(base_reference).is_absolute():
            remember_base(base_reference)
    trainee.save_pretrained(str(model_path), safe_serialization=True)
    tokenizer.save_pretrained(str(model_path))
    card = {
        "key": key,
        "base_model": _base_model_reference(model),
        "model_path": model_path.name,
        "method": config.method,
        "config": config.model_dump(mode="json"),
        "data": {
            "conversations": len(conversations),
            "rows": len(dataset),
            "sha256": dataset.sha256,
            "truncated": dataset.truncated,
            "rejected": dataset.rejected,
            "without_targets": dataset.without_targets,
            "tokens_per_epoch": dataset.tokens,
            "target_tokens_per_epoch": dataset.target_tokens,
        },
        "tokens": int(state.num_input_tokens_seen),
        "steps": state.global_step,
        "seconds": round(seconds, 2),
        "resumed_from": last.name if last else None,
        "bf16": precision == "bf16",
        "precision": precision_record(precision, device),
        "losses": _losses(state),
        **({"valid_loss": valid_loss, "eval_conversations": len(eval_data or [])} if valid_loss is not None else {}),
        "packages": package_versions(),
        "git_sha": git_sha(),
    }
    atomic_write_text(out_dir / RUN_CARD, canonical_json(card))
    shutil.rmtree(checkpoints, ignore_errors=True)
    return TrainResult(out_dir, model_path, card["losses"], card["tokens"], seconds, card)


def _losses(state: Any) -> list[float]:
    return [float(entry["loss"]) for entry in state.log_history if "loss" in entry]


def _last_checkpoint(checkpoints: Path) -> Path | None:
    from transformers.trainer_utils import get_last_checkpoint

    return Path(found) if checkpoints.is_dir() and (found := get_last_checkpoint(str(checkpoints))) else None
