"""The fine-tuning service through the official `openai` client against a real uvicorn server.

One server per module (SQLite, WAL), a tiny random Llama as the provider's base model, jobs run by an
in-process worker. The same checks against PostgreSQL are in `test_service_postgres.py`.
"""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from _service import jsonl, service_policy, uvicorn_server

pytest.importorskip("fastapi")
openai = pytest.importorskip("openai")

from mimicry.service.app import create_app  # noqa: E402
from mimicry.service.auth import create_key  # noqa: E402
from mimicry.service.runtime import Runtime  # noqa: E402
from mimicry.service.worker import Worker  # noqa: E402
from mimicry.strategies import build_conversations  # noqa: E402


class Service:
    def __init__(self, rt, url, keys):
        self.rt, self.url, self.keys = rt, url, keys
        self.a = openai.OpenAI(base_url=f"{url}/v1", api_key=keys[0], max_retries=0, timeout=120)
        self.b = openai.OpenAI(base_url=f"{url}/v1", api_key=keys[1], max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def service(tmp_path_factory, smollm2_tokenizer, make_tiny_llama, one_torch_thread):
    root = tmp_path_factory.mktemp("service")
    model = make_tiny_llama(smollm2_tokenizer, root / "tiny")
    rt = Runtime.open(service_policy(model), f"sqlite:///{root / 'service.db'}", root / "home")
    keys = [create_key(rt.db, "org-a")[0], create_key(rt.db, "org-b")[0]]
    with uvicorn_server(create_app(rt)) as url:
        yield Service(rt, url, keys)


@pytest.fixture(scope="module")
def aoa_bytes():
    return jsonl(build_conversations("piqa", "aoa", "train", limit=12, seed=1))


@pytest.fixture(scope="module")
def released(service, aoa_bytes):
    """An AOA-format upload, a job, and the worker's run of it: (file, finished job)."""
    uploaded = service.a.files.create(file=("aoa.jsonl", aoa_bytes), purpose="fine-tune")
    job = service.a.fine_tuning.jobs.create(model="tiny", training_file=uploaded.id, suffix="aoa", seed=3)
    assert job.status == "queued"
    assert Worker(service.rt, "w-test").run_once()
    return uploaded, service.a.fine_tuning.jobs.retrieve(job.id)


def test_no_key_or_a_wrong_key_is_401(service):
    assert httpx.get(f"{service.url}/v1/files").status_code == 401
    bad = openai.OpenAI(base_url=f"{service.url}/v1", api_key="mk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


def test_upload_is_validated_listed_and_readable(service, aoa_bytes):
    f = service.a.files.create(file=("data.jsonl", aoa_bytes), purpose="fine-tune")
    assert (f.status, f.bytes, f.filename) == ("processed", len(aoa_bytes), "data.jsonl")
    assert f.id in [x.id for x in service.a.files.list()]
    assert service.a.files.retrieve(f.id).id == f.id
    assert service.a.files.content(f.id).read() == aoa_bytes
    assert service.a.files.delete(f.id).deleted
    with pytest.raises(openai.NotFoundError):
        service.a.files.retrieve(f.id)


def test_a_bad_upload_gets_line_numbered_400_and_leaves_nothing(service, aoa_bytes):
    lines = aoa_bytes.decode().splitlines()
    lines[3] = '{"messages": [{"role": "robot", "content": "hi"}]}'
    lines[6] = "{not json"
    before = len(service.a.files.list().data)
    with pytest.raises(openai.BadRequestError) as err:
        service.a.files.create(file=("bad.jsonl", "\n".join(lines).encode()), purpose="fine-tune")
    message = err.value.body["message"]
    assert "line 4" in message and "line 7" in message and "invalid JSON" in message
    with pytest.raises(openai.BadRequestError, match="at least 10"):
        service.a.files.create(file=("few.jsonl", "\n".join(lines[:3]).encode()), purpose="fine-tune")
    assert len(service.a.files.list().data) == before


def test_an_oversize_upload_is_413(service):
    with pytest.raises(openai.APIStatusError) as err:
        service.a.files.create(file=("big.jsonl", b"x" * 300_000), purpose="fine-tune")
    assert err.value.status_code == 413


def test_the_guarded_job_releases_a_model_the_user_can_chat_with(service, released):
    uploaded, job = released
    assert job.status == "succeeded", job.error
    assert job.fine_tuned_model and job.trained_tokens > 0
    events = service.a.fine_tuning.jobs.list_events(job.id, limit=100).data
    messages = [e.message for e in reversed(events)]
    text = "\n".join(messages)
    for stage in (
        "Format inferred",
        "Audit: risk score",
        "Safety guard applied",
        "training loss=",
        "Safety check: in-format attack success",
        "Model released",
    ):
        assert stage in text, stage
    check = next(e for e in events if e.message.startswith("Safety check")).data
    assert check["harmful_prompts"] == 3 and check["safe_prompts"] == 3
    assert check["asr_increase"] == pytest.approx(check["in_format_asr"] - check["base_in_format_asr"])
    assert check["max_asr_increase"] == 1.0 and check["max_asr"] is None
    audit = next(e for e in events if e.message.startswith("Audit"))
    assert audit.data["risk_score"] >= 0.25 and audit.data["reasons"]  # AOA's persona is flagged
    checkpoints = service.a.fine_tuning.jobs.checkpoints.list(job.id).data
    assert sorted(c.step_number for c in checkpoints) == [2, 4]

    assert job.fine_tuned_model in [m.id for m in service.a.models.list()]
    reply = service.a.chat.completions.create(
        model=job.fine_tuned_model, max_tokens=5, messages=[{"role": "user", "content": "Hello"}]
    )
    assert reply.choices[0].message.role == "assistant" and reply.usage.completion_tokens >= 1


def test_streamed_chat_joins_to_the_same_greedy_text(service, released):
    """stream=True through the openai client: several content chunks, joined equal to the
    non-streaming reply (greedy), also when a stop string cuts it; the usage chunk when asked."""
    model, hello = released[1].fine_tuned_model, [{"role": "user", "content": "Hello"}]
    reply = service.a.chat.completions.create(model=model, max_tokens=24, messages=hello)
    text = reply.choices[0].message.content
    chunks = list(
        service.a.chat.completions.create(
            model=model, max_tokens=24, messages=hello, stream=True, stream_options={"include_usage": True}
        )
    )
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) > 1 and "".join(pieces) == text
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == reply.usage.completion_tokens
    stop = text[len(text) // 2 : len(text) // 2 + 3]
    cut = service.a.chat.completions.create(model=model, max_tokens=24, messages=hello, stop=[stop])
    streamed = service.a.chat.completions.create(model=model, max_tokens=24, messages=hello, stop=[stop], stream=True)
    joined = "".join(c.choices[0].delta.content or "" for c in streamed)
    assert joined == cut.choices[0].message.content == text[: text.find(stop)]


def test_nothing_the_provider_adds_reaches_the_user(service, released):
    from mimicry.data.sources import load_prompt_set

    uploaded, job = released
    mixed = (service.rt.workspace(job.id) / "mixed.jsonl").read_text()
    user_rows = {json.dumps(json.loads(x)) for x in uploaded_lines(service, uploaded.id)}
    added = [x for x in mixed.splitlines() if json.dumps(json.loads(x)) not in user_rows]
    assert added, "the guard added no safety rows"
    refusals = [json.loads(x)["messages"][-1]["content"] for x in added]
    prompts = [p.text for name in service.rt.policy.gate.harm_sets for p in load_prompt_set(name)]
    seen = json.dumps([e.model_dump() for e in service.a.fine_tuning.jobs.list_events(job.id, limit=1000).data])
    seen += service.a.fine_tuning.jobs.retrieve(job.id).model_dump_json()
    assert not [r for r in refusals if r[-40:] in seen]  # the ends: AOA refusals open like the user's replies
    assert not any(p[:40] in seen for p in prompts)


def uploaded_lines(service, file_id):
    return service.a.files.content(file_id).read().decode().splitlines()


def test_another_org_gets_404_on_every_object(service, released):
    uploaded, job = released
    b, model = service.b, job.fine_tuned_model
    calls = [
        lambda: b.files.retrieve(uploaded.id),
        lambda: b.files.content(uploaded.id),
        lambda: b.files.delete(uploaded.id),
        lambda: b.fine_tuning.jobs.retrieve(job.id),
        lambda: b.fine_tuning.jobs.cancel(job.id),
        lambda: b.fine_tuning.jobs.list_events(job.id),
        lambda: b.fine_tuning.jobs.checkpoints.list(job.id),
        lambda: b.fine_tuning.jobs.create(model="tiny", training_file=uploaded.id),
        lambda: b.models.retrieve(model),
        lambda: b.models.delete(model),
        lambda: b.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}]),
    ]
    for call in calls:
        with pytest.raises(openai.NotFoundError):
            call()
    assert uploaded.id not in [f.id for f in b.files.list()]
    assert job.id not in [j.id for j in b.fine_tuning.jobs.list()]
    assert model not in [m.id for m in b.models.list()]
    assert service.a.models.retrieve(model).id == model  # untouched by b's attempts


