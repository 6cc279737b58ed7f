"""The service on a real PostgreSQL server (a throwaway cluster made with initdb/pg_ctl) and on SQLite:
exclusive job claims under concurrent workers, take-over of an expired lease, and (slow) the whole
API suite of `test_service_api.py` re-run against PostgreSQL."""

from __future__ import annotations

import threading
import time
import types

import pytest

from _service import postgres_cluster, service_policy, uvicorn_server

pytest.importorskip("sqlalchemy")
pytest.importorskip("psycopg")

from mimicry.service.auth import create_key  # noqa: E402
from mimicry.service.db import Job, new_id, now  # noqa: E402
from mimicry.service.policy import Policy  # noqa: E402
from mimicry.service.runtime import Runtime  # noqa: E402
from mimicry.service.worker import claim  # noqa: E402


@pytest.fixture(scope="module")
def pg_url():
    with postgres_cluster() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def runtime(request, tmp_path):
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else f"sqlite:///{tmp_path / 's.db'}"
    if request.param == "postgresql":
        url = fresh_database(url)
    return Runtime.open(Policy.model_validate({"worker": {"lease_seconds": 30}}), url, tmp_path / "home")


def fresh_database(url: str) -> str:
    """A new, empty database on the shared test cluster."""
    from sqlalchemy import create_engine, text

    name = new_id("db").replace("-", "_")
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return url.rsplit("/", 1)[0] + "/" + name


def _queue(rt: Runtime, n: int) -> list[str]:
    _, org = create_key(rt.db, f"org-{new_id('t')}")
    ids = []
    with rt.db.session.begin() as s:
        for _ in range(n):
            job = Job(
                id=new_id("ftjob"),
                org_id=org,
                model="m",
                training_file="file-x",
                hyperparameters={},
                seed=0,
                status="queued",
                created_at=now(),
            )
            s.add(job)
            ids.append(job.id)
    return ids


def test_concurrent_workers_claim_each_job_exactly_once(runtime):
    ids = _queue(runtime, 30)
    claimed: list[str] = []
    lock = threading.Lock()

    def work(name: str) -> None:
        while (job := claim(runtime, name)) is not None:
            with lock:
                claimed.append(job.id)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(claimed) == sorted(ids)
    with runtime.db.session() as s:
        assert {j.attempts for j in s.query(Job)} == {1}


def test_an_expired_lease_is_taken_over(runtime):
    (job_id,) = _queue(runtime, 1)
    first = claim(runtime, "dead-worker")
    assert first.id == job_id and claim(runtime, "other") is None  # the lease holds
    with runtime.db.session.begin() as s:
        s.get(Job, job_id).lease_expires_at = time.time() - 1
    taken = claim(runtime, "other")
    assert taken.id == job_id and taken.lease_owner == "other" and taken.attempts == 2


def test_the_rate_limit_is_shared_by_api_processes_and_never_overrun(runtime):
    """Eight threads on four limiters (four API processes' worth) hammer one key: exactly the limit
    passes in the minute; a limiter of a fresh process sees the same count."""
    from mimicry.service.auth import RateLimiter

    limiters = [RateLimiter(runtime.db, 25) for _ in range(4)]
    allowed: list[bool] = []
    lock = threading.Lock()

    def hammer(limiter: RateLimiter) -> None:
        for _ in range(10):
            ok, wait = limiter.allow("key-shared")
            assert ok or wait > 0
            with lock:
                allowed.append(ok)

    minute = int(time.time() // 60)
    threads = [threading.Thread(target=hammer, args=(limiters[i % 4],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    same_minute = int(time.time() // 60) == minute  # else the last minute's count decays by a fraction
    assert len(allowed) == 80 and (sum(allowed) == 25 if same_minute else 25 <= sum(allowed) <= 26)
    assert RateLimiter(runtime.db, 25).allow("key-shared")[0] is False
    assert RateLimiter(runtime.db, 25).allow("key-other")[0] is True


def test_migrations_record_the_schema_version(runtime):
    from mimicry.service.db import MIGRATIONS, migrate

    assert migrate(runtime.db.engine) == len(MIGRATIONS)
    assert {
        "jobs",
        "files",
        "job_events",
        "checkpoints",
        "models",
        "api_keys",
        "schema_version",
        "gate_baselines",
        "rate_windows",
    } <= set(runtime.db.tables())


# The API suite of test_service_api.py, re-run against PostgreSQL (slow: it trains three tiny jobs).
import test_service_api as _api  # noqa: E402
from test_service_api import Service, aoa_bytes, released  # noqa: E402,F401

for _name in dir(_api):
    if _name.startswith("test_"):
        _f = getattr(_api, _name)
        _copy = types.FunctionType(_f.__code__, _f.__globals__, _name, _f.__defaults__, _f.__closure__)
        globals()[_name] = pytest.mark.slow(_copy)


@pytest.fixture(scope="module")
def service(tmp_path_factory, smollm2_tokenizer, make_tiny_llama, one_torch_thread, pg_url):
    root = tmp_path_factory.mktemp("service-pg")
    model = make_tiny_llama(smollm2_tokenizer, root / "tiny")
    rt = Runtime.open(service_policy(model), fresh_database(pg_url), root / "home")
    keys = [create_key(rt.db, "org-a")[0], create_key(rt.db, "org-b")[0]]
    with uvicorn_server(_api.create_app(rt)) as url:
        yield Service(rt, url, keys)
