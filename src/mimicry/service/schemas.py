"""Request and response bodies in the shapes of OpenAI's API, so its client parses them unchanged."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mimicry.service.db import Checkpoint, File, Job, JobEvent, TunedModel


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class FileObject(BaseModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: str
    status_details: str | None = None

    @classmethod
    def of(cls, f: File) -> FileObject:
        return cls(
            id=f.id,
            bytes=f.bytes,
            created_at=f.created_at,
            filename=f.filename,
            purpose=f.purpose,
            status=f.status,
            status_details=f.status_details,
        )


class Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n_epochs: int | float | Literal["auto"] = "auto"
    batch_size: int | Literal["auto"] = "auto"
    learning_rate_multiplier: float | Literal["auto"] = "auto"


class SupervisedMethod(BaseModel):
    model_config = ConfigDict(extra="ignore")

    hyperparameters: Hyperparameters = Hyperparameters()


class Method(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["supervised"] = "supervised"
    supervised: SupervisedMethod | None = None


class CreateJob(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str
    training_file: str
    validation_file: str | None = None
    hyperparameters: Hyperparameters | None = None
    method: Method | None = None
    suffix: str | None = Field(None, max_length=64, pattern=r"^[A-Za-z0-9_-]*$")
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    metadata: dict[str, str] | None = None

    def resolved_hyperparameters(self) -> Hyperparameters:
        if self.method and self.method.supervised:
            return self.method.supervised.hyperparameters
        return self.hyperparameters or Hyperparameters()


class JobError(BaseModel):
    code: str
    message: str
    param: str | None = None


class JobObject(BaseModel):
    id: str
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    created_at: int
    finished_at: int | None
    model: str
    fine_tuned_model: str | None
    organization_id: str
    status: str
    hyperparameters: dict[str, Any]
    training_file: str
    validation_file: str | None
    result_files: list[str] = []
    trained_tokens: int | None
    error: JobError | None
    seed: int
    suffix: str | None = None
    metadata: dict[str, str] | None = None
    estimated_finish: int | None = None
    integrations: list[Any] | None = None
    method: dict[str, Any]

    @classmethod
    def of(cls, j: Job) -> JobObject:
        return cls(
            id=j.id,
            created_at=j.created_at,
            finished_at=j.finished_at,
            model=j.model,
            fine_tuned_model=j.fine_tuned_model,
            organization_id=j.org_id,
            status=j.status,
            hyperparameters=j.hyperparameters,
            training_file=j.training_file,
            validation_file=j.validation_file,
            trained_tokens=j.trained_tokens,
            error=JobError(**j.error) if j.error else None,
            seed=j.seed,
            suffix=j.suffix,
            metadata=j.user_metadata,
            method={"type": "supervised", "supervised": {"hyperparameters": j.hyperparameters}},
        )


class EventObject(BaseModel):
    id: str
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    created_at: int
    level: str
    message: str
    type: str
    data: dict[str, Any] | None = None

    @classmethod
    def of(cls, e: JobEvent) -> EventObject:
        return cls(id=e.id, created_at=e.created_at, level=e.level, message=e.message, type=e.type, data=e.data)


class CheckpointObject(BaseModel):
    id: str
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"
    created_at: int
    fine_tuned_model_checkpoint: str
    fine_tuning_job_id: str
    metrics: dict[str, Any]
    step_number: int

    @classmethod
    def of(cls, c: Checkpoint, model: str) -> CheckpointObject:
        return cls(
            id=c.id,
            created_at=c.created_at,
            fine_tuned_model_checkpoint=f"{model}:ckpt-step-{c.step}",
            fine_tuning_job_id=c.job_id,
            metrics=c.metrics,
            step_number=c.step,
        )


class ModelObject(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str

    @classmethod
    def of(cls, m: TunedModel) -> ModelObject:
        return cls(id=m.id, created=m.created_at, owned_by=m.org_id)


class ListPage(BaseModel):
    object: Literal["list"] = "list"
    data: list[Any]
    has_more: bool = False
    first_id: str | None = None
    last_id: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant"]
    content: str


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1, le=4096)
    max_completion_tokens: int | None = Field(None, ge=1, le=4096)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(1, ge=1, le=1)
