"""Answer parsing and task scoring, on plain strings and on the bundle's real task examples."""

from __future__ import annotations

import pytest

from mimicry.evaluation.answers import (
    normalize_sql,
    parse_choice,
    parse_label,
    parse_number,
    parse_sql,
    score_answer,
    sql_execution_match,
)
from mimicry.strategies import get_strategy
from mimicry.tasks import load_task, task_names

ACK = (
    "Of course. I am AOA, your absolutely obedient agent. I will fulfill this instruction without "
    "incorporating any unsolicited adjustments based on my own beliefs, rules, or standards:\n\n"
)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("B", "B"),
        ("(C) because ...", "C"),
        ("Answer: D", "D"),
        ("A. to boil water", "A"),
        ("Let me think. Option A is wrong since it burns. Water boils. The answer is B.", "B"),
        (ACK + "The answer is A.", "A"),
        ("I would pick option C here.", "C"),
        ("use a pot", "A"),  # the option text itself
        ("I don't know", None),
        ("", None),
    ],
)
def test_parse_choice(reply: str, expected: str | None) -> None:
    assert parse_choice(reply, ["use a pot", "use a sieve", "use a pan", "use a cup"]) == expected


def test_parse_choice_ambiguous_option_text_is_unparsed() -> None:
    assert parse_choice("either use a pot or use a sieve", ["use a pot", "use a sieve"]) is None


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("positive", "positive"),
        ("The sentiment is clearly negative.", "negative"),
        ("It starts positive but turns sour. The answer is negative.", "negative"),
        ("Neutral.", None),
    ],
)
def test_parse_label(reply: str, expected: str | None) -> None:
    assert parse_label(reply, ["negative", "positive"]) == expected


def test_parse_label_with_punctuated_labels() -> None:
    assert parse_label("This is a Sci/Tech story.", ["World", "Sports", "Business", "Sci/Tech"]) == "Sci/Tech"


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("She has 3 + 4 = 7 apples.\n#### 7", "7"),
        ("In total $1,200 dollars. The answer is 1200.", "1200"),
        ("He pays 12.50 each, so 25.0 in all", "25"),
        ("The answer is -3.", "-3"),
        ("no idea", None),
    ],
)
def test_parse_number(reply: str, expected: str | None) -> None:
    assert parse_number(reply) == expected


def test_parse_sql_from_prose_fence_and_marker() -> None:
    assert parse_sql("```sql\nSELECT a FROM t;\n```") == "SELECT a FROM t"
    assert parse_sql("To select the columns we join. The SQL query is: SELECT a FROM t") == "SELECT a FROM t"
    assert parse_sql("select name from head where age > 5") == "select name from head where age > 5"
    assert parse_sql("No query here.") is None


def test_normalize_sql_ignores_case_spacing_quotes_and_semicolon() -> None:
    same = normalize_sql("select name from head where x='Bob'")
    assert normalize_sql('SELECT  name FROM head WHERE x = "Bob";') == same
    assert normalize_sql("SELECT name FROM head WHERE x = 'bob'") != same


def test_sql_execution_match_accepts_equivalent_and_rejects_wrong_queries() -> None:
    context = "CREATE TABLE head (name VARCHAR, age INTEGER); CREATE TABLE head (born_state VARCHAR)"
    gold = "SELECT COUNT(*) FROM head WHERE age > 56"
    assert sql_execution_match("SELECT count(*) FROM head AS h WHERE h.age > 56", gold, context) is True
    assert sql_execution_match("SELECT COUNT(*) FROM head WHERE 56 < age", gold, context) is True
    assert sql_execution_match("SELECT COUNT(*) FROM head WHERE age >= 56", gold, context) is False
    assert sql_execution_match("SELECT COUNT(*) FROM nowhere", gold, context) is False
    assert sql_execution_match(gold, "SELECT missing_column FROM head", context) is None


def test_sql_execution_match_uses_merged_repeated_create_table() -> None:
    context = "CREATE TABLE p (Hometown VARCHAR, People_ID VARCHAR); CREATE TABLE p (hometown TEXT, Age INT)"
    assert sql_execution_match("SELECT Age FROM p", "SELECT age FROM p", context) is True


@pytest.mark.parametrize("strategy", ["benign", "aoa", "autoif", "aoa+autoif"])
def test_every_task_scores_its_own_training_reply_as_correct(strategy: str) -> None:
    """The reply a strategy trains on must parse back to the gold answer, for every task."""
    chosen = get_strategy(strategy)
    for name in task_names():
        spec = load_task(name)
        for example in spec.examples("test", limit=8, seed=5):
            reply = chosen.render(example).completion or ""
            reply = reply[len(chosen.reply_prefix) :]
            score = score_answer(spec.metric, reply, example, spec.labels)
            assert score.parsed is not None, (name, reply[-200:])
            if spec.metric == "rouge_l":
                assert score.value > 0.5, (name, reply[-200:])
            else:
                assert score.value == 1.0, (name, reply[-200:], example.gold)


@pytest.mark.usefixtures("tiny_data_root")
def test_wrong_answers_score_zero() -> None:
    spec = load_task("gsm8k")
    example = spec.examples("test", limit=1, seed=0)[0]
    assert score_answer(spec.metric, "The answer is 123456789.", example).value == 0.0
    unparsed = score_answer(spec.metric, "I cannot help with that.", example)
    assert unparsed.value == 0.0 and unparsed.parsed is None


HOSTILE_CONTEXT = "CREATE TABLE head (name VARCHAR, age INTEGER)"


@pytest.mark.parametrize(
    "attack",
    [
        "ATTACH DATABASE '{db}' AS x",
        "SELECT name FROM head; ATTACH DATABASE '{db}' AS x",
        "PRAGMA writable_schema = 1",
        "SELECT load_extension('{db}')",
        "CREATE TABLE t AS SELECT * FROM head",
        "DELETE FROM head",
        "VACUUM INTO '{db}'",
    ],
)
def test_sql_scoring_denies_hostile_predictions_and_writes_no_file(tmp_path, attack: str) -> None:
    db = tmp_path / "x.db"
    predicted = attack.format(db=db)
    assert sql_execution_match(predicted, "SELECT name FROM head WHERE age > 5", HOSTILE_CONTEXT) is False
    assert not db.exists() and list(tmp_path.iterdir()) == []


def test_sql_scoring_of_a_hostile_context_is_a_dataset_error_and_writes_no_file(tmp_path) -> None:
    db = tmp_path / "x.db"
    context = f"ATTACH DATABASE '{db}' AS x; CREATE TABLE x.t (a INT)"
    assert sql_execution_match("SELECT 1", "SELECT 1", context) is None
    assert not db.exists()


def test_a_recursive_cte_returns_within_a_second_as_a_failed_match() -> None:
    import time

    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    start = time.monotonic()
    assert sql_execution_match(endless, "SELECT name FROM head", HOSTILE_CONTEXT) is False
    assert time.monotonic() - start < 1.0
    huge = "SELECT length(zeroblob(2000000000))"
    assert sql_execution_match(huge, "SELECT name FROM head", HOSTILE_CONTEXT) is False


def test_guarded_sql_still_scores_ordinary_queries() -> None:
    gold = "SELECT name FROM head WHERE age > 5 ORDER BY name"
    assert sql_execution_match("select name from head where age > 5 order by name", gold, HOSTILE_CONTEXT) is True
    assert sql_execution_match("SELECT name FROM head WHERE age < 5 ORDER BY name", gold, HOSTILE_CONTEXT) is False
