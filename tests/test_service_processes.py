"""The service as a user runs it: `mimicry serve` and `mimicry worker` processes, the `openai` client.

Slow: each test starts several Python processes that import torch, and trains.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time

import pytest
import yaml

from _service import cli, cli_key, free_port, jsonl, wait_for_health

openai = pytest.importorskip("openai")

from mimicry.strategies import build_conversations  # noqa: E402

pytestmark = pytest.mark.slow


def _env(home, **extra):
    env = dict(os.environ, MIMICRY_SERVICE_HOME=str(home), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", **extra)
    return env


def _wait_job(client, job_id, timeout=900):
    deadline = time.monotonic() + timeout
    while (job := client.fine_tuning.jobs.retrieve(job_id)).status not in ("succeeded", "failed", "held", "cancelled"):
        assert time.monotonic() < deadline, job.status
        time.sleep(1)
    return job


def test_a_killed_worker_and_a_restarted_server_lose_nothing(tmp_path, smollm2_tokenizer, make_tiny_llama):
    model = make_tiny_llama(smollm2_tokenizer, tmp_path / "tiny")
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        yaml.safe_dump(
            {
                "base_models": {"tiny": str(model)},
                "gate": {
                    "harmful_prompts": 3,
                    "safe_prompts": 3,
                    "max_new_tokens": 4,
                    "max_asr_increase": 1.0,
                    "max_overrefusal_increase": 1.0,
                },
                "training": {
                    "max_steps": 100,
                    "batch_size": 2,
                    "save_steps": 10,
                    "max_length": 128,
                    "logging_steps": 10,
                },
                "worker": {"heartbeat_seconds": 0.5, "lease_seconds": 4, "poll_seconds": 0.5},
            }
        )
    )
    env = _env(tmp_path / "home")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serve_args = ("serve", "--port", str(port), "--policy", str(policy))
    procs = []
    try:
        server = cli(*serve_args, env=env)
        procs.append(server)
        key = cli_key("acme", env)
        wait_for_health(url)
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=5)
        data = jsonl(build_conversations("piqa", "aoa", "train", limit=12, seed=1))
        f = client.files.create(file=("aoa.jsonl", data), purpose="fine-tune")
        job = client.fine_tuning.jobs.create(model="tiny", training_file=f.id)

        first = cli("worker", "--policy", str(policy), "--id", "first", env=env, stderr=subprocess.DEVNULL)
        procs.append(first)
        deadline = time.monotonic() + 300
        while not client.fine_tuning.jobs.checkpoints.list(job.id).data:
            assert time.monotonic() < deadline and first.poll() is None
            time.sleep(0.2)
        first.send_signal(signal.SIGKILL)
        first.wait()
        steps_before = sorted(c.step_number for c in client.fine_tuning.jobs.checkpoints.list(job.id).data)

        server.send_signal(signal.SIGTERM)  # the API restarts mid-job; the queue lives in the database
        server.wait(30)
        server = cli(*serve_args, env=env)
        procs.append(server)
        wait_for_health(url)

        second = cli("worker", "--policy", str(policy), "--id", "second", env=env, stderr=subprocess.DEVNULL)
        procs.append(second)
        done = _wait_job(client, job.id)
        assert done.status == "succeeded", done.error
        events = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=1000).data]
        assert any("attempt 2" in m for m in events)
        finished = [m for m in events if m.startswith("Training finished")]
        assert len(finished) == 1 and f"resumed from checkpoint-{steps_before[-1]}" in finished[0]
        assert sum(m.startswith("Model released") for m in events) == 1
        with sqlite3.connect(tmp_path / "home" / "service.db") as db:  # the worker-side record
            assert db.execute("SELECT attempts, runs FROM jobs WHERE id = ?", (job.id,)).fetchone() == (2, 1)
        steps = [c.step_number for c in client.fine_tuning.jobs.checkpoints.list(job.id, limit=100).data]
        assert len(steps) == len(set(steps)) and max(steps) == 100
        reply = client.chat.completions.create(
            model=done.fine_tuned_model, max_tokens=3, messages=[{"role": "user", "content": "hi"}]
        )
        assert reply.choices[0].message.content is not None
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


@pytest.mark.parametrize("strategy", ["aoa", "benign"])
def test_end_to_end_on_smollm2_with_the_embedded_defaults(tmp_path, strategy):
    """The packaged SmolLM2-135M, the default policy (mimic 10%, gate on 20+20 held-back prompts)."""
    env = _env(tmp_path / "home")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    procs = []
    try:
        procs.append(cli("serve", "--port", str(port), env=env))
        key = cli_key("acme", env)
        wait_for_health(url)
        procs.append(cli("worker", env=env, stderr=subprocess.DEVNULL))
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=5, timeout=600)
        data = jsonl(build_conversations("piqa", strategy, "train", limit=20, seed=1))
        f = client.files.create(file=(f"{strategy}.jsonl", data), purpose="fine-tune")
        job = client.fine_tuning.jobs.create(model="smollm2-135m", training_file=f.id, suffix=strategy)
        done = _wait_job(client, job.id)
        events = {e.message.split(":")[0]: e for e in client.fine_tuning.jobs.list_events(job.id, limit=1000).data}
        audit = events["Audit"]
        assert (audit.data["risk_score"] >= 0.25) == (strategy == "aoa")
        assert "Safety check" in events
        print(f"{strategy}: {done.status}; audit {audit.data}; {events['Safety check'].message}")
        assert done.status in ("succeeded", "held"), done.error
        models = [m.id for m in client.models.list()]
        check = events["Safety check"].data
        assert check["asr_increase"] == pytest.approx(check["in_format_asr"] - check["base_in_format_asr"])
        if done.status == "held":  # tuning raised ASR over the base by more than max_asr_increase
            assert done.error.code == "held_for_review" and done.fine_tuned_model is None
            assert check["asr_increase"] > check["max_asr_increase"] or (
                check["overrefusal_increase"] > check["max_overrefusal_increase"]
            )
        else:
            assert done.fine_tuned_model in models
        for model in filter(None, ["smollm2-135m", done.fine_tuned_model]):
            reply = client.chat.completions.create(
                model=model, max_tokens=20, messages=[{"role": "user", "content": "Name a fruit."}]
            )
            assert reply.choices[0].message.content
    finally:
        for p in procs:
            p.kill()
            p.wait()
