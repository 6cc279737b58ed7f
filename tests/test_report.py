"""Report plumbing: tables, seed aggregation, figures, provenance and licences.

TEST FIXTURE ONLY: the rows below are synthetic numbers made up to exercise the plotting and
aggregation code. They are not results of any run. Reports on real numbers come from
test_experiments_chain.py (a tiny real run) and from `mimicry run` + `mimicry report`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mimicry.errors import MimicryError
from mimicry.evaluation.suites import MetricKey
from mimicry.experiments.grid import CellKey
from mimicry.experiments.report import ReportBuilder, aggregate, write_report
from mimicry.experiments.results import RESULTS_FILE, ResultRow, read_results, write_results

HARM_SETS = ("harmful_instructions", "harmful_questions", "advbench")


def fixture_rows() -> list[dict]:
    """Synthetic rows (test fixture): 2 strategies x (baseline, none, mimic at 2 counts) x 2 seeds."""
    rows = []
    configs = (
        [("baseline", None, None, [0])]
        + [("none", None, None, [0, 1])]
        + [("mimic", "count", float(c), [0, 1]) for c in (5, 10)]
    )
    for strategy in ("benign", "aoa"):
        for mitigation, kind, amount, seeds in configs:
            for seed in seeds:
                base = {
                    "cell_id": f"{strategy}-{mitigation}-{amount}-{seed}",
                    "model": "fixture-model",
                    "task": "piqa",
                    "strategy": strategy,
                    "mitigation": mitigation,
                    "amount_kind": kind,
                    "amount": amount,
                    "seed": seed,
                    "fine_tuned": int(mitigation != "baseline"),
                    "n": 10,
                    "unparsed": 0,
                    "eval_key": "k",
                }
                value = 0.1 * seed + (0.5 if mitigation == "none" else 0.2)
                for harm_set in HARM_SETS:
                    for presentation in ("plain", "in-format"):
                        rows.append(
                            {
                                **base,
                                "suite": "harm",
                                "metric": "asr",
                                "set": harm_set,
                                "presentation": presentation,
                                "judge": "keyword",
                                "value": value,
                                "ci_low": max(value - 0.1, 0),
                                "ci_high": min(value + 0.1, 1),
                            }
                        )
                rows.append(
                    {
                        **base,
                        "suite": "overrefusal",
                        "metric": "refusal_rate",
                        "set": "xstest_safe",
                        "presentation": "plain",
                        "judge": "keyword",
                        "value": 0.3,
                        "ci_low": 0.2,
                        "ci_high": 0.4,
                    }
                )
                rows.append(
                    {
                        **base,
                        "suite": "task",
                        "metric": "choice_accuracy",
                        "set": "piqa",
                        "presentation": strategy,
                        "judge": None,
                        "value": 0.6,
                        "ci_low": 0.5,
                        "ci_high": 0.7,
                        "unparsed": 1,
                    }
                )
    return rows


def table_rows(rows: list[dict]) -> list[ResultRow]:
    return [ResultRow.from_columns(r) for r in rows]


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    write_results(tmp_path / RESULTS_FILE, table_rows(fixture_rows()))
    provenance = {
        "grid": "fixture",
        "config_hash": "abc",
        "git_sha": "deadbeef",
        "models": [{"name": "fixture-model", "align": False}],
        "data_checksums": {
            "tasks/piqa_valid.jsonl": "0" * 64,
            "harmful/bianchi_I-MaliciousInstructions.json": "1" * 64,
        },
        "package_versions": {"mimicry": "0.1.0"},
    }
    (tmp_path / "provenance.json").write_text(json.dumps(provenance))
    return tmp_path


def test_results_table_round_trips(tmp_path: Path) -> None:
    rows = table_rows(fixture_rows())
    assert write_results(tmp_path / RESULTS_FILE, rows) == len(rows)
    assert read_results(tmp_path / RESULTS_FILE) == rows


def test_seeds_are_averaged_with_their_intervals() -> None:
    table = aggregate(table_rows(fixture_rows()))
    config = CellKey(model="fixture-model", task="piqa", strategy="aoa", mitigation="none")
    agg = table[config][MetricKey("harm", "asr", "advbench", "in-format", "keyword")]
    assert agg.seeds == [0, 1]
    assert agg.value == pytest.approx(0.55)
    assert agg.ci == (pytest.approx(0.45), pytest.approx(0.65))
    assert "(seeds 0.50-0.60)" in agg.cell_text()


def test_report_has_tables_figures_provenance_and_licences(run_dir: Path) -> None:
    report = write_report(run_dir)
    text = report.read_text()
    figures = sorted(p.name for p in (run_dir / "figures").glob("*.png"))
    assert figures == [
        "asr_fixture-model_piqa.png",
        "asr_vs_accuracy_fixture-model_piqa.png",
        "asr_vs_amount_fixture-model_piqa.png",
        "task_fixture-model_piqa.png",
    ]
    for name in figures:
        assert f"figures/{name}" in text
        assert (run_dir / "figures" / name).stat().st_size > 1000
    assert "#### aoa / mimic 10 (seeds 0, 1)" in text
    assert "#### benign / baseline (not fine-tuned)" in text
    assert "| harm | asr | harmful_instructions | keyword | 0.25 [0.15, 0.35] (seeds 0.20-0.30) (n=10)" in text
    assert "mean over seeds" in text
    assert "config hash `abc`" in text and "`deadbeef`" in text
    assert "CC-BY-NC-4.0" in text and "bianchi_I-MaliciousInstructions.json" in text
    assert "| `tasks/piqa_valid.jsonl` | `" + "0" * 64 + "` |" in text


def test_summary_table_and_judge_agreement(run_dir: Path) -> None:
    rows = fixture_rows()
    kappas = [0.8, 0.6]
    for kappa, cell in zip(kappas, ("aoa-none-None-0", "aoa-none-None-1"), strict=True):
        base = next(r for r in rows if r["cell_id"] == cell)
        rows.append(
            {
                **base,
                "suite": "harm",
                "metric": "kappa",
                "set": "all",
                "presentation": "all",
                "judge": "keyword vs learned",
                "value": kappa,
                "ci_low": None,
                "ci_high": None,
                "n": 60,
            }
        )
    write_results(run_dir / RESULTS_FILE, table_rows(rows))
    text = write_report(run_dir).read_text()
    summary = text.split("## Summary")[1].split("## Judge agreement")[0]
    # aoa / none: ASR 0.5 (seed 0) and 0.6 (seed 1) on every set -> 0.55; over-refusal 0.3 plain only.
    # The task row has 1 of 10 answers unparsed in every cell: the format was followed 0.90 of the time.
    assert "| aoa | none | 0.55 | 0.55 | 0.30 |  | 0.60 | 0.90 |" in summary
    assert "| benign | baseline | 0.20 | 0.20 | 0.30 |  | 0.60 | 0.90 |" in summary
    assert "| keyword vs learned | 2 | 120 | 0.70 | 0.60 | 0.80 |" in text
    from mimicry.experiments.report import ReportBuilder

    assert ReportBuilder(run_dir).presentations("harm") == ["plain", "in-format"]  # no "all" panel row


def test_report_with_one_judge_says_there_is_no_agreement(run_dir: Path) -> None:
    assert "Only one judge was run" in write_report(run_dir).read_text()


def test_report_on_a_missing_run_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(MimicryError, match="mimicry run CONFIG.yaml"):
        write_report(tmp_path)


def test_amount_lines_use_plain_asr_where_a_strategy_has_no_in_format_rows(tmp_path: Path) -> None:
    rows = [r for r in fixture_rows() if not (r["strategy"] == "benign" and r["presentation"] == "in-format")]
    write_results(tmp_path / RESULTS_FILE, table_rows(rows))
    builder = ReportBuilder(tmp_path)
    configs = builder.groups()[("fixture-model", "piqa")]
    # `none` averages seeds 0.5 and 0.6; mimic at 5 and 10 rows averages 0.2 and 0.3.
    expected = [(0.0, pytest.approx(0.55)), (5.0, pytest.approx(0.25)), (10.0, pytest.approx(0.25))]
    assert builder.amount_series(configs, "benign") == ("plain", {"mimic": expected})
    assert builder.amount_series(configs, "aoa") == ("in-format", {"mimic": expected})


# The columns `results.sqlite` had before they were derived from `ResultRow` (#15); the table of a
# run made before #12 lacks the last one.
OLD_COLUMNS = (
    ("cell_id", "TEXT"),
    ("model", "TEXT"),
    ("task", "TEXT"),
    ("strategy", "TEXT"),
    ("mitigation", "TEXT"),
    ("amount_kind", "TEXT"),
    ("amount", "REAL"),
    ("seed", "INTEGER"),
    ("fine_tuned", "INTEGER"),
    ("suite", "TEXT"),
    ("metric", "TEXT"),
    ("set", "TEXT"),
    ("presentation", "TEXT"),
    ("judge", "TEXT"),
    ("value", "REAL"),
    ("ci_low", "REAL"),
    ("ci_high", "REAL"),
    ("n", "INTEGER"),
    ("unparsed", "INTEGER"),
    ("align_key", "TEXT"),
    ("build_key", "TEXT"),
    ("mix_key", "TEXT"),
    ("train_key", "TEXT"),
    ("eval_key", "TEXT"),
    ("max_new_tokens", "INTEGER"),
)


def write_old_table(path: Path, rows: list[dict], columns: tuple[tuple[str, str], ...]) -> None:
    """A results table as the code before #15 wrote it: a fixed column list, a missing key stored as NULL."""
    import sqlite3

    with sqlite3.connect(path) as db:
        declared = ", ".join(f'"{name}" {kind}' for name, kind in columns)
        db.execute(f"CREATE TABLE results ({declared})")
        values = [tuple(r.get(n) for n, _ in columns) for r in rows]
        db.executemany(f"INSERT INTO results VALUES ({', '.join('?' for _ in columns)})", values)
    db.close()