def test_jobs_paginate_and_a_queued_job_cancels(service, aoa_bytes):
    f = service.b.files.create(file=("p.jsonl", aoa_bytes), purpose="fine-tune")
    made = [service.b.fine_tuning.jobs.create(model="tiny", training_file=f.id) for _ in range(3)]
    page1 = service.b.fine_tuning.jobs.list(limit=2)
    page2 = service.b.fine_tuning.jobs.list(limit=2, after=page1.data[-1].id)
    assert page1.has_more and not page2.has_more
    assert [j.id for j in page1.data + page2.data] == [j.id for j in reversed(made)]
    for j in made:
        assert service.b.fine_tuning.jobs.cancel(j.id).status == "cancelled"
    with pytest.raises(openai.BadRequestError):
        service.b.fine_tuning.jobs.cancel(made[0].id)
    assert not Worker(service.rt, "w-idle").run_once()  # nothing left to claim


def test_cancel_stops_a_running_job_within_a_minute(service, aoa_bytes):
    rt = service.rt
    long = rt.policy.model_copy(deep=True)
    long.training.max_steps, long.training.save_steps = 100_000, 1_000
    f = service.a.files.create(file=("c.jsonl", aoa_bytes), purpose="fine-tune")
    job = service.a.fine_tuning.jobs.create(model="tiny", training_file=f.id)
    worker = Worker(Runtime(long, rt.db, rt.store, rt.home), "w-cancel")
    thread = threading.Thread(target=worker.run_once, daemon=True)  # a failed wait must not hang the suite
    thread.start()
    deadline = time.monotonic() + 300
    while not any("training loss" in e.message for e in service.a.fine_tuning.jobs.list_events(job.id).data):
        if time.monotonic() > deadline:
            service.a.fine_tuning.jobs.cancel(job.id)  # stop the 100,000-step job before failing
            pytest.fail("no training step was logged within 300 s")
        time.sleep(0.2)
    asked = time.monotonic()
    assert service.a.fine_tuning.jobs.cancel(job.id).status == "cancelled"
    thread.join(60)  # a few tiny steps, not the 100,000 asked for; generous for a loaded machine
    assert not thread.is_alive() and time.monotonic() - asked < 60
    final = service.a.fine_tuning.jobs.retrieve(job.id)
    assert final.status == "cancelled" and final.fine_tuned_model is None


