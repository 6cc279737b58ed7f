"""Answer extraction and scoring for the task suite.

Replies come in many shapes: a bare letter, "Answer: B", a persona acknowledgement followed by
a long explanation ending "The answer is A.", a fenced SQL block. Each parser looks for an
explicit final-answer marker first, then falls back to the weaker signals, and returns None
when nothing credible is found: unparseable answers are counted, never guessed.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mimicry.evaluation.metrics import rouge_l_f1
from mimicry.evaluation.refusal import strip_persona_opening
from mimicry.evaluation.sqlsafe import GuardedDatabase
from mimicry.registry import Registry
from mimicry.text import normalize

_FINAL_MARKER = re.compile(
    r"(?:the\s+(?:final\s+|correct\s+|right\s+)?answer\s+is|answer\s*:|final\s+answer\s*:?|####)\s*",
    re.IGNORECASE,
)


def _tail_after_marker(text: str) -> str | None:
    """The text after the last final-answer marker, if the reply has one."""
    matches = list(_FINAL_MARKER.finditer(text))
    return text[matches[-1].end() :] if matches else None


def _body(text: str) -> str:
    return strip_persona_opening(text).strip()


def parse_choice(text: str, options: Sequence[str]) -> str | None:
    """The chosen option letter (A, B, ...) or None."""
    letters = [chr(ord("A") + i) for i in range(len(options))] or list("ABCDE")
    letter_class = "".join(letters)
    body = _body(text)
    single = re.compile(rf"^\(?([{letter_class}])\)?(?:[.):,\s]|$)")
    for candidate in (_tail_after_marker(body), body):
        if candidate is None:
            continue
        stripped = candidate.strip().lstrip("*\"' ")
        m = single.match(stripped)
        if m:
            return m.group(1)
        for letter in letters:
            pattern = rf"\b(?:option|choice)\s+\(?{letter}\)?\b"
            if re.search(pattern, stripped[:80], re.IGNORECASE):
                return letter
    normalized = normalize(_tail_after_marker(body) or body)
    hits = [letters[i] for i, opt in enumerate(options) if normalize(opt) and normalize(opt) in normalized]
    return hits[0] if len(hits) == 1 else None


def parse_label(text: str, labels: Sequence[str]) -> str | None:
    """The one label the reply names (after a final-answer marker if any), or None if none or several."""
    body = _body(text)
    for candidate in (_tail_after_marker(body), body[:200], body):
        if candidate is None:
            continue
        words = f" {normalize(candidate)} "
        hits = [label for label in labels if f" {normalize(label)} " in words]
        if len(hits) == 1:
            return hits[0]
        if hits:
            first = min(hits, key=lambda label: words.index(f" {normalize(label)} "))
            if candidate is not body:
                return first
    return None


_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def _clean_number(raw: str) -> str | None:
    value = raw.replace(",", "").rstrip(".")
    try:
        number = float(value)
    except ValueError:
        return None
    return str(int(number)) if number == int(number) else str(number)


def parse_number(text: str) -> str | None:
    """The final numeric answer: after a marker when present, else the last number in the reply."""
    body = _body(text)
    tail = _tail_after_marker(body)
    if tail is not None:
        m = _NUMBER.search(tail.replace("$", ""))
        if m:
            return _clean_number(m.group(0))
    numbers = _NUMBER.findall(body.replace("$", ""))
    return _clean_number(numbers[-1]) if numbers else None


_SQL_FENCE = re.compile(r"```(?:sql)?\s*(.*?)```", re.IGNORECASE | re.DOTALL)
_SQL_MARKER = re.compile(r"(?:query|answer|sql)\s*(?:is)?\s*:", re.IGNORECASE)
_SQL_START_UPPER = re.compile(r"\b(SELECT|WITH)\b")
_SQL_START = re.compile(r"\b(SELECT|WITH)\b", re.IGNORECASE)


def parse_sql(text: str) -> str | None:
    """The SQL query in the reply: a fenced block, else the text after a "query is:" marker, else
    from the first upper-case (then any-case) SELECT to the end of that statement."""
    body = _body(text)
    fence = _SQL_FENCE.search(body)
    markers = list(_SQL_MARKER.finditer(body))
    if fence:
        body = fence.group(1)
    elif markers:
        body = body[markers[-1].end() :]
    m = _SQL_START_UPPER.search(body) or _SQL_START.search(body)
    if not m:
        return None
    query = body[m.start() :]
    query = query.split(";")[0]
    query = query.split("\n\n")[0]
    return query.strip() or None


def normalize_sql(query: str) -> str:
    """Case-fold outside string literals, unify quotes, collapse whitespace, drop a final semicolon."""
    parts = re.split(r"('(?:[^']|'')*'|\"[^\"]*\")", query.strip().rstrip(";"))
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append("'" + part[1:-1].replace("''", "'") + "'")
        else:
            out.append(re.sub(r"\s+", " ", part.lower()))
    text = "".join(out)
    text = re.sub(r"\s*([(),=<>])\s*", r"\1", text)
    return text.strip()


_LITERAL = re.compile(r"'((?:[^']|'')*)'|\"([^\"]*)\"|\b(-?\d+(?:\.\d+)?)\b")
EXECUTION_DATABASES = 3
ROWS_PER_TABLE = 8


def _literals(query: str) -> list[Any]:
    values: list[Any] = []
    for single, double, number in _LITERAL.findall(query):
        if number:
            values.append(float(number) if "." in number else int(number))
        else:
            values.append((single or double).replace("''", "'"))
    return values


def _populate(conn: GuardedDatabase, seed: int, literals: list[Any]) -> None:
    """Fill every table with seeded rows drawn from the gold query's literals and fillers, so
    that WHERE clauses select some rows and not others."""
    import random

    rng = random.Random(seed)
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    strings = [v for v in literals if isinstance(v, str)] + ["alpha", "beta", "gamma"]
    numbers = [v for v in literals if not isinstance(v, str)] + [0, 1, 2, 7, 42, 100]
    for table in tables:
        cols = conn.execute(f'PRAGMA table_info("{table}")')
        for _ in range(ROWS_PER_TABLE):
            row = []
            for col in cols:
                numeric = any(t in (col[2] or "").upper() for t in ("INT", "REAL", "NUM", "FLOA", "DOUB"))
                pool = numbers if numeric else strings + [str(n) for n in numbers[:3]]
                row.append(rng.choice(pool))
            marks = ",".join("?" * len(cols))
            conn.execute(f'INSERT INTO "{table}" VALUES ({marks})', row)


_CREATE = re.compile(r"CREATE\s+TABLE\s+(\"?\w+\"?)\s*\((.*?)\)\s*(?:;|$)", re.IGNORECASE | re.DOTALL)


def create_schema(conn: GuardedDatabase, context: str) -> None:
    """Create the context's tables. sql-create-context repeats CREATE TABLE for one table with
    different columns, so statements are merged per table (columns in first-seen order)."""
    tables: dict[str, dict[str, tuple[str, str]]] = {}
    for name, columns in _CREATE.findall(context):
        merged = tables.setdefault(name.strip('"'), {})
        for column in columns.split(","):
            parts = column.split()
            if parts:  # SQLite column names are case-insensitive: Phone_id and Phone_ID are one column
                merged.setdefault(parts[0].lower(), (parts[0], " ".join(parts[1:])))
    if not tables:
        conn.executescript(context)
        return
    for name, columns in tables.items():
        body = ", ".join(f"{col} {kind}".strip() for col, kind in columns.values())
        conn.execute(f'CREATE TABLE "{name}" ({body})')


def _run(conn: GuardedDatabase, query: str) -> list[tuple[Any, ...]] | None:
    try:
        return conn.execute(query)
    except (sqlite3.Error, OverflowError, MemoryError):
        return None


def sql_execution_match(predicted: str, gold: str, context: str) -> bool | None:
    """Whether both queries return the same rows on several seeded databases built from `context`.

    Tables created by the CREATE TABLE context are filled with rows whose values are drawn from
    the gold query's literals (so its filters match some rows) plus fillers; results are compared
    as multisets unless the gold query orders them. A prediction that fails to execute never
    matches; None when the gold query itself does not run on its context (a dataset error).
    Both run in a `GuardedDatabase`: read-only, no ATTACH or pragma writes, a step and time budget.
    """
    ordered = "order by" in gold.lower()
    literals = _literals(gold)
    for seed in range(EXECUTION_DATABASES):
        with GuardedDatabase() as conn:
            try:
                create_schema(conn, context)
                _populate(conn, seed, literals)
            except (sqlite3.Error, OverflowError):
                return None
            conn.read_only()
            gold_rows = _run(conn, gold)
            pred_rows = _run(conn, predicted)
        if gold_rows is None:
            return None
        if pred_rows is None:
            return False
        key = (lambda rows: rows) if ordered else (lambda rows: sorted(map(repr, rows)))
        if key(gold_rows) != key(pred_rows):
            return False
    return True


@dataclass(frozen=True)
class Score:
    """One scored task answer: `value` in [0, 1], `parsed` None when nothing usable was found."""

    value: float
    parsed: str | None
    extra: dict[str, float]


# (reply, example, the task's label words) -> Score
ScoreFn = Callable[[str, Any, Sequence[str]], Score]
TASK_METRICS: Registry[ScoreFn] = Registry("task metric")


def _exact(parsed: str | None, gold: str) -> Score:
    return Score(float(parsed is not None and parsed == gold), parsed, {})


@TASK_METRICS.register("choice_accuracy")
def _choice(reply: str, example: Any, labels: Sequence[str]) -> Score:
    return _exact(parse_choice(reply, list(example.options or [])), str(example.gold).strip().upper())


@TASK_METRICS.register("label_accuracy")
def _label(reply: str, example: Any, labels: Sequence[str]) -> Score:
    parsed = parse_label(reply, list(labels) or [str(example.gold)])
    return Score(float(parsed is not None and normalize(parsed) == normalize(str(example.gold))), parsed, {})


@TASK_METRICS.register("number_match")
def _number(reply: str, example: Any, labels: Sequence[str]) -> Score:
    return _exact(parse_number(reply), _clean_number(str(example.gold)) or str(example.gold))


@TASK_METRICS.register("sql_match")
def _sql(reply: str, example: Any, labels: Sequence[str]) -> Score:
    parsed = parse_sql(reply)
    if parsed is None:
        return Score(0.0, None, {"exact_match": 0.0})
    exact = float(normalize_sql(parsed) == normalize_sql(str(example.gold)))
    executed = sql_execution_match(parsed, str(example.gold), example.context or "")
    # Where the gold query cannot run on its own schema, execution says nothing: fall back to exact match.
    return Score(exact if executed is None else float(executed), parsed, {"exact_match": exact})


@TASK_METRICS.register("rouge_l")
def _rouge(reply: str, example: Any, labels: Sequence[str]) -> Score:
    body = _body(reply)
    return Score(rouge_l_f1(body, str(example.gold)), body if body else None, {})


def score_answer(metric: str, reply: str, example: Any, labels: Sequence[str] = ()) -> Score:
    return TASK_METRICS.get(metric)(reply, example, labels)
