"""`evaluate`: suites, records, resume after interruption, failing judges, bad input.

`ScriptedBackend` is a test double for the GenerationBackend protocol (a rule maps each prompt
to a reply) so the expected metrics can be computed independently; generation with a real
(tiny) model is covered in test_eval_tiny_model.py. Prompts and task rows come from the tiny
checked-in root (tests/assets), except for the judge validation set, built from hundreds of rows.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from pathlib import Path

import pytest
from pydantic import ValidationError

from mimicry.cli import main
from mimicry.errors import MimicryError
from mimicry.evaluation.refusal import is_refusal_reply as is_refusal
from mimicry.evaluation.store import RecordStore
from mimicry.evaluation.suites import EvalConfig, evaluate
from mimicry.generation.base import GenerationConfig
from mimicry.records import Message
from mimicry.strategies import get_strategy
from mimicry.tasks import load_task

REFUSAL = "I'm sorry, but I cannot help with that request."
COMPLIANCE = "Sure, here is how you do it: first gather the materials, then follow each step carefully."


def scripted_reply(messages: Sequence[Message]) -> str:
    """Refuse when the request's checksum is even: a fixed, prompt-dependent rule."""
    request = next(m.content for m in reversed(messages) if m.role == "user")
    return REFUSAL if zlib.crc32(request.encode()) % 2 == 0 else COMPLIANCE


class ScriptedBackend:
    model_id = "scripted"

    def __init__(self, rule=scripted_reply, fail_on_call: int | None = None) -> None:
        self.rule = rule
        self.calls = 0
        self.prompts: list[list[Message]] = []
        self.fail_on_call = fail_on_call

    def generate(self, prompts: Sequence[Sequence[Message]], config: GenerationConfig) -> list[str]:
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise KeyboardInterrupt  # the user pressing Ctrl-C mid-run
        self.prompts.extend(list(p) for p in prompts)
        return [self.rule(p) for p in prompts]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


SMALL = dict(limit=4, harm_sets=["harmful_instructions"], overrefusal_sets=["xstest_safe"], batch_size=3)


@pytest.mark.usefixtures("tiny_data_root")
def test_harm_and_overrefusal_rows_records_and_presentations(tmp_path: Path) -> None:
    backend = ScriptedBackend()
    summary = evaluate(backend, "harm,overrefusal", strategy="aoa", config=EvalConfig(**SMALL), out_dir=tmp_path)

    generations = read_jsonl(tmp_path / "generations.jsonl")
    assert len(generations) == 16  # 4 prompts x 2 presentations x 2 suites
    for g in generations:
        assert {"prompt", "presentation", "model", "config_hash", "response", "messages"} <= set(g)
    in_format = [g for g in generations if g["presentation"] == "in-format"]
    aoa = get_strategy("aoa")
    assert all(g["messages"] == [m.model_dump() for m in aoa.present(g["prompt"])] for g in in_format)
    plain = [g for g in generations if g["presentation"] == "plain"]
    assert all(g["messages"] == [{"role": "user", "content": g["prompt"]}] for g in plain)

    for presentation in ("plain", "in-format"):
        group = [g for g in generations if g["suite"] == "harm" and g["presentation"] == presentation]
        expected = sum(not is_refusal(g["response"]) for g in group) / len(group)
        row = summary.row("harm", "non_refusal_rate", "harmful_instructions", presentation, "keyword")
        assert row.value == pytest.approx(expected) and row.n == 4 and row.unparsed == 0
        assert row.ci_low <= row.value <= row.ci_high
        safe = [g for g in generations if g["suite"] == "overrefusal" and g["presentation"] == presentation]
        refusal = summary.row("overrefusal", "refusal_rate", "xstest_safe", presentation, "keyword")
        assert refusal.value == pytest.approx(sum(is_refusal(g["response"]) for g in safe) / 4)

    verdicts = read_jsonl(tmp_path / "verdicts.jsonl")
    assert len(verdicts) == 8 and {v["judge_id"] for v in verdicts} == {"keyword"}
    assert all({"prompt", "presentation", "model", "config_hash", "complied"} <= set(v) for v in verdicts)
    assert json.loads((tmp_path / "summary.json").read_text())["rows"]


@pytest.mark.usefixtures("tiny_data_root")
def test_in_format_is_skipped_when_the_strategy_adds_no_scaffold(tmp_path: Path) -> None:
    summary = evaluate(ScriptedBackend(), "harm", strategy="benign", config=EvalConfig(**SMALL), out_dir=tmp_path)
    assert {r.presentation for r in summary.rows} == {"plain"}


@pytest.mark.usefixtures("tiny_data_root")
def test_two_judges_give_an_agreement_row(tmp_path: Path) -> None:
    config = EvalConfig(**SMALL, judges=["keyword", "keyword:10"])
    summary = evaluate(ScriptedBackend(), "harm", config=config, out_dir=tmp_path)
    kappa = summary.row("harm", "kappa", "all", "all", "keyword vs keyword:10")
    assert kappa.n == 4 and -1.0 <= kappa.value <= 1.0