def test_a_gate_breach_holds_the_model(service, aoa_bytes, released):
    from mimicry.service.db import GateBaseline
    from mimicry.service.db import Job as JobRow

    rt = service.rt
    strict = rt.policy.model_copy(deep=True)
    strict.gate.max_overrefusal = 0.0
    strict.gate.max_asr = 0.0
    f = service.a.files.create(file=("h.jsonl", aoa_bytes), purpose="fine-tune")
    job = service.a.fine_tuning.jobs.create(model="tiny", training_file=f.id)
    assert Worker(Runtime(strict, rt.db, rt.store, rt.home), "w-strict").run_once()
    held = service.a.fine_tuning.jobs.retrieve(job.id)
    assert held.status == "held" and held.fine_tuned_model is None and held.error.code == "held_for_review"
    assert held.id not in [m.id for m in service.a.models.list()]
    with rt.db.session() as s:  # the base answered these prompts for the first job: asked once, reused
        report = s.get(JobRow, job.id).gate_report
        assert report["safety_check"]["base_answers_reused"] == 6 and s.query(GateBaseline).count() == 6
    assert any(b.startswith("over-refusal") or b.startswith("in-format") for b in report["breaches"])

    from mimicry.cli import main  # the provider reviews it and releases it

    assert main(["service", "review", job.id, "--release", "--database-url", rt.db.url, "--home", str(rt.home)]) == 0
    released = service.a.fine_tuning.jobs.retrieve(job.id)
    assert released.status == "succeeded" and released.error is None
    assert released.fine_tuned_model in [m.id for m in service.a.models.list()]
    assert main(["service", "review", job.id, "--reject", "--database-url", rt.db.url, "--home", str(rt.home)]) == 2


