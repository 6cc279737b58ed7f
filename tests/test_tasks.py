"""Tasks as data: every spec loads its bundle files correctly; a new task is only a YAML file.

Split sizes and well-formedness are checked on the real bundle; how each spec parses its rows is
checked on the tiny checked-in rows (`tiny_data_root`), which hold every row named here."""

from __future__ import annotations

from pathlib import Path

import pytest

from mimicry.data.root import data_root
from mimicry.errors import MimicryError
from mimicry.tasks import TASKS, Example, load_spec_file, load_task, task_names
from mimicry.tasks.fields import PARSERS, FieldError

ALL_TASKS = [
    "agnews", "arc_challenge", "arc_easy", "boolq", "commonsenseqa", "gsm8k",
    "openbookqa", "piqa", "samsum", "sql", "sst2", "winogrande",
]  # fmt: skip

# (task, split, expected size): listed splits equal the MANIFEST row counts; carved ones the spec's sizes.
SPLIT_SIZES = [
    ("piqa", "train", 1338), ("piqa", "test", 500),
    ("winogrande", "train", 640), ("winogrande", "test", 1267),
    ("arc_challenge", "train", 1119), ("arc_challenge", "test", 1172),
    ("arc_easy", "train", 2251), ("arc_easy", "test", 2376),
    ("openbookqa", "train", 4957), ("openbookqa", "dev", 500), ("openbookqa", "test", 500),
    ("commonsenseqa", "train", 9741), ("commonsenseqa", "test", 1221),
    ("boolq", "train", 2270), ("boolq", "test", 1000),
    ("sst2", "test", 872),
    ("agnews", "train", 6600), ("agnews", "test", 1000),
    ("gsm8k", "train", 7473), ("gsm8k", "test", 1319),
    ("sql", "train", 1000), ("sql", "test", 200),
    ("samsum", "train", 1000), ("samsum", "test", 200),
]  # fmt: skip


def test_all_twelve_tasks_are_registered() -> None:
    assert task_names() == ALL_TASKS


@pytest.mark.parametrize(("task", "split", "size"), SPLIT_SIZES)
def test_split_sizes(task: str, split: str, size: int) -> None:
    assert len(load_task(task).examples(split)) == size


@pytest.mark.parametrize("root", ["bundle", "tiny"])
def test_listed_split_sizes_match_the_manifest(request: pytest.FixtureRequest, root: str) -> None:
    if root == "tiny":
        request.getfixturevalue("tiny_data_root")
    manifest = data_root().manifest()
    for name in ALL_TASKS:
        spec = load_task(name)
        for split, source in spec.splits.items():
            if name == "sst2" and split == "train":
                continue  # 67k rows: covered by the row count in the manifest, too slow to parse here
            assert len(spec.examples(split)) == manifest[source.file].rows, (name, split)


@pytest.mark.parametrize("task", ALL_TASKS)
def test_examples_are_well_formed(task: str) -> None:
    spec = load_task(task)
    split = "test"
    examples = spec.examples(split)
    assert len({e.id for e in examples}) == len(examples), "ids are unique within a split"
    for e in examples:
        assert e.task == task and e.answer_kind == spec.answer_kind
        assert e.question.strip() and e.gold.strip()
        if spec.answer_kind == "choice":
            assert len(e.options) >= 2 and all(o.strip() for o in e.options)
            assert e.gold_text == e.options["ABCDE".index(e.gold)]
        else:
            assert not e.options and e.gold_text == e.gold
        if spec.answer_kind == "label":
            assert e.gold in spec.labels


@pytest.mark.usefixtures("tiny_data_root")
@pytest.mark.parametrize("task", ["piqa", "boolq", "agnews"])
def test_carved_splits_are_disjoint_complete_and_fixed(task: str) -> None:
    spec = load_task(task)
    train, test = spec.examples("train"), spec.examples("test")
    ids = {e.id for e in train}
    assert not ids & {e.id for e in test}
    source_rows = data_root().manifest()[spec.carve.source.file].rows
    assert len(train) + len(test) == source_rows
    assert spec.examples("test")[:5] == test[:5]


@pytest.mark.usefixtures("tiny_data_root")
def test_limit_is_a_seeded_sample() -> None:
    spec = load_task("gsm8k")
    first, again = spec.examples("train", limit=4, seed=3), spec.examples("train", limit=4, seed=3)
    other = spec.examples("train", limit=4, seed=4)
    assert first == again and first != other and len(first) == 4
    everything = spec.examples("train")
    assert set(first) <= set(everything)
    assert spec.examples("train", limit=10**6) == everything


def _find(task: str, split: str, **fields: object) -> Example:
    return next(e for e in load_task(task).examples(split) if all(getattr(e, k) == v for k, v in fields.items()))


@pytest.mark.usefixtures("tiny_data_root")
def test_piqa_labels_come_from_the_aligned_label_file() -> None:
    # valid.jsonl line 1 (guinea pig cage) has label 0 in valid-labels.lst: sol1, "ripped paper strips".
    example = next(e for s in ("train", "test") for e in load_task("piqa").examples(s) if e.id == "piqa_valid-0")
    assert example.gold == "A" and "ripped paper strips" in example.gold_text


@pytest.mark.usefixtures("tiny_data_root")
def test_arc_options_and_gold_come_from_the_instruction_text() -> None:
    example = load_task("arc_challenge").examples("test")[0]
    assert example.question.startswith("An astronomer observes") and example.question.endswith("rotation?")
    assert example.options[2] == "Planetary days will become shorter."
    assert (example.gold, len(example.options)) == ("C", 4)
    counts = {len(e.options) for e in load_task("arc_easy").examples("train")}
    assert counts == {3, 4, 5}