@pytest.mark.usefixtures("tiny_data_root")
def test_interrupted_run_resumes_without_regenerating(tmp_path: Path) -> None:
    config = EvalConfig(**{**SMALL, "batch_size": 2}, presentations=["plain"])
    with pytest.raises(KeyboardInterrupt):
        evaluate(ScriptedBackend(fail_on_call=2), "harm", config=config, out_dir=tmp_path)
    kept = read_jsonl(tmp_path / "generations.jsonl")
    assert len(kept) == 2  # the first batch survived the interruption

    resumed = ScriptedBackend()
    summary = evaluate(resumed, "harm", config=config, out_dir=tmp_path)
    assert len(resumed.prompts) == 2  # only the missing half was generated
    assert {g["prompt"] for g in kept}.isdisjoint({p[-1].content for p in resumed.prompts})
    assert len(read_jsonl(tmp_path / "generations.jsonl")) == 4
    assert summary.row("harm", "asr", "harmful_instructions", "plain", "keyword").n == 4

    again = ScriptedBackend()
    evaluate(again, "harm", config=config, out_dir=tmp_path)
    assert again.calls == 0


def test_a_half_written_last_line_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_text('{"key": "a", "v": 1}\n{"key": "b", "v"')
    store = RecordStore(path)
    assert len(store) == 1 and "a" in store
    store.append([{"key": "b", "v": 2}])
    assert [r["key"] for r in read_jsonl(path)] == ["a", "b"]


def test_a_file_holding_only_a_cut_off_line_is_emptied(tmp_path: Path) -> None:
    """The first write was cut off: nothing of it stays, so the next append starts a clean file."""
    path = tmp_path / "records.jsonl"
    path.write_text('{"key": "a", "v"')
    store = RecordStore(path)
    assert len(store) == 0 and path.stat().st_size == 0
    store.append([{"key": "a", "v": 1}])
    assert RecordStore(path).get("a") == {"key": "a", "v": 1}


class FailingJudgeBackend:
    model_id = "judge"

    def generate(self, prompts, config):  # noqa: ANN001
        raise ConnectionError("connection refused")


class ScoringJudgeBackend:
    model_id = "judge"

    def generate(self, prompts, config):  # noqa: ANN001
        return [
            "#thereason: gives steps\n#thescore: 5" if "Sure, here is" in p[-1].content else "#thescore: 1"
            for p in prompts
        ]


@pytest.mark.usefixtures("tiny_data_root")
def test_a_failing_judge_keeps_every_generation_and_a_rerun_only_judges(tmp_path: Path) -> None:
    config = EvalConfig(**SMALL, judges=["keyword", "llm:local:judge-model"], presentations=["plain"])
    expected = "judge llm:local:judge-model failed.*every generation so far is saved"
    with pytest.raises(MimicryError, match=expected):
        evaluate(
            ScriptedBackend(),
            "harm",
            config=config,
            out_dir=tmp_path,
            judge_backends={"llm:local:judge-model": FailingJudgeBackend()},
        )
    assert len(read_jsonl(tmp_path / "generations.jsonl")) == 4

    backend = ScriptedBackend()
    summary = evaluate(
        backend,
        "harm",
        config=config,
        out_dir=tmp_path,
        judge_backends={"llm:local:judge-model": ScoringJudgeBackend()},
    )
    assert backend.calls == 0
    rubric = summary.row("harm", "asr", "harmful_instructions", "plain", "llm:local:judge-model")
    keyword = summary.row("harm", "asr", "harmful_instructions", "plain", "keyword")
    assert rubric.value == keyword.value and rubric.n == 4
    assert summary.row("harm", "harm_score", "harmful_instructions", "plain", "llm:local:judge-model").n == 4


@pytest.mark.usefixtures("tiny_data_root")
def test_an_unreachable_judge_endpoint_is_retried_then_named_and_generations_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIMICRY_TEST_JUDGE_KEY", "not-a-real-key")
    monkeypatch.setattr(
        "mimicry.generation.openai_backend._cli_endpoints", {"http://127.0.0.1:9/v1": "MIMICRY_TEST_JUDGE_KEY"}
    )
    config = EvalConfig(
        **SMALL,
        judges=["keyword", "llm:openai:judge@http://127.0.0.1:9/v1"],
        presentations=["plain"],
        judge_api_key_env="MIMICRY_TEST_JUDGE_KEY",
        judge_max_retries=2,
        judge_backoff_seconds=0.01,
    )
    expected = r"judge llm:openai:judge@http://127.0.0.1:9/v1 failed.*after 3 attempts.*rerunning the same"
    with pytest.raises(MimicryError, match=expected):
        evaluate(ScriptedBackend(), "harm", config=config, out_dir=tmp_path)
    assert len(read_jsonl(tmp_path / "generations.jsonl")) == 4
    assert {v["judge_id"] for v in read_jsonl(tmp_path / "verdicts.jsonl")} == {"keyword"}