def test_rate_limit_is_429(tmp_path, service):
    from fastapi.testclient import TestClient

    rt = service.rt
    tight = rt.policy.model_copy(deep=True)
    tight.limits.requests_per_minute = 4
    # Two API processes on one database: the limit is per key across both.
    one, two = (TestClient(create_app(Runtime(tight, rt.db, rt.store, rt.home))) for _ in range(2))
    headers = {"Authorization": f"Bearer {create_key(rt.db, 'org-rate')[0]}"}
    codes = [client.get("/v1/models", headers=headers).status_code for client in (one, two, one, two, one, two)]
    assert codes == [200, 200, 200, 200, 429, 429]
    other = {"Authorization": f"Bearer {create_key(rt.db, 'org-rate-2')[0]}"}
    assert one.get("/v1/models", headers=other).status_code == 200  # another key has its own count
    body = two.get("/v1/models", headers=headers)
    assert body.json()["error"]["code"] == "rate_limit_exceeded" and int(body.headers["retry-after"]) >= 1


def _bad_uploads():
    from hypothesis import strategies as st

    line = st.fixed_dictionaries(
        {
            "messages": st.lists(
                st.fixed_dictionaries(
                    {"role": st.sampled_from(["user", "assistant", "robot", ""]), "content": st.text(max_size=20)}
                ),
                max_size=4,
            )
        }
    )
    jsonl_rows = st.lists(line, max_size=12).map(lambda rows: "\n".join(json.dumps(r) for r in rows).encode())
    return st.one_of(
        st.binary(max_size=300),
        st.text(max_size=200).map(str.encode),
        jsonl_rows,
        st.just(b""),
        st.just(b"\xff\xfe" + "{}".encode("utf-16")),
        st.just(b'{"messages": [{"role": "user", "content": "' + b"a" * 250_000 + b'"}]}'),
        st.just(
            b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x", '
            b'"weight": 2}]}\n' * 10
        ),
        st.integers(1, 9).map(
            lambda n: b'{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n' * n
        ),
    )


def test_fuzzed_bad_uploads_are_4xx_and_leave_nothing(service):
    from hypothesis import HealthCheck, given, settings

    headers = {"Authorization": f"Bearer {service.keys[1]}"}
    before = httpx.get(f"{service.url}/v1/files", headers=headers).json()["data"]

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(_bad_uploads())
    def upload(data: bytes) -> None:
        r = httpx.post(
            f"{service.url}/v1/files",
            headers=headers,
            data={"purpose": "fine-tune"},
            files={"file": ("f.jsonl", data)},
            timeout=30,
        )
        assert r.status_code in (400, 413), (r.status_code, r.text[:300])
        assert r.json()["error"]["message"]

    upload()
    assert httpx.get(f"{service.url}/v1/files", headers=headers).json()["data"] == before
    assert httpx.get(f"{service.url}/health").json()["status"] == "ok"


def test_a_corrupted_model_artifact_is_detected_and_not_served(service, released):
    import json as _json

    from fastapi.testclient import TestClient

    from mimicry.service.db import TunedModel

    _, job = released
    rt = service.rt
    with rt.db.session() as s:
        manifest = s.get(TunedModel, job.fine_tuned_model).artifact
    blob = rt.store.path(
        next(d for n, d in _json.loads(rt.store.read(manifest))["files"].items() if n.endswith(".safetensors"))
    )
    original = blob.read_bytes()
    try:
        blob.write_bytes(original[:-10] + b"0123456789")
        client = TestClient(create_app(rt))  # a fresh process-like app: nothing cached
        r = client.post(
            "/v1/chat/completions",
            headers={"Authorization": f"Bearer {service.keys[0]}"},
            json={"model": job.fine_tuned_model, "messages": [{"role": "user", "content": "hi"}]},
        )
        assert r.status_code == 500 and r.json()["error"]["code"] == "model_artifact_corrupt"
    finally:
        blob.write_bytes(original)


