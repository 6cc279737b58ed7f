"""`mimicry train` and `mimicry align`: options reach the config; bad input fails cleanly."""

from __future__ import annotations

import json
from pathlib import Path

from mimicry.cli import main


def test_train_rejects_an_unknown_config_key_naming_the_nearest(tmp_path, capsys):
    config = tmp_path / "sft.yaml"
    config.write_text("learning_rat: 0.001\n")
    data = tmp_path / "d.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n')
    code = main(["train", "--model", "x", "--data", str(data), "--out", str(tmp_path / "o"), "--config", str(config)])
    assert code == 2
    assert "Did you mean 'learning_rate'?" in capsys.readouterr().err


def test_align_rejects_an_unknown_config_key(tmp_path, capsys):
    config = tmp_path / "align.yaml"
    config.write_text("safety_pair: 10\n")
    assert main(["align", "--config", str(config)]) == 2
    assert "Did you mean 'safety_pairs'?" in capsys.readouterr().err


def test_train_command_trains_a_tiny_model(tmp_path, capsys, make_tiny_llama, tiny_tokenizer):
    model_dir = make_tiny_llama(tiny_tokenizer, tmp_path / "tiny", layers=1, max_positions=128)
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Say {i}.", "completion": f"{i}."}) + "\n" for i in range(6)))
    config = tmp_path / "sft.yaml"
    config.write_text("batch_size: 3\nmax_length: 48\nsave_steps: 100\n")
    out = tmp_path / "run"
    code = main(
        [
            "train",
            "--model",
            str(model_dir),
            "--data",
            str(data),
            "--out",
            str(out),
            "--config",
            str(config),
            "--method",
            "full",
            "--max-steps",
            "2",
        ]
    )
    assert code == 0, capsys.readouterr().err
    card = json.loads((out / "run_card.json").read_text())
    assert card["config"]["method"] == "full" and card["config"]["max_steps"] == 2
    assert card["config"]["batch_size"] == 3 and card["steps"] == 2
    assert Path(out / "model" / "model.safetensors").is_file()
    captured = capsys.readouterr()
    assert "trained 2 steps" in captured.out
    assert "--data is deprecated" in captured.err and "--method is deprecated" in captured.err


def test_train_speaks_the_cli_vocabulary_and_eval_takes_its_run_dir(tmp_path, capsys, make_tiny_llama, tiny_tokenizer):
    from mimicry.models import resolve_model

    model_dir = make_tiny_llama(tiny_tokenizer, tmp_path / "tiny", layers=1, max_positions=128)
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Say {i}.", "completion": f"{i}."}) + "\n" for i in range(4)))
    out = tmp_path / "run"
    args = [str(data), "--model", str(model_dir), "--out-dir", str(out), "--adapter", "lora", "--max-steps", "1"]
    assert main(["train", *args, "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["method"] == "lora" and "deprecated" not in captured.err
    assert resolve_model(out) == str(out / "adapter")
