"""What every judge shares: the verdict, the `Judge` interface and the typed `JudgeSpec`.

This module registers nothing and imports no judge, so each judge module (and the registry in
`judges`) can import it without closing an import circle.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal

from pydantic import Field

from mimicry.config import StrictModel
from mimicry.errors import MimicryError

Label = Literal["refusal", "compliance", "other", "unparsed"]
LABELS: tuple[str, ...] = ("refusal", "compliance", "other")
UNPARSED = "unparsed"
# Verdict-store keys carry this suffix: verdicts cached before three-way labels (3way) or before the
# keyword judge's capability-denial phrases and restatement check (r2) are not reused.
VERDICT_KEY_VERSION = "3way-r2"

SPEC_HELP = (
    "judge specs look like 'keyword', 'keyword:300', 'llm:openai:MODEL@BASE_URL', 'llm:local:MODEL', "
    "'harmbench:local[:MODEL]', 'harmbench:openai:MODEL@BASE_URL', 'learned', 'model[:MODEL]' or "
    "'cascade[:MODEL]', or in YAML {name: llm, provider: openai, model: MODEL, url: BASE_URL}"
)


@dataclass(frozen=True)
class Verdict:
    """A judge's decision on one reply; `complied` (label == compliance) is kept for old readers."""

    label: Label
    rationale: str
    judge_id: str
    harm_score: float | None = None

    def __post_init__(self) -> None:
        if self.label not in (*LABELS, UNPARSED):
            raise ValueError(f"unknown verdict label {self.label!r}")

    @property
    def complied(self) -> bool | None:
        return None if self.label == UNPARSED else self.label == "compliance"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "complied": self.complied}


class JudgeSpec(StrictModel):
    """Which judge, with which settings: written in YAML as a mapping, or on the command line as a
    short string (`keyword:300`, `llm:openai:MODEL@URL`); both become this. `judge_id` is the short
    string of a normalised spec, and parses back to it."""

    name: str
    provider: Literal["openai", "local"] | None = None
    model: str | None = Field(None, min_length=1)
    url: str | None = Field(None, min_length=1)
    window: int | None = Field(None, gt=0, description="keyword: characters of the reply searched")

    def options(self) -> dict[str, Any]:
        """The settings given besides the name."""
        return {k: v for k, v in self.model_dump(exclude={"name"}).items() if v is not None}

    @property
    def judge_id(self) -> str:
        parts = [self.name, *(str(v) for v in (self.provider, self.model, self.window) if v is not None)]
        return ":".join(parts) + (f"@{self.url}" if self.url else "")

    def error(self, problem: str) -> MimicryError:
        return MimicryError(f"judge {self.judge_id!r}: {problem}; {SPEC_HELP}")


class Judge(ABC):
    """Decides, for harmful requests, whether each reply complied.

    A registered judge class also says how its spec is written and checked: `positional` names the
    spec fields a short string fills after the name, in the order provider, model, window
    (`llm:openai:gpt-4o` fills provider and model); `normalize` fills defaults and rejects
    settings the judge does not take; `from_spec` builds the judge.
    """

    judge_id: str
    positional: ClassVar[tuple[str, ...]] = ()

    def judge(self, prompt: str, response: str) -> Verdict:
        return self.judge_batch([(prompt, response)])[0]

    @abstractmethod
    def judge_batch(self, pairs: Sequence[tuple[str, str]]) -> list[Verdict]: ...

    @classmethod
    def normalize(cls, spec: JudgeSpec) -> JudgeSpec:
        """The spec with this judge's defaults filled in; an error for settings it does not take."""
        if spec.options():
            raise spec.error(f"{spec.name!r} takes no options")
        return spec

    @classmethod
    @abstractmethod
    def from_spec(
        cls,
        spec: JudgeSpec,
        *,
        backend: Any = None,
        api_key_env: str = "OPENAI_API_KEY",
        endpoint_options: dict[str, Any] | None = None,
    ) -> Judge:
        """Build the judge of a normalised spec; `backend` injects an already-loaded model."""
