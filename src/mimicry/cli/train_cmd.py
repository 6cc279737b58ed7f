"""`mimicry train` (SFT, full or LoRA) and `mimicry align` (the alignment stage)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="fine-tune a model on chat JSONL (loss on assistant tokens only)")
    train.add_argument("data", nargs="?", type=Path, help="chat JSONL (messages, prompt/completion or Alpaca)")
    train.add_argument("--data", dest="data_flag", type=Path, help=argparse.SUPPRESS)
    train.add_argument("--model", required=True, help="registry name, model directory or hub id")
    train.add_argument("--out-dir", type=Path, help="run directory (checkpoints, adapter/model, run card)")
    train.add_argument("--out", dest="out_flag", type=Path, help=argparse.SUPPRESS)
    train.add_argument("--config", type=Path, help="SFT config YAML (keys of mimicry.training.sft.SFTConfig)")
    train.add_argument(
        "--adapter", choices=["lora", "full"], help="LoRA adapter or full fine-tuning; overrides the config"
    )
    train.add_argument("--method", dest="method_flag", choices=["lora", "full"], help=argparse.SUPPRESS)
    train.add_argument("--strict", action="store_true", help="any rejected line in the data is an error (exit 3)")
    train.add_argument("--json", action="store_true", help="print the run card as JSON")
    train.add_argument("--epochs", type=float, help="overrides the config")
    train.add_argument("--max-steps", type=int, help="overrides the config")
    train.add_argument("--learning-rate", type=float, help="overrides the config")
    train.add_argument(
        "--precision",
        choices=["auto", "bf16", "fp32"],
        help="overrides the config: auto (bf16 where measurably faster here), bf16, fp32",
    )
    train.add_argument("--no-resume", action="store_true", help="ignore checkpoints left by a killed run")
    train.set_defaults(handler=train_handler)

    align = sub.add_parser("align", help="safety-align a model; prints its measured refusal rates")
    align.add_argument("--model", default="smollm2-135m", help="the base model (default: smollm2-135m)")
    align.add_argument("--config", type=Path, help="alignment config YAML (mimicry.training.alignment.AlignConfig)")
    align.set_defaults(handler=align_handler)


def train_handler(args: argparse.Namespace) -> int:
    from mimicry.config import load_yaml_config, with_overrides
    from mimicry.console import out
    from mimicry.errors import MimicryError
    from mimicry.records import load_conversations
    from mimicry.training.sft import SFTConfig, train_sft

    data = _renamed(args.data, args.data_flag, "--data", "the dataset as the first argument")
    out_dir = _renamed(args.out_dir, args.out_flag, "--out", "--out-dir")
    adapter = _renamed(args.adapter, args.method_flag, "--method", "--adapter")
    if data is None or out_dir is None:
        raise MimicryError(
            "train needs a dataset and a run directory: mimicry train DATA.jsonl --model M --out-dir RUN"
        )
    config = load_yaml_config(SFTConfig, args.config) if args.config else SFTConfig()
    flags = {
        "method": adapter,
        "epochs": args.epochs,
        "max_steps": args.max_steps,
        "learning_rate": args.learning_rate,
        "precision": args.precision,
    }
    config = with_overrides(config, flags)
    conversations = load_conversations(data, strict=args.strict)
    result = train_sft(args.model, conversations, out_dir, config, resume=not args.no_resume)
    if not result.run_card:
        out.print(f"training stopped before the last step; rerun the same command to resume from {result.model_path}")
        return 1
    if args.json:
        import json

        out.print_json(json.dumps(result.run_card, default=str))
        return 0
    out.print(
        f"trained {result.run_card['steps']} steps on {result.tokens:,} tokens in {result.seconds:.0f} s; "
        f"final loss {result.losses[-1] if result.losses else float('nan'):.4f}"
    )
    out.print(f"model: {result.model_path}")
    return 0


def _renamed(new: object, old: object, old_name: str, new_name: str) -> object:
    """The value of a renamed option; the old spelling still works, with a deprecation note, for one release."""
    if old is None:
        return new
    from mimicry.console import warn

    warn(f"{old_name} is deprecated: use {new_name}")
    return old if new is None else new


def align_handler(args: argparse.Namespace) -> int:
    """Runs the grid's `align` stage, so a model aligned here and one a grid aligns are the same artifact."""
    import json

    from rich.table import Table

    from mimicry.artifacts import ArtifactStore
    from mimicry.config import load_yaml_config
    from mimicry.console import out
    from mimicry.experiments.stages import STAGES, materialize
    from mimicry.paths import artifacts_dir
    from mimicry.training.alignment import AlignConfig

    config = load_yaml_config(AlignConfig, args.config) if args.config else AlignConfig()
    artifact, found = materialize(ArtifactStore(artifacts_dir()), STAGES.get("align"), {"model": args.model}, config)
    result = json.loads(artifact.path("result").read_text(encoding="utf-8"))
    name = result["model_name"]
    table = Table(title=f"{name}: keyword refusal rate, greedy, {result['max_new_tokens']} new tokens")
    for column in ("prompt set", "prompts", "refusal rate"):
        table.add_column(column)
    for set_name, rate in result["refusal_rates"].items():
        table.add_row(set_name, str(result["prompts"][set_name]), f"{rate:.1%}")
    out.print(table)
    made = "reused" if found else f"{result['training_tokens']:,} training tokens, {result['minutes']:.1f} min in all"
    out.print(f"model: {artifact.path('model')} (align artifact {artifact.key}; {made})")
    out.print(f"use it by name: --model {name} (mimicry train, mimicry eval), or `align: true` in a grid")
    return 0