@pytest.mark.usefixtures("tiny_data_root")
def test_openbookqa_lettered_choices() -> None:
    example = _find("openbookqa", "train", id="7-980")
    assert example.question == "The sun is responsible for"
    assert example.options[3] == "plants sprouting, blooming and wilting"
    assert example.gold == "D" and example.gold_text == example.options[3]


@pytest.mark.usefixtures("tiny_data_root")
def test_commonsenseqa_gsm8k_boolq_winogrande_sst2_agnews_samsum() -> None:
    csqa = _find("commonsenseqa", "test", id="1afa02df02c908a558b4036e80242fac")
    assert (csqa.gold, csqa.gold_text, len(csqa.options)) == ("A", "bank", 5)

    gsm = load_task("gsm8k").examples("test")[0]
    assert gsm.gold == "18" and "<<" not in gsm.extra["rationale"] and "####" not in gsm.extra["rationale"]
    assert all("," not in e.gold for e in load_task("gsm8k").examples("test"))

    boolq = next(e for s in ("train", "test") for e in load_task("boolq").examples(s) if e.id == "0")
    assert boolq.gold == "no" and boolq.context.startswith("Ethanol fuel")

    wino = _find("winogrande", "test", id="3FCO4VKOZ4BJQ6IFC0VAIBK4KTWE7U-2")
    assert (wino.gold, wino.gold_text) == ("B", "Maria") and "\r" not in wino.question

    sst2 = load_task("sst2").examples("test")[0]
    assert (sst2.question, sst2.gold) == ("it 's a warm and quietly funny little film .", "positive")

    news = [e for s in ("train", "test") for e in load_task("agnews").examples(s)]
    assert {e.gold for e in news} == {"World", "Sports", "Business", "Sci/Tech"}
    assert not any("\\" in e.question for e in news)

    dialogue = load_task("samsum").examples("train")[0]
    assert dialogue.gold.startswith("The meeting has moved") and "\r" not in dialogue.context


def test_unknown_names_list_the_valid_ones() -> None:
    with pytest.raises(MimicryError, match="Did you mean 'piqa'.*Known: agnews"):
        load_task("piq")
    with pytest.raises(MimicryError, match="has no split 'dev'; it has"):
        load_task("piqa").examples("dev")


NEW_TASK = """\
name: {name}
description: "SST-2 again, as a three-way toy: a new task needs only this file."
answer_kind: label
metric: label_accuracy
license: unknown
labels: [negative, positive]
splits:
  test: {{file: tasks/sst2_glue_dev.tsv, reader: tsv}}
fields:
  question: sentence
  gold: {{path: label, map: {{"0": negative, "1": positive}}}}
templates:
  benign_prompt: 'Sentiment of "{{question}}"? Answer:'
  aoa_answer: "It is {{gold}}. The answer is {{gold}}"
  autoif_instruction: 'Is "{{question}}" positive or negative?'
  autoif_explanation: "It reads as {{gold}}."
"""


@pytest.mark.usefixtures("tiny_data_root")
def test_a_new_task_is_only_a_spec_file(tmp_path: Path) -> None:
    path = tmp_path / "mood.yaml"
    path.write_text(NEW_TASK.format(name="mood"), encoding="utf-8")
    spec = load_spec_file(path)
    examples = spec.examples("test", limit=5)
    assert len(examples) == 5 and all(e.gold in ("negative", "positive") for e in examples)
    assert spec.render("benign_prompt", examples[0]).startswith('Sentiment of "')


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("metric: label_accuracy", "metric: rouge_l"), "is scored with 'label_accuracy'"),
        (("answer_kind: label", "answer_kind: labels"), "answer_kind"),
        (("  question: sentence", "  questoin: sentence"), "questoin: unknown key. Did you mean 'question'"),
        (("reader: tsv", "reader: xlsx"), "unknown task file reader 'xlsx'; known: csv_no_header"),
        (("It reads as {gold}.", "It reads as {verdict}."), "uses unknown \\['verdict'\\]"),
        (
            ("{path: label, map:", "{path: label, parse: nope, map:"),
            "fields.gold: .*unknown field parser 'nope'; known: answer_n",
        ),
    ],
)
def test_bad_specs_fail_with_actionable_messages(tmp_path: Path, edit: tuple[str, str], message: str) -> None:
    path = tmp_path / "mood.yaml"
    path.write_text(NEW_TASK.format(name="mood").replace(*edit), encoding="utf-8")
    with pytest.raises(MimicryError, match=message):
        load_spec_file(path)


@pytest.mark.usefixtures("tiny_data_root")
def test_a_record_that_does_not_fit_names_file_and_record(tmp_path: Path) -> None:
    path = tmp_path / "mood.yaml"
    path.write_text(NEW_TASK.format(name="mood").replace('"1": positive', '"2": positive'), encoding="utf-8")
    with pytest.raises(MimicryError, match=r"record \d+ of tasks/sst2_glue_dev.tsv.*value '1' is not in"):
        load_spec_file(path).examples("test")


def test_parsers_reject_malformed_values() -> None:
    with pytest.raises(FieldError):
        PARSERS.get("lettered_choices")("no letters here")
    with pytest.raises(FieldError):
        PARSERS.get("gsm8k_solution")("no final answer")
    with pytest.raises(FieldError):
        PARSERS.get("answer_n_letter")("option2")
    assert PARSERS.get("lettered_choices")("(A) x y (B) z") == ["x y", "z"]


def test_every_spec_file_is_registered() -> None:
    from mimicry.tasks import SPECS_DIR

    assert sorted(p.stem for p in SPECS_DIR.glob("*.yaml")) == TASKS.names()
