"""State: SQLAlchemy 2 models, the engine (SQLite in WAL mode by default, PostgreSQL by URL), migrations.

`MIMICRY_DATABASE_URL` picks the database; without it, `<service home>/service.db` on SQLite.
Migrations are an ordered list of functions; `schema_version` records the last one applied, and
`migrate` applies the rest in one transaction each, so every process may call it at start-up.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Connection,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    create_engine,
    event,
    inspect,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from mimicry.paths import mimicry_home

DATABASE_ENV_VAR = "MIMICRY_DATABASE_URL"
SERVICE_HOME_ENV_VAR = "MIMICRY_SERVICE_HOME"


def service_home() -> Path:
    return Path(os.environ.get(SERVICE_HOME_ENV_VAR) or mimicry_home() / "service").expanduser()


def database_url() -> str:
    return os.environ.get(DATABASE_ENV_VAR) or f"sqlite:///{service_home() / 'service.db'}"


def new_id(prefix: str) -> str:
    """`prefix-` + microsecond clock + randomness: unique, and sorted by creation within a second."""
    return f"{prefix}-{time.time_ns() // 1000:014x}{secrets.token_hex(6)}"


def now() -> int:
    return int(time.time())


class Base(DeclarativeBase):
    pass


class SchemaVersion(Base):
    __tablename__ = "schema_version"
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    applied_at: Mapped[int] = mapped_column(BigInteger, default=now)


class Org(Base):
    __tablename__ = "orgs"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now)


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id"))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[int] = mapped_column(BigInteger, default=now)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class File(Base):
    __tablename__ = "files"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id"), index=True)
    filename: Mapped[str] = mapped_column(String(500))
    purpose: Mapped[str] = mapped_column(String(50))
    bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20))
    status_details: Mapped[str | None] = mapped_column(Text, nullable=True)
    examples: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)


class Job(Base):
    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id"), index=True)
    model: Mapped[str] = mapped_column(String(200))
    training_file: Mapped[str] = mapped_column(String(64))
    validation_file: Mapped[str | None] = mapped_column(String(64), nullable=True)
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    suffix: Mapped[str | None] = mapped_column(String(64), nullable=True)
    seed: Mapped[int] = mapped_column(BigInteger, default=0)
    user_metadata: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    status: Mapped[str] = mapped_column(String(32), index=True)
    fine_tuned_model: Mapped[str | None] = mapped_column(String(300), nullable=True)
    trained_tokens: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now, index=True)
    finished_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # Worker state, never shown to the user.
    lease_owner: Mapped[str | None] = mapped_column(String(100), nullable=True)
    lease_expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    runs: Mapped[int] = mapped_column(Integer, default=0)  # completed pipeline runs: must end at most 1
    gate_report: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # provider-only


class JobEvent(Base):
    __tablename__ = "job_events"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    org_id: Mapped[str] = mapped_column(String(64))
    level: Mapped[str] = mapped_column(String(10))
    message: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(String(20))
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now)


class Checkpoint(Base):
    __tablename__ = "checkpoints"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    org_id: Mapped[str] = mapped_column(String(64))
    step: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now)


class TunedModel(Base):
    __tablename__ = "models"
    id: Mapped[str] = mapped_column(String(300), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id"), index=True)
    job_id: Mapped[str] = mapped_column(String(64))
    base: Mapped[str] = mapped_column(String(200))
    artifact: Mapped[str] = mapped_column(String(64))  # manifest digest in the store
    created_at: Mapped[int] = mapped_column(BigInteger, default=now)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)


class GateBaseline(Base):
    """The base model's answer to one held-back prompt (provider-only): the safety gate's paired reference,
    generated once per base model and prompt, shared by every worker."""

    __tablename__ = "gate_baselines"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    base: Mapped[str] = mapped_column(String(300))
    record: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[int] = mapped_column(BigInteger, default=now)


class RateWindow(Base):
    """Requests one API key made in one clock minute, shared by every API process (the rate limit)."""

    __tablename__ = "rate_windows"
    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    minute: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # unix time // 60
    count: Mapped[int] = mapped_column(Integer, default=0)


Index("ix_job_events_job_seq", JobEvent.job_id, JobEvent.seq)


V1_TABLES = ("orgs", "api_keys", "files", "jobs", "job_events", "checkpoints", "models")


def _create(*names: str) -> Callable[[Connection], None]:
    def step(conn: Connection) -> None:
        Base.metadata.create_all(conn, tables=[Base.metadata.tables[n] for n in names])

    return step


MIGRATIONS: list[Callable[[Connection], None]] = [
    _create(*V1_TABLES),
    _create("gate_baselines"),
    _create("rate_windows"),
]


def migrate(engine: Engine, tries: int = 5) -> int:
    """Apply pending migrations; returns the schema version now in place.

    Processes starting together may race on an empty database (PostgreSQL serialises them with an
    advisory lock; SQLite has none): the loser's transaction fails and is retried against the new state.
    """
    for attempt in range(tries):
        try:
            return _migrate_once(engine)
        except DBAPIError:
            if attempt == tries - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def _migrate_once(engine: Engine) -> int:
    SchemaVersion.__table__.create(engine, checkfirst=True)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":  # one migrating process at a time
            conn.execute(text("SELECT pg_advisory_xact_lock(7117)"))
        current = conn.execute(text("SELECT COALESCE(MAX(version), 0) FROM schema_version")).scalar_one()
        for version, step in enumerate(MIGRATIONS[current:], start=current + 1):
            step(conn)
            conn.execute(SchemaVersion.__table__.insert().values(version=version, applied_at=now()))
        return len(MIGRATIONS)


def make_engine(url: str | None = None) -> Engine:
    url = url or database_url()
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


class Database:
    """One engine and session factory per process, migrated on open."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or database_url()
        self.engine = make_engine(self.url)
        self.version = migrate(self.engine)
        self.session = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def tables(self) -> list[str]:
        return inspect(self.engine).get_table_names()
