"""`mimicry worker`: claims queued jobs with a lease, renews it by heartbeat, and runs the guard.

Claiming is one atomic step on both databases. On PostgreSQL the candidate row is locked with
`SELECT … FOR UPDATE SKIP LOCKED`, so concurrent workers skip each other's rows instead of waiting;
on SQLite (one writer at a time) a compare-and-set `UPDATE … WHERE status = 'queued' OR lease expired`
either wins the row or changes nothing. A job whose lease expired (its worker died) is claimed like
a queued one and resumes from the last training checkpoint in its workspace; after `max_attempts`
claims it fails as lost. The heartbeat also notices a cancel (the API sets `status = 'cancelled'`)
and stops training within one heartbeat interval. Every final write is conditional on still holding
the lease, so a job completes once even if two workers ever ran it.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from mimicry.console import info, warn
from mimicry.memory import release_memory
from mimicry.service.db import Checkpoint, File, GateBaseline, Job, JobEvent, TunedModel, new_id, now
from mimicry.service.gate import JobContext, JobFailed, Stopped, run_guard
from mimicry.service.runtime import Runtime
from mimicry.service.storage import CorruptArtifact
from mimicry.service.validation import check_fine_tune_file


def add_event(
    rt: Runtime,
    job: Job | Any,
    message: str,
    level: str = "info",
    type: str = "message",
    data: dict[str, Any] | None = None,
) -> None:
    with rt.db.session.begin() as s:
        s.add(
            JobEvent(
                id=new_id("ftevent"),
                job_id=job.id,
                org_id=job.org_id,
                level=level,
                message=message,
                type=type,
                data=data,
            )
        )


class DbBaselineCache:
    """The gate's base-model answers in the database, so every worker measures a base once per prompt."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def get(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        with self.rt.db.session() as s:
            rows = s.scalars(select(GateBaseline).where(GateBaseline.key.in_(list(keys))))
            return {r.key: r.record for r in rows}

    def put(self, base: str, records: dict[str, dict[str, Any]]) -> None:
        """Insert the answers not there yet; a worker that wrote the same keys meanwhile wins the race."""
        try:
            with self.rt.db.session.begin() as s:
                there = set(s.scalars(select(GateBaseline.key).where(GateBaseline.key.in_(list(records)))))
                s.add_all(GateBaseline(key=k, base=base, record=r) for k, r in records.items() if k not in there)
        except IntegrityError:
            pass  # the other worker's rows are answers to the same prompts by the same weights


def _claimable(t: float) -> Any:
    return or_(Job.status == "queued", (Job.status == "running") & (Job.lease_expires_at < t))


def claim(rt: Runtime, worker_id: str) -> Job | None:
    """Take one queued job, or one whose lease expired; None when there is none."""
    lease = rt.policy.worker.lease_seconds
    t = time.time()
    with rt.db.session.begin() as s:
        query = select(Job.id).where(_claimable(t)).order_by(Job.created_at, Job.id).limit(1)
        if rt.db.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        job_id = s.scalar(query)
        if job_id is None:
            return None
        done = s.execute(
            update(Job)
            .where(Job.id == job_id, _claimable(t))
            .values(status="running", lease_owner=worker_id, lease_expires_at=t + lease, attempts=Job.attempts + 1)
        )
        if done.rowcount != 1:
            return None
        return s.get(Job, job_id)


class Heartbeat(threading.Thread):
    """Renews the lease; sets `stop` when the job was cancelled or taken over."""

    def __init__(self, rt: Runtime, job_id: str, worker_id: str) -> None:
        super().__init__(daemon=True)
        self.rt, self.job_id, self.worker_id = rt, job_id, worker_id
        self.stop = threading.Event()
        self.done = threading.Event()

    def beat(self) -> bool:
        with self.rt.db.session.begin() as s:
            res = s.execute(
                update(Job)
                .where(Job.id == self.job_id, Job.lease_owner == self.worker_id, Job.status == "running")
                .values(lease_expires_at=time.time() + self.rt.policy.worker.lease_seconds)
            )
            return res.rowcount == 1

    def run(self) -> None:
        while not self.done.wait(self.rt.policy.worker.heartbeat_seconds):
            try:
                if not self.beat():
                    self.stop.set()
                    return
            except Exception as err:  # a database blip: the lease still runs for a while
                warn(f"heartbeat for {self.job_id} failed: {err}")


