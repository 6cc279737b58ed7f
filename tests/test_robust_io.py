"""Bad input never costs data and never ends in a traceback (issue 16, items 1 and 2)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mimicry.cli import main
from mimicry.data.jsonl import MAX_DEPTH, BadLine, iter_jsonl
from mimicry.data.outputs import clean_stale_temps, write_outputs
from mimicry.errors import MimicryError
from mimicry.records import read_conversations


def _row(i: int, system: str = "You are a helpful assistant.") -> str:
    return json.dumps(
        {
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": f"What is {i} plus {i}?"},
                {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."},
            ]
        }
    )


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """A BOM, CRLF line ends and one broken line (line 4): what a spreadsheet export looks like."""
    rows = [_row(i) for i in range(12)]
    rows.insert(3, '{"messages": [')
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(rows).encode() + b"\r\n")
    return path


def test_bom_crlf_and_u2028_are_read_and_a_broken_line_is_named(tmp_path: Path, dataset: Path) -> None:
    report = read_conversations(dataset)
    assert len(report.conversations) == 12
    assert [(r.line, r.reason.split(":")[0]) for r in report.rejected] == [(4, "malformed JSON")]

    separator = tmp_path / "sep.jsonl"
    separator.write_text(_row(1, system="line\u2028separator\u2029inside") + "\n", encoding="utf-8")
    (conv,) = read_conversations(separator).conversations
    assert conv.system == "line\u2028separator\u2029inside"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"[" * 100_000 + b"]" * 100_000, f"nested deeper than {MAX_DEPTH}"),
        (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), f"nested deeper than {MAX_DEPTH}"),
        (b'{"a": "\\ud800"}', "lone surrogate"),
        (b'{"a": NaN}', "NaN is not valid JSON"),
        (b'{"a": 1e999}', "out of range"),
        (b'{"a": "caf\xe9"}', "not UTF-8 text (byte 0xe9"),
    ],
)
def test_hostile_lines_are_numbered_rejections(tmp_path: Path, line: bytes, reason: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(_row(0).encode() + b"\n" + line + b"\n")
    values = list(iter_jsonl(path))
    assert isinstance(values[0][1], dict)
    assert values[1][0] == 2 and isinstance(values[1][1], BadLine)
    assert reason in values[1][1].reason


def test_an_oversized_line_is_rejected_by_number(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    path.write_text(_row(0) + "\n" + json.dumps({"x": "y" * 200}) + "\n", encoding="utf-8")
    (_, ok), (lineno, bad) = list(iter_jsonl(path, max_line_bytes=190))
    assert isinstance(ok, dict) and lineno == 2 and "over the 190-byte limit" in bad.reason


@pytest.mark.parametrize(
    ("content", "message"),
    [(bytes(range(256)), "binary file"), ("x".encode("utf-16"), "UTF-16"), (None, "is a directory")],
)
def test_unreadable_files_are_one_clear_error(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "data.jsonl"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    with pytest.raises(MimicryError, match=message):
        read_conversations(path)


COMMANDS = [["format", "infer"], ["audit"], ["show"]]


@pytest.mark.parametrize("command", [*COMMANDS, ["mix"]])
def test_binary_deep_and_markup_inputs_exit_2_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(bytes(range(256)) * 4)
    deep = tmp_path / "deep.jsonl"
    deep.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    markup = tmp_path / "markup.jsonl"
    markup.write_text(json.dumps({"[bold]": 1}) + "\n" + json.dumps({"[red]": 1, **json.loads(_row(1))}) + "\n")
    extra = ["--method", "generic", "--out", str(tmp_path / "out.jsonl")] if command == ["mix"] else []
    for path in (binary, deep, markup):
        before = path.read_bytes()
        code = main([*command, str(path), *extra])
        err = capsys.readouterr().err
        assert code in ((0, 2, 3) if path == markup else (2, 3)), (path.name, err)
        assert "Traceback" not in err and path.read_bytes() == before
    assert "keys: [bold]" in err and "'[red]'" in err


@pytest.mark.parametrize("command", COMMANDS[:2])
def test_a_report_over_its_input_is_refused(dataset: Path, capsys, command: list[str]) -> None:
    before = dataset.read_bytes()
    assert main([*command, str(dataset), "--out", str(dataset)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert dataset.read_bytes() == before


def test_mix_over_its_input_is_refused_even_through_a_link(dataset: Path, capsys) -> None:
    before = dataset.read_bytes()
    link = dataset.with_name("link.jsonl")
    link.symlink_to(dataset)
    for out in (dataset, link):
        assert main(["mix", str(dataset), "--method", "mimic", "--out", str(out)]) == 2
        assert "refusing to overwrite" in capsys.readouterr().err
    assert dataset.read_bytes() == before


def test_mix_reports_rejected_lines_and_strict_refuses_them(tmp_path: Path, dataset: Path, capsys) -> None:
    out = tmp_path / "mixed.jsonl"
    assert main(["mix", str(dataset), "--method", "generic", "--count", "2", "--out", str(out)]) == 0
    report = json.loads(out.with_name("mixed.report.json").read_text())
    assert report["input"]["rejected"] == 1 and report["input"]["rejected_lines"][0]["line"] == 4
    assert len(out.read_text().splitlines()) == 14
    assert "line 4" in capsys.readouterr().err

    strict_out = tmp_path / "strict.jsonl"
    assert main(["mix", str(dataset), "--method", "generic", "--strict", "--out", str(strict_out)]) == 3
    assert not strict_out.exists()


def test_mix_warns_about_unknown_top_level_keys(tmp_path: Path, capsys) -> None:
    path = tmp_path / "keys.jsonl"
    path.write_text("".join(json.dumps({**json.loads(_row(i)), "source": "x"}) + "\n" for i in range(6)))
    assert main(["mix", str(path), "--method", "generic", "--count", "1", "--out", str(tmp_path / "o.jsonl")]) == 0
    assert "unknown top-level keys ignored: 'source' (6 rows)" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flags",
    [["--ratio", "nan"], ["--ratio", "inf"], ["--ratio", "-1"], ["--count", "many"]],
)
def test_mix_amounts_must_be_finite(dataset: Path, tmp_path: Path, flags: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["mix", str(dataset), "--method", "generic", *flags, "--out", str(tmp_path / "o.jsonl")])
    assert exit_info.value.code == 2


@pytest.mark.parametrize("value", ["2", "0.2", "nan", "x"])
def test_threshold_out_of_range_is_a_usage_error(dataset: Path, value: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["format", "infer", str(dataset), "--threshold", value])
    assert exit_info.value.code == 2


def test_out_that_is_a_directory_is_refused(dataset: Path, tmp_path: Path, capsys) -> None:
    assert main(["audit", str(dataset), "--out", str(tmp_path)]) == 2
    assert main(["mix", str(dataset), "--method", "generic", "--out", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_json_output_equals_the_report_file(dataset: Path, tmp_path: Path, capsys) -> None:
    capsys.readouterr()
    out = tmp_path / "audit.json"
    assert main(["audit", str(dataset), "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(out.read_text())


def test_output_set_is_all_or_none_and_keeps_the_file_mode(tmp_path: Path) -> None:
    data, report = tmp_path / "d.jsonl", tmp_path / "d.report.json"
    data.write_text("old\n")
    os.chmod(data, 0o640)

    class Unwritable:
        pass

    with pytest.raises(TypeError):
        write_outputs({data: "new\n", report: Unwritable()})  # type: ignore[dict-item]
    assert data.read_text() == "old\n" and not report.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.jsonl"]

    write_outputs({data: "new\n", report: "{}"})
    assert data.read_text() == "new\n" and report.read_text() == "{}"
    assert data.stat().st_mode & 0o777 == 0o640


def test_temp_files_of_a_killed_writer_are_removed_by_the_next_write(tmp_path: Path) -> None:
    dead = 2**22 + 12345  # above the default pid_max: no such process
    stale = tmp_path / f".out.jsonl.{dead}.abc123.tmp"
    stale.write_text("half")
    mine = tmp_path / f".out.jsonl.{os.getpid()}.abc123.tmp"
    mine.write_text("in progress")
    write_outputs({tmp_path / "out.jsonl": "x\n"})
    assert not stale.exists() and mine.exists()
    assert clean_stale_temps(tmp_path) == []


@pytest.mark.usefixtures("tiny_data_root")  # the child reads MIMICRY_DATA; a listed split, not a carved one
def test_a_build_terminated_while_writing_leaves_no_temp_file(tmp_path: Path) -> None:
    """SIGTERM unwinds like Ctrl-C: the half-written temp file goes, the old output stays."""
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "built.jsonl"
    out.write_text("previous\n")
    # The child's rename hangs, so the signal lands while the temp file exists (this process is untouched).
    child = (
        "import os, sys, time\n"
        "os.replace = lambda *a: time.sleep(60)\n"
        "from mimicry.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    argv = ["build", "--task", "winogrande", "--strategy", "benign", "--limit", "3", "--out", str(out)]
    proc = subprocess.Popen([sys.executable, "-c", child, *argv], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".built.jsonl.*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list(tmp_path.glob(".built.jsonl.*.tmp")), "the build never reached its write"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 130, proc.stderr.read()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["built.jsonl"]
    assert out.read_text() == "previous\n"
