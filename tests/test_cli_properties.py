"""Property test: any bytes, any JSON and odd flag values give exit 0, 2 or 3, no traceback, inputs untouched."""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mimicry.cli import main

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "developer", "user", "assistant", "tool", "robot"]), "content": json_values},
    optional={"weight": json_values, "name": json_values, "tool_calls": json_values, "refusal": json_values},
)
record = st.one_of(
    json_values,
    st.fixed_dictionaries({"messages": st.lists(message, max_size=5)}, optional={"meta": json_values}),
    st.fixed_dictionaries({"prompt": json_values, "completion": json_values}),
)
good_row = json.dumps(
    {
        "messages": [
            {"role": "user", "content": "What is the boiling point of water?"},
            {"role": "assistant", "content": "100 degrees Celsius at sea level."},
        ]
    }
).encode()
files = st.one_of(
    st.binary(max_size=300),
    st.lists(record.map(lambda r: json.dumps(r).encode()), max_size=6).map(lambda rows: b"\n".join(rows)),
    st.lists(
        st.sampled_from([good_row, b"\xef\xbb\xbf" + good_row, b"[" * 200, b"\xff\xfe", b'"\\ud800"', b"NaN"])
    ).map(lambda rows: b"\r\n".join(rows)),
)
flags = st.sampled_from([[], ["--strict"], ["--json"], ["--threshold", "nan"], ["--threshold", "0.9"], ["--out", "."]])


def _run(argv: list[str], data: Path) -> None:
    before = data.read_bytes()
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse's usage errors
            code = exit_.code
    assert code in (0, 2, 3), (argv, stderr.getvalue())
    assert "Traceback" not in stderr.getvalue()
    assert data.read_bytes() == before


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(content=files, command=st.sampled_from([["show"], ["format", "infer"], ["audit"]]), extra=flags)
def test_reading_commands_never_crash_on_any_file(content: bytes, command: list[str], extra: list[str]) -> None:
    if "--threshold" in extra and command != ["format", "infer"]:
        extra = []
    if extra == ["--out", "."] and command == ["show"]:
        extra = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.jsonl"
        data.write_bytes(content)
        _run([*command, str(data), *extra], data)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    content=files,
    amount=st.sampled_from([["--count", "1"], ["--ratio", "nan"], ["--ratio", "inf"], ["--count", "-3"], []]),
    out_is_input=st.booleans(),
)
def test_mix_never_crashes_and_never_overwrites_its_input(
    content: bytes, amount: list[str], out_is_input: bool
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.jsonl"
        data.write_bytes(content)
        out = data if out_is_input else Path(tmp) / "out.jsonl"
        _run(["mix", str(data), "--method", "generic", *amount, "--out", str(out)], data)