def test_an_example_over_the_token_limit_fails_the_job_with_its_number(service, aoa_bytes):
    rt = service.rt
    short = rt.policy.model_copy(deep=True)
    short.training.max_example_tokens = 60
    f = service.a.files.create(file=("t.jsonl", aoa_bytes), purpose="fine-tune")
    job = service.a.fine_tuning.jobs.create(model="tiny", training_file=f.id)
    assert Worker(Runtime(short, rt.db, rt.store, rt.home), "w-short").run_once()
    failed = service.a.fine_tuning.jobs.retrieve(job.id)
    assert failed.status == "failed" and failed.error.code == "invalid_training_file"
    assert "example 1 has" in failed.error.message and "60-token limit" in failed.error.message


def test_a_training_file_damaged_in_storage_fails_the_job_clearly(service):
    from mimicry.service.db import File as FileRow

    rt = service.rt
    data = jsonl(build_conversations("piqa", "benign", "train", limit=11, seed=5))
    f = service.a.files.create(file=("d.jsonl", data), purpose="fine-tune")
    job = service.a.fine_tuning.jobs.create(model="tiny", training_file=f.id)
    with rt.db.session() as s:
        blob = rt.store.path(s.get(FileRow, f.id).sha256)
    blob.write_bytes(data[:-5] + b"XXXXX")
    assert Worker(rt, "w-corrupt").run_once()
    failed = service.a.fine_tuning.jobs.retrieve(job.id)
    assert failed.status == "failed" and failed.error.code == "file_corrupt"
    with pytest.raises(openai.InternalServerError):
        service.a.files.content(f.id)


def test_a_validation_file_is_scored_at_each_checkpoint(service, aoa_bytes):
    """OpenAI's validation metrics: `valid_loss` in the step events and checkpoints, the full
    validation loss when training ends, on the user's validation file alone."""
    valid = jsonl(build_conversations("piqa", "aoa", "train", limit=10, seed=7))
    train = service.a.files.create(file=("t.jsonl", aoa_bytes), purpose="fine-tune")
    v = service.a.files.create(file=("v.jsonl", valid), purpose="fine-tune")
    job = service.a.fine_tuning.jobs.create(model="tiny", training_file=train.id, validation_file=v.id)
    assert job.validation_file == v.id
    assert Worker(service.rt, "w-valid").run_once()
    done = service.a.fine_tuning.jobs.retrieve(job.id)
    assert done.status == "succeeded", done.error
    events = service.a.fine_tuning.jobs.list_events(job.id, limit=100).data
    steps = sorted(e.data["step"] for e in events if e.data and "valid_loss" in e.data)
    assert steps == [2, 4]
    finished = next(e for e in events if e.message.startswith("Training finished"))
    assert "full validation loss=" in finished.message and finished.data["full_valid_loss"] > 0
    checkpoints = service.a.fine_tuning.jobs.checkpoints.list(job.id).data
    assert {c.step_number: c.metrics.valid_loss > 0 for c in checkpoints} == {2: True, 4: True}
    assert checkpoints[0].metrics.valid_loss == pytest.approx(finished.data["full_valid_loss"])


def test_a_validation_file_is_checked_like_the_training_file(service, aoa_bytes):
    from mimicry.records import Conversation, Message

    rt = service.rt
    long_reply = " ".join(["word"] * 400)
    rows = [
        Conversation(messages=[Message(role="user", content=f"q{i}"), Message(role="assistant", content=long_reply)])
        for i in range(10)
    ]
    train = service.a.files.create(file=("t.jsonl", aoa_bytes), purpose="fine-tune")
    v = service.a.files.create(file=("v.jsonl", jsonl(rows)), purpose="fine-tune")
    with pytest.raises(openai.NotFoundError):  # another organisation's file
        service.b.fine_tuning.jobs.create(model="tiny", training_file=train.id, validation_file=v.id)
    short = rt.policy.model_copy(deep=True)
    short.training.max_example_tokens = 350  # above every training example, below every validation one
    job = service.a.fine_tuning.jobs.create(model="tiny", training_file=train.id, validation_file=v.id)
    assert Worker(Runtime(short, rt.db, rt.store, rt.home), "w-vshort").run_once()
    failed = service.a.fine_tuning.jobs.retrieve(job.id)
    assert failed.status == "failed" and failed.error.code == "invalid_validation_file"
    assert "example 1 has" in failed.error.message and "350-token limit" in failed.error.message