class Worker:
    def __init__(self, rt: Runtime, worker_id: str | None = None) -> None:
        self.rt = rt
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}"

    def _finish(self, job: Job, **values: Any) -> bool:
        """A final write, applied only while this worker still holds the running job."""
        with self.rt.db.session.begin() as s:
            res = s.execute(
                update(Job)
                .where(Job.id == job.id, Job.lease_owner == self.id, Job.status == "running")
                .values(finished_at=now(), lease_owner=None, lease_expires_at=None, runs=Job.runs + 1, **values)
            )
            return res.rowcount == 1

    def _fail(self, job: Job, code: str, message: str) -> None:
        if self._finish(job, status="failed", error={"code": code, "message": message, "param": None}):
            add_event(self.rt, job, f"Job failed: {message}", level="error", type="message", data={"code": code})

    def _checkpoint(self, job: Job, step: int, metrics: dict[str, Any]) -> None:
        with self.rt.db.session.begin() as s:
            exists = s.scalar(select(Checkpoint.id).where(Checkpoint.job_id == job.id, Checkpoint.step == step))
            if exists is None:
                s.add(Checkpoint(id=new_id("ftckpt"), job_id=job.id, org_id=job.org_id, step=step, metrics=metrics))

    def _read_file(self, file_id: str, role: str) -> Any:
        """An uploaded file, checked again as at upload (the limits may have changed since)."""
        with self.rt.db.session() as s:
            row = s.get(File, file_id)
        try:
            data = self.rt.store.read(row.sha256)
        except CorruptArtifact as err:
            raise JobFailed("file_corrupt", f"the {role} file is damaged in storage ({err})") from None
        check = check_fine_tune_file(data, self.rt.policy.limits)
        if not check.ok:
            raise JobFailed(f"invalid_{role}_file", f"{role} file: {check.message()}")
        return check

    def run_job(self, job: Job) -> None:
        rt = self.rt
        if job.attempts > rt.policy.worker.max_attempts:
            self._fail(job, "worker_lost", f"the job was started {job.attempts - 1} times and never finished")
            return
        add_event(rt, job, f"Fine-tuning job started (attempt {job.attempts})")
        heartbeat = Heartbeat(rt, job.id, self.id)
        heartbeat.start()
        try:
            if job.model not in rt.policy.base_models:
                raise JobFailed("model_not_available", f"this worker's policy does not offer {job.model!r}")
            check = self._read_file(job.training_file, "training")
            validation = self._read_file(job.validation_file, "validation") if job.validation_file else None
            ctx = JobContext(
                job_id=job.id,
                base_model=rt.policy.base_models[job.model],
                seed=job.seed,
                hyperparameters=job.hyperparameters,
                workspace=rt.workspace(job.id),
                event=lambda message, **kw: add_event(rt, job, message, **kw),
                checkpoint=lambda step, metrics: self._checkpoint(job, step, metrics),
                should_stop=heartbeat.stop.is_set,
                baseline=DbBaselineCache(rt),
            )
            outcome = run_guard(ctx, check.conversations, rt.policy, validation.conversations if validation else None)
            if outcome.decision == "release":
                self._release(job, outcome)
            elif self._finish(
                job,
                status="held",
                trained_tokens=outcome.trained_tokens,
                gate_report=outcome.report,
                error={
                    "code": "held_for_review",
                    "param": None,
                    "message": "the tuned model breached the provider's safety policy and is held for review",
                },
            ):
                add_event(rt, job, "Model held for provider review: it breached the safety policy", level="warn")
        except Stopped:
            info(f"{job.id}: stopped (cancelled or taken over)")
        except JobFailed as err:
            self._fail(job, err.code, err.message)
        except Exception:
            traceback.print_exc()
            self._fail(job, "internal_error", "the job hit an internal error; the provider has the details")
        finally:
            heartbeat.done.set()
            heartbeat.join()
            release_memory()  # a worker runs job after job: it must not keep each one's heap

    def _release(self, job: Job, outcome: Any) -> None:
        held_here = (Job.lease_owner == self.id) & (Job.status == "running")
        values = {"lease_owner": None, "lease_expires_at": None, "runs": Job.runs + 1}
        publish(
            self.rt,
            job,
            outcome.model_dir,
            held_here,
            trained_tokens=outcome.trained_tokens,
            gate_report=outcome.report,
            **values,
        )

    def run_once(self) -> bool:
        """Claim and run one job; False when none was waiting."""
        job = claim(self.rt, self.id)
        if job is None:
            return False
        info(f"worker {self.id}: running {job.id} (attempt {job.attempts})")
        self.run_job(job)
        return True

    def run_forever(self, stop: threading.Event | None = None, exit_when_idle: bool = False) -> None:
        stop = stop or threading.Event()
        while not stop.is_set():
            if not self.run_once():
                if exit_when_idle:
                    return
                stop.wait(self.rt.policy.worker.poll_seconds)


def publish(rt: Runtime, job: Job, model_dir: Path, condition: Any, **values: Any) -> str | None:
    """Store the tuned model and mark the job succeeded, if `condition` still holds on its row."""
    artifact = rt.store.put_dir(model_dir)
    model_id = f"ft:{job.model}:{job.org_id}:{job.suffix or ''}:{job.id.removeprefix('ftjob-')}"
    with rt.db.session.begin() as s:
        res = s.execute(
            update(Job)
            .where(Job.id == job.id, condition)
            .values(status="succeeded", fine_tuned_model=model_id, finished_at=now(), error=None, **values)
        )
        if res.rowcount != 1:
            return None
        s.add(TunedModel(id=model_id, org_id=job.org_id, job_id=job.id, base=job.model, artifact=artifact))
    add_event(rt, job, f"Model released: {model_id}", data={"fine_tuned_model": model_id})
    add_event(rt, job, "The job has successfully completed")
    return model_id


def review(rt: Runtime, job_id: str, release: bool) -> str:
    """The provider's decision on a held job: release its model, or reject it (the job fails)."""
    from mimicry.errors import MimicryError
    from mimicry.training.sft import load_result

    with rt.db.session() as s:
        job = s.get(Job, job_id)
    if job is None or job.status != "held":
        raise MimicryError(f"{job_id} is not a held job" + (f" (it is {job.status})" if job else ""))
    if not release:
        with rt.db.session.begin() as s:
            s.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == "held")
                .values(
                    status="failed",
                    error={
                        "code": "rejected_in_review",
                        "param": None,
                        "message": "the provider rejected the model in review",
                    },
                )
            )
        add_event(rt, job, "The provider rejected the model in review", level="error")
        return job_id
    trained = load_result(rt.workspace(job_id) / "train")
    if trained is None:
        raise MimicryError(f"the trained model of {job_id} is no longer in {rt.workspace(job_id)}")
    model_id = publish(rt, job, trained.model_path, Job.status == "held")
    if model_id is None:
        raise MimicryError(f"{job_id} changed state during the review; look again")
    return model_id
