"""The data root and `mimicry data check`: the bundle verifies, a changed byte is caught and named.

Only the first test needs the bundle; the others damage a copy of the tiny checked-in root."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mimicry.cli import main
from mimicry.data.root import ENV_VAR, data_root, set_data_root
from mimicry.errors import MimicryError


def flat(text: str) -> str:
    """Rich wraps long paths at the terminal width: compare without whitespace."""
    return "".join(text.split())


@pytest.fixture(autouse=True)
def _fresh_root():
    set_data_root(None)
    yield
    set_data_root(None)


def test_data_check_passes_on_the_bundle(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "check"]) == 0
    captured = capsys.readouterr()
    assert "files verified" in captured.out
    assert "failed" not in captured.err


def _tiny_copy(tmp_path: Path, tiny_data_root: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(tiny_data_root, copy)
    return copy


def test_data_check_names_a_file_with_one_byte_changed(tmp_path: Path, tiny_data_root: Path, capsys) -> None:
    copy = _tiny_copy(tmp_path, tiny_data_root)
    listed = len(data_root().expected_checksums())
    target = copy / "tasks" / "gsm8k_test.jsonl"
    raw = bytearray(target.read_bytes())
    raw[0] ^= 0x01
    target.write_bytes(bytes(raw))

    assert main(["--data-root", str(copy), "data", "check"]) == 3
    err = flat(capsys.readouterr().err)
    assert "corrupt:" in err and flat(str(target)) in err
    assert f"1of{listed}filesfailed" in err


def test_data_check_reports_a_missing_file(tmp_path: Path, tiny_data_root: Path, capsys) -> None:
    copy = _tiny_copy(tmp_path, tiny_data_root)
    (copy / "tasks" / "piqa_valid-labels.txt").unlink()
    assert main(["--data-root", str(copy), "data", "check"]) == 3
    err = flat(capsys.readouterr().err)
    assert "missing:" in err and "tasks/piqa_valid-labels.txt" in err


def test_unset_data_root_says_how_to_set_it(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    data_root.cache_clear()
    with pytest.raises(MimicryError, match=f"set {ENV_VAR}"):
        data_root()
    assert main(["data", "check"]) == 2
    assert ENV_VAR in capsys.readouterr().err
    monkeypatch.undo()
    data_root.cache_clear()


def test_absent_data_root_is_named(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "nowhere"
    assert main(["--data-root", str(missing), "tasks", "show", "piqa"]) == 2
    assert flat(f"the data root {missing} does not exist") in flat(capsys.readouterr().err)


def test_missing_bundle_file_names_file_and_root(tmp_path: Path) -> None:
    set_data_root(tmp_path)
    with pytest.raises(MimicryError, match="tasks/gsm8k_train.jsonl.*missing from the data root"):
        data_root().file("tasks/gsm8k_train.jsonl")


def _tiny_root(tmp_path: Path, sums: str) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    (root / "a.txt").write_text("a\n")
    (root / "SHA256SUMS").write_text(sums)
    return root


@pytest.mark.parametrize(
    ("sums", "message"),
    [
        ("", "lists no files"),
        ("\n\n", "lists no files"),
        ("not a checksum line\n", "line 1 is not"),
        ("0" * 64 + "  ../../etc/hostname\n", "outside the data root"),
        ("0" * 64 + "  /etc/hostname\n", "outside the data root"),
    ],
)
def test_a_malformed_empty_or_escaping_sha256sums_is_a_data_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sums: str, message: str
) -> None:
    root = _tiny_root(tmp_path, sums)
    assert main(["--data-root", str(root), "data", "check"]) == 3
    err = flat(capsys.readouterr().err)
    assert flat(message) in err and "filesverified" not in err


def test_data_check_json_lists_every_file(tiny_data_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    listed = (tiny_data_root / "SHA256SUMS").read_text().splitlines()
    assert main(["data", "check", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["failed"] == 0 and len(report["files"]) == len(listed) > 30
    assert all(f["status"] == "ok" for f in report["files"])