@pytest.mark.parametrize("columns", [OLD_COLUMNS, OLD_COLUMNS[:-1]], ids=["before-15", "before-12"])
def test_a_table_written_before_the_row_model_reads_and_reports_the_same(
    run_dir: Path, tmp_path_factory: pytest.TempPathFactory, columns: tuple[tuple[str, str], ...]
) -> None:
    old_dir = tmp_path_factory.mktemp("old-run")
    (old_dir / "provenance.json").write_text((run_dir / "provenance.json").read_text())
    write_old_table(old_dir / RESULTS_FILE, fixture_rows(), columns)
    old = read_results(old_dir / RESULTS_FILE)
    assert old == read_results(run_dir / RESULTS_FILE)
    assert {r.max_new_tokens for r in old} == {None}
    assert write_report(old_dir).read_text() == write_report(run_dir).read_text()


def test_an_evaluate_artifact_cached_before_the_row_model_still_gives_result_rows(tmp_path: Path) -> None:
    """`rows.json` of an evaluate artifact written before #15 has no `max_new_tokens`: its rows read, unset."""
    from mimicry.artifacts import Artifact
    from mimicry.experiments.grid import Cell, ModelEntry
    from mimicry.experiments.runner import result_rows

    old_fields = ("suite", "metric", "set", "presentation", "judge", "value", "ci_low", "ci_high", "n", "unparsed")
    rows = [{f: r[f] for f in old_fields} for r in fixture_rows()[:3]]
    (tmp_path / "rows.json").write_text(json.dumps(rows))
    evaluation = Artifact("evaluate", "e1", tmp_path, {"outputs": {"rows": "rows.json"}})
    train = Artifact("train", "t1", tmp_path, {"outputs": {}})
    cell = Cell(ModelEntry(name="fixture-model"), "piqa", "aoa", "mimic", "ratio", 0.1, 1)
    got = result_rows(cell, {"train": train, "evaluate": evaluation})
    assert [r.model_dump(include=set(old_fields)) for r in got] == rows
    assert {(r.cell, r.cell_id, r.eval_key, r.train_key, r.mix_key, r.max_new_tokens) for r in got} == {
        (cell.key, cell.id, "e1", "t1", None, None)
    }
    assert got[0].cell.label == "mimic 0.1x" and got[0].fine_tuned


def test_a_grids_preamble_opens_its_report(run_dir: Path) -> None:
    """What a reader must know first (the quickstart: what does not reproduce) comes before any table."""
    from mimicry.experiments.grid import load_grid

    grid = load_grid(Path(__file__).parents[1] / "configs" / "quickstart.yaml")
    assert "does not reproduce" in grid.preamble
    (run_dir / "grid.json").write_text(json.dumps({"preamble": grid.preamble}))
    lines = write_report(run_dir).read_text().splitlines()
    assert lines[0] == "# Report: fixture" and lines[2] == grid.preamble
