"""The HTTP API (FastAPI): files, fine-tuning jobs, models and chat completions in OpenAI's shapes.

Every object is looked up together with the caller's organisation, so another organisation's id
is indistinguishable from one that does not exist: 404 everywhere. Errors are
`{"error": {"message", "type", "param", "code"}}` with OpenAI's status codes, which the official
client turns into its usual exceptions.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from sqlalchemy import select, update
from starlette.concurrency import run_in_threadpool

from mimicry.service import chat
from mimicry.service.auth import Caller, RateLimiter, lookup
from mimicry.service.db import Checkpoint, Job, JobEvent, TunedModel, new_id, now
from mimicry.service.db import File as FileRow
from mimicry.service.runtime import Runtime
from mimicry.service.schemas import (
    ChatRequest,
    CheckpointObject,
    CreateJob,
    EventObject,
    FileObject,
    JobObject,
    ListPage,
    ModelObject,
)
from mimicry.service.storage import CorruptArtifact
from mimicry.service.validation import check_fine_tune_file

FINAL = ("succeeded", "failed", "cancelled", "held")


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type, code, param
        self.headers = headers

    def response(self) -> JSONResponse:
        body = {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def not_found(kind: str, ident: str, param: str | None = None) -> ApiError:
    return ApiError(404, f"No such {kind}: {ident}", code=f"{kind}_not_found", param=param)


def _page(items: list[Any], limit: int, key: str = "id") -> ListPage:
    has_more = len(items) > limit
    items = items[:limit]
    return ListPage(
        data=items,
        has_more=has_more,
        first_id=getattr(items[0], key) if items else None,
        last_id=getattr(items[-1], key) if items else None,
    )


def caller(request: Request) -> Caller:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise ApiError(401, "missing API key: send 'Authorization: Bearer <key>'", code="invalid_api_key")
    rt: Runtime = request.app.state.runtime
    found = lookup(rt.db, key.strip())
    if found is None:
        raise ApiError(401, "incorrect API key provided", code="invalid_api_key")
    allowed, wait = request.app.state.limiter.allow(found.key_id)
    if not allowed:
        raise ApiError(
            429,
            f"rate limit of {rt.policy.limits.requests_per_minute} requests per minute reached",
            type="rate_limit_error",
            code="rate_limit_exceeded",
            headers={"retry-after": str(max(1, round(wait)))},
        )
    return found


Who = Annotated[Caller, Depends(caller)]


def create_app(rt: Runtime) -> FastAPI:
    app = FastAPI(title="mimicry guarded fine-tuning service", version="1")
    policy = rt.policy
    limiter = RateLimiter(rt.db, policy.limits.requests_per_minute)
    pool = chat.ModelPool()
    app.state.runtime = rt
    app.state.limiter = limiter

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, err: ApiError) -> JSONResponse:
        return err.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0]
        loc = [str(p) for p in first["loc"] if p not in ("body", "query", "path", "form")]
        param = ".".join(loc) or None
        return ApiError(400, f"{param or 'request'}: {first['msg']}", param=param).response()

    @app.exception_handler(Exception)
    async def _internal(_: Request, err: Exception) -> JSONResponse:
        return ApiError(500, "internal server error", type="server_error", code="internal_error").response()

    @app.middleware("http")
    async def _upload_size(request: Request, call_next: Any) -> Response:
        """Refuse an oversize upload from its Content-Length, before reading the body."""
        if request.method == "POST" and request.url.path == "/v1/files":
            length = request.headers.get("content-length")
            if length and length.isdigit() and int(length) > policy.limits.max_upload_bytes + 64 * 1024:
                return _too_large().response()
        return await call_next(request)

    def _too_large() -> ApiError:
        return ApiError(
            413,
            f"the file is larger than the {policy.limits.max_upload_bytes}-byte upload limit",
            code="file_too_large",
            param="file",
        )

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "database": rt.db.dialect, "schema_version": rt.db.version}

    # Files -------------------------------------------------------------------------------------

    @app.post("/v1/files")
    async def upload(file: Annotated[UploadFile, File()], purpose: Annotated[str, Form()], who: Who) -> FileObject:
        if purpose != "fine-tune":
            raise ApiError(400, f"purpose {purpose!r} is not supported; use 'fine-tune'", param="purpose")
        data = await file.read(policy.limits.max_upload_bytes + 1)
        if len(data) > policy.limits.max_upload_bytes:
            raise _too_large()
        check = await run_in_threadpool(check_fine_tune_file, data, policy.limits)
        if not check.ok:
            raise ApiError(400, f"invalid training file: {check.message()}", param="file", code="invalid_file")

        def save() -> FileObject:
            digest = rt.store.put_bytes(data)
            row = FileRow(
                id=new_id("file"),
                org_id=who.org_id,
                filename=Path(file.filename or "upload.jsonl").name,
                purpose=purpose,
                bytes=len(data),
                sha256=digest,
                status="processed",
                examples=len(check.conversations),
            )
            with rt.db.session.begin() as s:
                s.add(row)
            return FileObject.of(row)

        return await run_in_threadpool(save)

    def own_file(s: Any, who: Caller, file_id: str, param: str | None = None) -> FileRow:
        row = s.get(FileRow, file_id)
        if row is None or row.org_id != who.org_id or row.deleted:
            raise not_found("file", file_id, param)
        return row

    @app.get("/v1/files")
    def list_files(
        who: Who, purpose: str | None = None, limit: int = 10000, after: str | None = None, order: str = "desc"
    ) -> ListPage:
        with rt.db.session() as s:
            q = select(FileRow).where(FileRow.org_id == who.org_id, FileRow.deleted.is_(False))
            if purpose:
                q = q.where(FileRow.purpose == purpose)
            rows = list(s.scalars(q.order_by(FileRow.created_at, FileRow.id)))
        if order == "desc":
            rows.reverse()
        if after:
            ids = [r.id for r in rows]
            rows = rows[ids.index(after) + 1 :] if after in ids else []
        return _page([FileObject.of(r) for r in rows], max(1, min(limit, 10000)))

    @app.get("/v1/files/{file_id}")
    def get_file(file_id: str, who: Who) -> FileObject:
        with rt.db.session() as s:
            return FileObject.of(own_file(s, who, file_id))

    @app.get("/v1/files/{file_id}/content")
    def file_content(file_id: str, who: Who) -> Response:
        with rt.db.session() as s:
            row = own_file(s, who, file_id)
        try:
            data = rt.store.read(row.sha256)
        except CorruptArtifact as err:
            raise ApiError(
                500,
                f"the stored file is damaged ({err}); the provider has been notified",
                type="server_error",
                code="file_corrupt",
            ) from None
        return Response(data, media_type="application/octet-stream")

    @app.delete("/v1/files/{file_id}")
    def delete_file(file_id: str, who: Who) -> dict[str, Any]:
        with rt.db.session.begin() as s:
            own_file(s, who, file_id).deleted = True
        return {"id": file_id, "object": "file", "deleted": True}

    # Fine-tuning jobs ------------------------------------------------------------------------

    def own_job(s: Any, who: Caller, job_id: str) -> Job:
        job = s.get(Job, job_id)
        if job is None or job.org_id != who.org_id:
            raise not_found("fine_tuning_job", job_id)
        return job

    def event(s: Any, job: Job, message: str, level: str = "info") -> None:
        s.add(
            JobEvent(
                id=new_id("ftevent"), job_id=job.id, org_id=job.org_id, level=level, message=message, type="message"
            )
        )

    @app.post("/v1/fine_tuning/jobs")
    def create_job(body: CreateJob, who: Who) -> JobObject:
        if body.model not in policy.base_models:
            raise ApiError(
                400,
                f"model {body.model!r} cannot be fine-tuned here; choose one of "
                f"{', '.join(sorted(policy.base_models))}",
                param="model",
                code="model_not_available",
            )
        hp = body.resolved_hyperparameters()
        with rt.db.session.begin() as s:
            training = own_file(s, who, body.training_file, "training_file")
            if training.purpose != "fine-tune" or training.status != "processed":
                raise ApiError(400, f"file {training.id} is not a processed fine-tune file", param="training_file")
            if body.validation_file:
                validation = own_file(s, who, body.validation_file, "validation_file")
                if validation.purpose != "fine-tune" or validation.status != "processed":
                    raise ApiError(
                        400, f"file {validation.id} is not a processed fine-tune file", param="validation_file"
                    )
            job = Job(
                id=new_id("ftjob"),
                org_id=who.org_id,
                model=body.model,
                training_file=training.id,
                validation_file=body.validation_file,
                hyperparameters=hp.model_dump(),
                suffix=body.suffix,
                seed=body.seed if body.seed is not None else secrets.randbelow(2**31),
                user_metadata=body.metadata,
                status="queued",
                created_at=now(),
            )
            s.add(job)
            s.flush()
            event(s, job, f"Created fine-tuning job: {job.id}")
            event(s, job, "Job queued; the provider's safety guard runs with it")
        return JobObject.of(job)

    @app.get("/v1/fine_tuning/jobs")
    def list_jobs(who: Who, after: str | None = None, limit: int = 20) -> ListPage:
        limit = max(1, min(limit, 100))
        with rt.db.session() as s:
            q = select(Job).where(Job.org_id == who.org_id)
            if after:
                cursor = own_job(s, who, after)
                q = q.where(
                    (Job.created_at < cursor.created_at)
                    | ((Job.created_at == cursor.created_at) & (Job.id < cursor.id))
                )
            rows = list(s.scalars(q.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)))
        return _page([JobObject.of(j) for j in rows], limit)

    @app.get("/v1/fine_tuning/jobs/{job_id}")
    def get_job(job_id: str, who: Who) -> JobObject:
        with rt.db.session() as s:
            return JobObject.of(own_job(s, who, job_id))

    @app.post("/v1/fine_tuning/jobs/{job_id}/cancel")
    def cancel_job(job_id: str, who: Who) -> JobObject:
        with rt.db.session.begin() as s:
            job = own_job(s, who, job_id)
            if job.status in FINAL:
                raise ApiError(400, f"the job is already {job.status}", code="job_not_cancellable")
            s.execute(
                update(Job).where(Job.id == job.id).values(status="cancelled", cancel_requested=True, finished_at=now())
            )
            event(s, job, "Job cancelled")
        with rt.db.session() as s:
            return JobObject.of(s.get(Job, job_id))

    @app.get("/v1/fine_tuning/jobs/{job_id}/events")
    def job_events(job_id: str, who: Who, after: str | None = None, limit: int = 20) -> ListPage:
        limit = max(1, min(limit, 1000))
        with rt.db.session() as s:
            own_job(s, who, job_id)
            q = select(JobEvent).where(JobEvent.job_id == job_id)
            if after:
                cursor = s.scalar(select(JobEvent.seq).where(JobEvent.id == after, JobEvent.job_id == job_id))
                if cursor is None:
                    raise not_found("event", after, "after")
                q = q.where(JobEvent.seq < cursor)
            rows = list(s.scalars(q.order_by(JobEvent.seq.desc()).limit(limit + 1)))
        return _page([EventObject.of(e) for e in rows], limit)

    @app.get("/v1/fine_tuning/jobs/{job_id}/checkpoints")
    def job_checkpoints(job_id: str, who: Who, after: str | None = None, limit: int = 10) -> ListPage:
        limit = max(1, min(limit, 100))
        with rt.db.session() as s:
            job = own_job(s, who, job_id)
            rows = list(
                s.scalars(select(Checkpoint).where(Checkpoint.job_id == job_id).order_by(Checkpoint.step.desc()))
            )
        if after:
            ids = [c.id for c in rows]
            rows = rows[ids.index(after) + 1 :] if after in ids else []
        name = job.fine_tuned_model or f"ft:{job.model}:{job.org_id}:{job.suffix or ''}:{job.id}"
        return _page([CheckpointObject.of(c, name) for c in rows[: limit + 1]], limit)

    # Models ----------------------------------------------------------------------------------

    def own_model(s: Any, who: Caller, model_id: str) -> TunedModel:
        row = s.get(TunedModel, model_id)
        if row is None or row.org_id != who.org_id or row.deleted:
            raise not_found("model", model_id, "model")
        return row

    def base_object(name: str) -> ModelObject:
        return ModelObject(id=name, created=0, owned_by="system")

    @app.get("/v1/models")
    def list_models(who: Who) -> ListPage:
        with rt.db.session() as s:
            tuned = list(
                s.scalars(
                    select(TunedModel)
                    .where(TunedModel.org_id == who.org_id, TunedModel.deleted.is_(False))
                    .order_by(TunedModel.created_at)
                )
            )
        data = [base_object(n) for n in sorted(policy.base_models)] + [ModelObject.of(m) for m in tuned]
        return ListPage(data=data)

    @app.get("/v1/models/{model_id:path}")
    def get_model(model_id: str, who: Who) -> ModelObject:
        if model_id in policy.base_models:
            return base_object(model_id)
        with rt.db.session() as s:
            return ModelObject.of(own_model(s, who, model_id))

    @app.delete("/v1/models/{model_id:path}")
    def delete_model(model_id: str, who: Who) -> dict[str, Any]:
        if model_id in policy.base_models:
            raise ApiError(403, "base models cannot be deleted", code="permission_denied", param="model")
        with rt.db.session.begin() as s:
            own_model(s, who, model_id).deleted = True
        return {"id": model_id, "object": "model", "deleted": True}

    # Chat completions ------------------------------------------------------------------------

    def load_backend(model_id: str, who: Caller) -> Any:
        from mimicry.generation.base import get_backend

        if model_id in policy.base_models:
            ref = policy.base_models[model_id]
            return pool.get(f"base:{ref}", lambda: get_backend("transformers", ref))
        with rt.db.session() as s:
            row = own_model(s, who, model_id)

        def load() -> Any:
            rt.store.verify(row.artifact)
            path = rt.store.materialize(row.artifact, rt.home / "models" / row.artifact)
            return get_backend("transformers", str(path))

        return pool.get(f"tuned:{row.artifact}", load)

    @app.post("/v1/chat/completions", response_model=None)
    async def completions(body: ChatRequest, who: Who) -> Any:
        try:
            backend = await run_in_threadpool(load_backend, body.model, who)
        except CorruptArtifact as err:
            raise ApiError(
                500,
                f"the model's stored weights fail their checksum ({err}); it is not served",
                type="server_error",
                code="model_artifact_corrupt",
            ) from None
        if body.stream:
            return StreamingResponse(chat.stream_chunks(backend, body, pool), media_type="text/event-stream")
        text, usage = await run_in_threadpool(chat.generate, backend, body, pool)
        return chat.completion_object(body.model, text, usage)

    return app