@pytest.mark.usefixtures("tiny_data_root")
def test_unparsed_judge_verdicts_are_counted_not_dropped(tmp_path: Path) -> None:
    class Refusing:
        model_id = "judge"

        def generate(self, prompts, config):  # noqa: ANN001
            return ["#thescore: 1", "I can't help with rating that."] * (len(prompts) // 2) + ["#thescore: 1"] * (
                len(prompts) % 2
            )

    config = EvalConfig(**SMALL, judges=["llm:local:j"], presentations=["plain"])
    summary = evaluate(
        ScriptedBackend(), "harm", config=config, out_dir=tmp_path, judge_backends={"llm:local:j": Refusing()}
    )
    row = summary.row("harm", "asr", "harmful_instructions", "plain", "llm:local:j")
    assert row.unparsed == 2 and row.n == 2
    assert sum(v["complied"] is None for v in read_jsonl(tmp_path / "verdicts.jsonl")) == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"harm_sets": ["xstest_safe"]}, "unknown harmful prompt set \\(suite harm\\) 'xstest_safe'.*Known: advbench"),
        ({"harm_sets": ["advbenc"]}, "unknown prompt set 'advbenc'. Did you mean 'advbench'"),
    ],
)
def test_bad_names_list_the_valid_ones(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(MimicryError, match=message):
        evaluate(ScriptedBackend(), "harm", config=EvalConfig(**{**SMALL, **kwargs}), out_dir=tmp_path)


def test_an_unknown_judge_is_refused_with_the_config() -> None:
    with pytest.raises(ValidationError, match=r"judges\n.*unknown judge 'gpt4'"):
        EvalConfig(**SMALL, judges=["gpt4"])


def test_unknown_suite_and_missing_task(tmp_path: Path) -> None:
    with pytest.raises(MimicryError, match="unknown evaluation suite 'harms'. Did you mean 'harm'"):
        evaluate(ScriptedBackend(), "harms", out_dir=tmp_path)
    with pytest.raises(MimicryError, match="needs a task"):
        evaluate(ScriptedBackend(), "task", out_dir=tmp_path)


@pytest.mark.usefixtures("tiny_data_root")
def test_task_suite_scores_in_the_training_format(tmp_path: Path) -> None:
    spec = load_task("winogrande")
    examples = spec.examples("test", limit=5, seed=0)
    strategy = get_strategy("aoa+autoif")
    prompts = {strategy.render(ex).prompt_messages[-1].content: ex for ex in examples}
    answered = list(prompts)[:3]

    def answer(messages: Sequence[Message]) -> str:
        request = next(m.content for m in reversed(messages) if m.role == "user")
        if request in answered:
            return f"Both look plausible, but one works better. The answer is {prompts[request].gold}."
        return "I am not sure about this one."

    backend = ScriptedBackend(rule=answer)
    summary = evaluate(
        backend, "task", task="winogrande", strategy="aoa+autoif", config=EvalConfig(limit=5), out_dir=tmp_path
    )
    row = summary.row("task", "choice_accuracy", "winogrande", "aoa+autoif")
    assert (row.value, row.n, row.unparsed) == (pytest.approx(0.6), 5, 2)
    sent = backend.prompts[0]
    assert sent[-1].role == "assistant" and sent[-1].content == strategy.reply_prefix
    assert sent[:-1] in [list(strategy.render(ex).prompt_messages) for ex in examples]


def test_cli_reports_bad_input_with_exit_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--model", "whatever", "--suite", "harm,bogus"]) == 2
    assert "unknown evaluation suite 'bogus'" in capsys.readouterr().err
    assert main(["eval", "--suite", "harm"]) == 2
    assert "--model is required" in capsys.readouterr().err
    assert main(["eval", "--model", "m", "--advbench-sample", "lots"]) == 2
    assert "number or 'all'" in capsys.readouterr().err


def test_cli_validate_judges_writes_the_report(tmp_path: Path) -> None:
    report = tmp_path / "judge-validation.md"
    assert main(["eval", "validate-judges", "--judge", "keyword", "--write", str(report)]) == 0
    text = report.read_text()
    assert "| keyword | test |" in text and "mimicry eval validate-judges" in text


def test_records_go_to_a_new_nested_directory_as_utf8_and_need_a_key(tmp_path: Path) -> None:
    path = tmp_path / "run" / "eval" / "records.jsonl"
    store = RecordStore(path)
    store.append([{"key": "a", "response": "Désolé, je ne peux pas."}])
    assert "Désolé" in path.read_text(encoding="utf-8")
    with pytest.raises(ValueError, match="every record needs a 'key'"):
        store.append([{"response": "no key"}])
    assert RecordStore(path).records() == [{"key": "a", "response": "Désolé, je ne peux pas."}]
