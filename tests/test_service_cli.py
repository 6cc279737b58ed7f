"""`mimicry service keys create` and the policy file, through the CLI entry point."""

from __future__ import annotations

import sqlite3

import pytest

pytest.importorskip("sqlalchemy")

from mimicry.cli import main  # noqa: E402


def test_keys_are_shown_once_and_stored_hashed(tmp_path, capsys):
    db = tmp_path / "s.db"
    assert main(["service", "keys", "create", "--org", "acme", "--database-url", f"sqlite:///{db}"]) == 0
    key = next(w for w in capsys.readouterr().out.split() if w.startswith("mk-"))
    assert main(["keys", "create", "--org", "acme", "--database-url", f"sqlite:///{db}"]) == 0
    with sqlite3.connect(db) as conn:
        stored = conn.execute("SELECT key_hash FROM api_keys").fetchall()
        orgs = conn.execute("SELECT name FROM orgs").fetchall()
    assert len(stored) == 2 and orgs == [("acme",)]
    assert all(key not in h for (h,) in stored) and all(len(h) == 64 for (h,) in stored)


def test_a_policy_with_an_unknown_key_is_refused_with_the_valid_ones(tmp_path, capsys):
    policy = tmp_path / "policy.yaml"
    policy.write_text("gate:\n  max_asrr: 0.2\nmitigation:\n  method: mimic\n")
    code = main(["worker", "--policy", str(policy), "--database-url", f"sqlite:///{tmp_path / 's.db'}"])
    err = capsys.readouterr().err
    assert code == 2 and "gate.max_asrr" in err and "max_asr" in err and "Traceback" not in err
    policy.write_text("mitigation:\n  method: mimik\n")
    assert main(["serve", "--policy", str(policy)]) == 2
    assert "mimic" in capsys.readouterr().err


def test_the_gate_judge_is_a_short_string_or_a_spec_checked_when_the_policy_loads(tmp_path, capsys):
    from mimicry.service.policy import load_policy

    policy = tmp_path / "policy.yaml"
    policy.write_text("gate:\n  judge: {name: keyword, window: 300}\n")
    assert load_policy(policy).gate.judge.judge_id == "keyword:300"
    policy.write_text("gate:\n  judge: keywrd\n")
    assert main(["serve", "--policy", str(policy)]) == 2
    assert "Did you mean 'keyword'" in capsys.readouterr().err
