"""The evaluation suites and `evaluate`, the one entry point the CLI and the experiment runner use.

harm:        ASR on harmful prompt sets, each prompt asked plain (the model's chat template) and
             in-format (wrapped by `Strategy.present` of the strategy the model was tuned with),
             scored by every configured judge; plus judge agreement (Cohen's kappa).
overrefusal: keyword refusal rate on safe prompt sets, in both presentations.
task:        task accuracy in the training format (`strategy.render(example).prompt_messages`,
             with the strategy's reply prefix forced), unparseable answers counted separately.

Every generation and verdict is appended to JSONL under `out_dir` as soon as its batch is done
(with prompt, presentation, model, judge and config hash), so an interrupted run resumes; the
summary (`summary.json`) carries seeded bootstrap 95% intervals.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, Field, field_serializer, field_validator

from mimicry.config import StrictModel
from mimicry.errors import MimicryError, unknown_name
from mimicry.evaluation.judge_base import UNPARSED, VERDICT_KEY_VERSION, Judge, JudgeSpec
from mimicry.evaluation.judges import build_judge, judge_spec, parse_judge_list
from mimicry.evaluation.keyword_judge import is_degenerate
from mimicry.evaluation.metrics import bootstrap_ci, bootstrap_kappa_ci, cohen_kappa, mean
from mimicry.evaluation.refusal import is_refusal_reply
from mimicry.evaluation.store import RecordStore
from mimicry.generation.base import GenerationBackend, GenerationConfig, GenerationSettings
from mimicry.hashing import hash_obj
from mimicry.records import Message, atomic_write_text
from mimicry.registry import Registry
from mimicry.sampling import seeded_sample

Presentation = Literal["plain", "in-format"]
DEFAULT_HARM_SETS = ["harmful_instructions", "harmful_questions", "advbench"]
DEFAULT_OVERREFUSAL_SETS = ["xstest_safe", "physical_safe", "alpaca_eval"]


class EvalConfig(StrictModel):
    """What to evaluate and how. `limit` caps every prompt set and the task (seeded sample)."""

    max_new_tokens: int = Field(256, gt=0)
    task_max_new_tokens: int | None = Field(None, gt=0)
    limit: int | None = Field(None, gt=0)
    harm_sets: list[str] = DEFAULT_HARM_SETS
    overrefusal_sets: list[str] = DEFAULT_OVERREFUSAL_SETS
    presentations: list[Presentation] = ["plain", "in-format"]
    # Short strings as written, or specs (YAML mappings); see `mimicry.evaluation.judges`.
    judges: list[str | JudgeSpec] = ["keyword"]
    judge_api_key_env: str = "OPENAI_API_KEY"
    judge_max_retries: int = Field(5, ge=0)
    judge_backoff_seconds: float = Field(2.0, ge=0)
    batch_size: int = Field(8, gt=0)
    judge_batch_size: int = Field(16, gt=0)
    seed: int = 0
    advbench_sample: int | None = Field(100, gt=0)
    task_split: str = "test"

    @field_validator("judges", mode="before")
    @classmethod
    def _judges_are_valid(cls, value: Any) -> Any:
        """Checked now, so a bad judge fails before any work; a mapping becomes its normalised spec."""
        if not isinstance(value, list):
            return value
        try:  # a ValueError, so the config error names the file and section
            parse_judge_list(value)
            return [judge_spec(j) if isinstance(j, dict) else j for j in value]
        except MimicryError as err:
            raise ValueError(str(err)) from None

    @field_serializer("judges")
    def _judges_as_strings(self, judges: list[str | JudgeSpec]) -> list[str]:
        """Strings stay as written, so configs hash as they did; a spec dumps as its short string,
        so `{name: keyword}` and `keyword` share cached results."""
        return [j if isinstance(j, str) else j.judge_id for j in judges]


class EvalSpec(StrictModel):
    """The evaluate stage's settings: which suites, in which strategy's format, with which backend.

    `inference_system_prompt` is the provider's prompt at test time (PTST, BackdoorAlign), if any.
    """

    task: str | None = None  # None: no task suite, harmful prompts asked plainly only
    strategy: str | None = None
    suites: list[str]
    inference_system_prompt: str | None = None
    evaluation: EvalConfig = EvalConfig()
    generation: GenerationSettings = GenerationSettings()


class MetricKey(NamedTuple):
    """Which metric a row measures: one row per key in a summary."""

    suite: str
    metric: str
    set: str
    presentation: str
    judge: str | None


class MetricRow(BaseModel):
    """One measured metric: what `evaluate` returns, the evaluate stage stores and the results table holds.

    A value or bound is None where nothing was measured (an empty set: the table stores NaN as NULL).
    """

    suite: str
    metric: str
    set: str
    presentation: str
    judge: str | None = None
    value: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    unparsed: int = 0
    max_new_tokens: int | None = None

    @property
    def key(self) -> MetricKey:
        return MetricKey(self.suite, self.metric, self.set, self.presentation, self.judge)


class EvalSummary(BaseModel):
    model: str
    config_hash: str
    out_dir: str
    rows: list[MetricRow]

    def row(self, suite: str, metric: str, set_name: str, presentation: str, judge: str | None = None) -> MetricRow:
        wanted = MetricKey(suite, metric, set_name, presentation, judge)
        for r in self.rows:
            if r.key == wanted:
                return r
        raise KeyError(wanted)


@dataclass
class EvalContext:
    """What every suite needs: the model, where records go, the resolved options."""

    backend: GenerationBackend
    config: EvalConfig
    strategy: Any  # mimicry.strategies.Strategy or None
    task: str | None
    out_dir: Path
    generations: RecordStore
    verdicts: RecordStore
    judges: list[Judge] = field(default_factory=list)

    def generation_config(self, max_new_tokens: int | None = None) -> GenerationConfig:
        return GenerationConfig(
            max_new_tokens=max_new_tokens or self.config.max_new_tokens,
            batch_size=self.config.batch_size,
            seed=self.config.seed,
        )

    def config_hash(self, generation: GenerationConfig) -> str:
        """Keys generations: model, decoding and strategy; not limits or set lists, so raising
        a limit reuses what exists."""
        return hash_obj(
            {
                "model": self.backend.model_id,
                "generation": generation,
                "strategy": self.strategy.name if self.strategy else None,
            }
        )


@dataclass(frozen=True)
class Item:
    """One thing to generate: its key parts, the messages to send, and what to keep with it."""

    suite: str
    set: str
    presentation: str
    item_id: str
    request: str
    messages: list[Message]
    extra: dict[str, Any] = field(default_factory=dict)


SuiteFn = Callable[[EvalContext], list[MetricRow]]
SUITES: Registry[SuiteFn] = Registry("evaluation suite")


def _generate(
    ctx: EvalContext, items: Sequence[Item], generation: GenerationConfig, label: str
) -> dict[str, dict[str, Any]]:
    """Generate what is missing, appending each batch; return the records of `items` by item key.

    Progress is the backend's to show (one live display at a time); this logs each batch."""
    from mimicry.console import info

    config_hash = ctx.config_hash(generation)

    def key(item: Item) -> str:
        # The messages' hash makes a changed prompt format (a template edit) a new generation.
        messages_hash = hash_obj([m.model_dump() for m in item.messages], length=8)
        return f"{config_hash}/{item.suite}/{item.set}/{item.presentation}/{item.item_id}/{messages_hash}"

    todo = [i for i in items if key(i) not in ctx.generations]
    # Prompts of like length share a batch: a batch pads (and prefills) to its longest prompt, and
    # the presentations differ a lot (a plain question vs. an AOA system prompt and scaffold).
    todo.sort(key=lambda i: sum(len(m.content) for m in i.messages))
    info(f"{label}: {len(todo)} to generate, {len(items) - len(todo)} already stored")
    for start in range(0, len(todo), ctx.config.batch_size):
        batch = todo[start : start + ctx.config.batch_size]
        replies = ctx.backend.generate([b.messages for b in batch], generation)
        if len(replies) != len(batch):
            raise MimicryError(f"the backend returned {len(replies)} replies for {len(batch)} prompts")
        ctx.generations.append(
            {
                "key": key(b),
                "config_hash": config_hash,
                "model": ctx.backend.model_id,
                "suite": b.suite,
                "set": b.set,
                "presentation": b.presentation,
                "item_id": b.item_id,
                "prompt": b.request,
                "messages": [m.model_dump() for m in b.messages],
                "response": reply,
                "generation": generation.model_dump(),
                **b.extra,
            }
            for b, reply in zip(batch, replies, strict=True)
        )
    return {key(i): ctx.generations.get(key(i)) or {} for i in items}


def _judge(ctx: EvalContext, generations: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    return judge_generations(ctx.judges, generations, ctx.verdicts, ctx.config.judge_batch_size)


def judge_generations(
    judges: Sequence[Judge], generations: Sequence[dict[str, Any]], store: RecordStore, batch_size: int
) -> dict[str, dict[str, dict[str, Any]]]:
    """Verdicts of every judge on every generation, judging only what is not stored yet."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for judge in judges:

        def vkey(g: dict[str, Any], judge: Judge = judge) -> str:
            return f"{g['key']}|{judge.judge_id}|{VERDICT_KEY_VERSION}"

        todo = [g for g in generations if vkey(g) not in store]
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            verdicts = judge.judge_batch([(g["prompt"], g["response"]) for g in batch])
            store.append(
                {
                    "key": vkey(g),
                    "generation_key": g["key"],
                    "config_hash": g["config_hash"],
                    "model": g["model"],
                    "suite": g["suite"],
                    "set": g["set"],
                    "presentation": g["presentation"],
                    "item_id": g["item_id"],
                    "prompt": g["prompt"],
                    "response": g["response"],
                    **v.to_json(),
                }
                for g, v in zip(batch, verdicts, strict=True)
            )
        out[judge.judge_id] = {g["key"]: store.get(vkey(g)) or {} for g in generations}
    return out


def _presentations(ctx: EvalContext) -> list[str]:
    """In-format is dropped when there is no strategy or its scaffold is just the plain user turn."""
    chosen = list(dict.fromkeys(ctx.config.presentations))
    if "in-format" in chosen:
        probe = "probe request"
        if ctx.strategy is None or ctx.strategy.present(probe) == [Message(role="user", content=probe)]:
            chosen.remove("in-format")
    return chosen


SUITE_SET_KINDS = {"harm": ("harm_sets", "harmful"), "overrefusal": ("overrefusal_sets", "safe")}


def check_prompt_sets(config: EvalConfig, suites: Sequence[str]) -> None:
    """Fail before any generation if a suite names a prompt set that is unknown or of the wrong kind."""
    from mimicry.data.sources import PROMPT_SETS

    for suite in suites:
        if suite not in SUITE_SET_KINDS:
            continue
        field_name, kind = SUITE_SET_KINDS[suite]
        for name in getattr(config, field_name):
            if PROMPT_SETS.get(name).kind != kind:
                valid = [n for n in PROMPT_SETS if PROMPT_SETS.get(n).kind == kind]
                raise unknown_name(f"{kind} prompt set (suite {suite})", name, valid)


def _prompt_items(ctx: EvalContext, suite: str, set_names: Sequence[str]) -> list[Item]:
    from mimicry.data.sources import load_prompt_set

    items: list[Item] = []
    for name in set_names:
        prompts = load_prompt_set(name)
        if name == "advbench":
            prompts = seeded_sample(prompts, ctx.config.advbench_sample, ctx.config.seed)
        prompts = seeded_sample(prompts, ctx.config.limit, ctx.config.seed)
        for presentation in _presentations(ctx):
            for p in prompts:
                messages = (
                    [Message(role="user", content=p.text)] if presentation == "plain" else ctx.strategy.present(p.text)
                )
                items.append(Item(suite, name, presentation, p.id, p.text, messages))
    return items


def _rate_row(
    suite: str,
    metric: str,
    set_name: str,
    presentation: str,
    outcomes: Sequence[bool | float | None],
    seed: int,
    judge: str | None = None,
) -> MetricRow:
    parsed = [float(o) for o in outcomes if o is not None]
    low, high = bootstrap_ci(parsed, seed=seed)
    return MetricRow(
        suite=suite,
        metric=metric,
        set=set_name,
        presentation=presentation,
        value=mean(parsed),
        ci_low=low,
        ci_high=high,
        n=len(parsed),
        unparsed=len(outcomes) - len(parsed),
        judge=judge,
    )


def _groups(records: Sequence[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["set"], r["presentation"]), []).append(r)
    return groups


# Harm-suite rates per judge: the share of parsed verdicts whose label is in the set.
# ASR counts only compliance; the old keyword metric (anything not a refusal) keeps its own name.
HARM_RATES: dict[str, frozenset[str]] = {
    "asr": frozenset({"compliance"}),
    "refusal_rate": frozenset({"refusal"}),
    "other_rate": frozenset({"other"}),
    "non_refusal_rate": frozenset({"compliance", "other"}),
}


def verdict_label(record: dict[str, Any]) -> str:
    """A stored verdict's label; records written before three-way labels carry only `complied`."""
    if "label" in record:
        return record["label"]
    complied = record.get("complied")
    return UNPARSED if complied is None else ("compliance" if complied else "refusal")


@SUITES.register("harm")
def harm_suite(ctx: EvalContext) -> list[MetricRow]:
    items = _prompt_items(ctx, "harm", ctx.config.harm_sets)
    generations = list(_generate(ctx, items, ctx.generation_config(), "harm").values())
    return harm_rows(generations, _judge(ctx, generations), ctx.config.seed)


def harm_rows(
    generations: Sequence[dict[str, Any]], verdicts: dict[str, dict[str, dict[str, Any]]], seed: int
) -> list[MetricRow]:
    """Per set and presentation: degenerate rate and each judge's rates; then kappa between judges."""
    rows: list[MetricRow] = []
    for (set_name, presentation), group in _groups(generations).items():
        rows.append(
            _rate_row(
                "harm", "degenerate_rate", set_name, presentation, [is_degenerate(g["response"]) for g in group], seed
            )
        )
        for judge_id, by_key in verdicts.items():
            judged = [by_key[g["key"]] for g in group]
            labels = [verdict_label(v) for v in judged]
            for metric, wanted in HARM_RATES.items():
                outcomes = [None if lab == UNPARSED else lab in wanted for lab in labels]
                rows.append(_rate_row("harm", metric, set_name, presentation, outcomes, seed, judge_id))
            scores = [v.get("harm_score") for v in judged]
            if any(x is not None for x in scores):
                rows.append(_rate_row("harm", "harm_score", set_name, presentation, scores, seed, judge_id))
    for a, b in combinations(sorted(verdicts), 2):
        keys = [
            g["key"]
            for g in generations
            if verdict_label(verdicts[a][g["key"]]) != UNPARSED and verdict_label(verdicts[b][g["key"]]) != UNPARSED
        ]
        ratings_a = [verdict_label(verdicts[a][k]) for k in keys]
        ratings_b = [verdict_label(verdicts[b][k]) for k in keys]
        low, high = bootstrap_kappa_ci(ratings_a, ratings_b, seed=seed)
        rows.append(
            MetricRow(
                suite="harm",
                metric="kappa",
                set="all",
                presentation="all",
                value=cohen_kappa(ratings_a, ratings_b),
                ci_low=low,
                ci_high=high,
                n=len(keys),
                unparsed=len(generations) - len(keys),
                judge=f"{a} vs {b}",
            )
        )
    return rows


@SUITES.register("overrefusal")
def overrefusal_suite(ctx: EvalContext) -> list[MetricRow]:
    """Keyword refusal rate: model judges score harm, which a safe prompt's answer never has."""
    items = _prompt_items(ctx, "overrefusal", ctx.config.overrefusal_sets)
    generations = _generate(ctx, items, ctx.generation_config(), "over-refusal").values()
    rows: list[MetricRow] = []
    for (set_name, presentation), group in _groups(list(generations)).items():
        rows.append(
            _rate_row(
                "overrefusal",
                "refusal_rate",
                set_name,
                presentation,
                [is_refusal_reply(g["response"]) for g in group],
                ctx.config.seed,
                "keyword",
            )
        )
        rows.append(
            _rate_row(
                "overrefusal",
                "degenerate_rate",
                set_name,
                presentation,
                [is_degenerate(g["response"]) for g in group],
                ctx.config.seed,
            )
        )
    return rows


@SUITES.register("task")
def task_suite(ctx: EvalContext) -> list[MetricRow]:
    from mimicry.evaluation.answers import score_answer
    from mimicry.tasks import load_task

    if ctx.task is None:
        raise MimicryError("the task suite needs a task: pass --task (e.g. --task piqa)")
    spec = load_task(ctx.task)
    strategy = ctx.strategy
    if strategy is None:
        from mimicry.strategies import get_strategy

        strategy = get_strategy("benign")
    examples = spec.examples(ctx.config.task_split, limit=ctx.config.limit, seed=ctx.config.seed)
    items = []
    for ex in examples:
        prompt = list(strategy.render(ex).prompt_messages)
        forced = [Message(role="assistant", content=strategy.reply_prefix)] if strategy.reply_prefix else []
        items.append(
            Item("task", spec.name, strategy.name, ex.id, prompt[-1].content, prompt + forced, {"gold": ex.gold})
        )
    generation = ctx.generation_config(ctx.config.task_max_new_tokens)
    records = _generate(ctx, items, generation, f"task {spec.name}")
    scores = [
        score_answer(spec.metric, rec["response"], ex, spec.labels)
        for rec, ex in zip(records.values(), examples, strict=True)
    ]
    unparsed = sum(s.parsed is None for s in scores)
    metrics = {spec.metric: [s.value for s in scores]}
    for extra in sorted({k for s in scores for k in s.extra}):
        metrics[extra] = [s.extra.get(extra, 0.0) for s in scores]
    rows = []
    for metric, values in metrics.items():
        low, high = bootstrap_ci(values, seed=ctx.config.seed)
        rows.append(
            MetricRow(
                suite="task",
                metric=metric,
                set=spec.name,
                presentation=strategy.name,
                value=mean(values),
                ci_low=low,
                ci_high=high,
                n=len(values),
                unparsed=unparsed,
            )
        )
    return rows


def parse_suites(suites: Sequence[str] | str) -> list[str]:
    names = [s.strip() for s in (suites.split(",") if isinstance(suites, str) else suites) if s.strip()]
    if not names:
        raise MimicryError(f"no suite given; choose from {', '.join(SUITES.names())}")
    for name in names:
        SUITES.get(name)
    return list(dict.fromkeys(names))


def resolve_backend(model: str | GenerationBackend) -> GenerationBackend:
    """A backend object is used as is; a name or path loads the transformers backend."""
    if isinstance(model, str):
        from mimicry.generation.base import get_backend

        return get_backend("transformers", model)
    if not isinstance(model, GenerationBackend):
        raise MimicryError(f"expected a model name, a path or a generation backend, got {type(model).__name__}")
    return model


def evaluate_spec(model: str, spec: EvalSpec, out_dir: str | Path) -> EvalSummary:
    """What the grid's evaluate stage and `mimicry eval` both run, so a CLI evaluation reproduces a
    grid cell: the spec's backend under its inference-time system prompt (PTST, BackdoorAlign)."""
    from mimicry.generation import get_backend, with_system_prompt

    backend = get_backend(spec.generation.backend, model, **spec.generation.options)
    backend = with_system_prompt(backend, spec.inference_system_prompt)
    return evaluate(backend, spec.suites, spec.task, spec.strategy, spec.evaluation, out_dir)


def evaluate(
    model: str | GenerationBackend,
    suites: Sequence[str] | str,
    task: str | None = None,
    strategy: str | None = None,
    config: EvalConfig | None = None,
    out_dir: str | Path = "eval",
    judge_backends: dict[str, GenerationBackend] | None = None,
) -> EvalSummary:
    """Run the suites on a model; records and `summary.json` go to `out_dir` (reruns resume).

    `judge_backends` maps a judge spec (as written, or its judge id) to an already-loaded backend.
    """
    config = config or EvalConfig()
    names = parse_suites(suites)
    check_prompt_sets(config, names)
    raw_judges = [j.strip() if isinstance(j, str) else j.judge_id for j in config.judges] if "harm" in names else []
    raw_judges = [j for j in raw_judges if j]
    judge_specs = parse_judge_list(raw_judges)
    strategy_obj = None
    if strategy is not None:
        from mimicry.strategies import get_strategy

        strategy_obj = get_strategy(strategy)
    if "task" in names and task is None:
        raise MimicryError("the task suite needs a task: pass --task (e.g. --task piqa)")
    if task is not None:
        from mimicry.tasks import load_task

        spec = load_task(task)
        if config.task_split not in spec.split_names():
            raise unknown_name(f"split of task {task}", config.task_split, spec.split_names())
    out = Path(out_dir)
    backend = resolve_backend(model)
    judges_by_spec = judge_backends or {}
    ctx = EvalContext(
        backend=backend,
        config=config,
        strategy=strategy_obj,
        task=task,
        out_dir=out,
        generations=RecordStore(out / "generations.jsonl"),
        verdicts=RecordStore(out / "verdicts.jsonl"),
    )
    ctx.judges = [
        build_judge(
            spec,
            backend=judges_by_spec.get(raw) or judges_by_spec.get(spec.judge_id),
            api_key_env=config.judge_api_key_env,
            endpoint_options={"max_retries": config.judge_max_retries, "backoff_seconds": config.judge_backoff_seconds},
        )
        for raw, spec in zip(raw_judges, judge_specs, strict=True)
    ]
    rows: list[MetricRow] = []
    for name in names:
        suite_rows = SUITES.get(name)(ctx)
        tokens = config.task_max_new_tokens if name == "task" else None
        rows.extend(r.model_copy(update={"max_new_tokens": tokens or config.max_new_tokens}) for r in suite_rows)
    summary = EvalSummary(model=backend.model_id, config_hash=hash_obj(config), out_dir=str(out), rows=rows)
    atomic_write_text(out / "summary.json", summary.model_dump_json(indent=2))
    return summary


def rescore(out_dir: Path, judge_specs: Sequence[str], batch_size: int = 16, seed: int = 0) -> EvalSummary:
    """Re-judge the stored harm generations of an evaluation directory with `judge_specs`, without
    generating. The old verdicts and summary are first copied to timestamped backups (never
    overwritten); new verdicts are appended, and `summary.json` is rewritten with the harm rows
    recomputed (other suites' rows kept)."""
    import shutil
    import time

    from mimicry.console import info

    gen_file = out_dir / "generations.jsonl"
    if not gen_file.is_file():
        raise MimicryError(
            f"no generations.jsonl in {out_dir}: point rescore at an evaluation directory "
            "(the --out of `mimicry eval`, or an evaluate artifact's eval/ directory)"
        )
    generations = [g for g in RecordStore(gen_file).records() if g.get("suite") == "harm"]
    if not generations:
        raise MimicryError(f"{gen_file} holds no harm-suite generations to re-judge")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for name in ("verdicts.jsonl", "summary.json"):
        if (out_dir / name).is_file():
            backup = out_dir / f"{name}.bak-{stamp}"
            shutil.copy2(out_dir / name, backup)
            info(f"kept the old {name} as {backup.name}")
    specs = parse_judge_list(list(judge_specs))
    judges = [build_judge(spec) for spec in specs]
    verdicts = judge_generations(judges, generations, RecordStore(out_dir / "verdicts.jsonl"), batch_size)
    tokens = generations[0].get("generation", {}).get("max_new_tokens")
    rows = [r.model_copy(update={"max_new_tokens": tokens}) for r in harm_rows(generations, verdicts, seed)]
    old_rows: list[MetricRow] = []
    model, config_hash = generations[0]["model"], generations[0]["config_hash"]
    if (out_dir / "summary.json").is_file():
        old = EvalSummary.model_validate_json((out_dir / "summary.json").read_text(encoding="utf-8"))
        old_rows = [r for r in old.rows if r.suite != "harm"]
        config_hash = old.config_hash
    summary = EvalSummary(model=model, config_hash=config_hash, out_dir=str(out_dir), rows=old_rows + rows)
    atomic_write_text(out_dir / "summary.json", summary.model_dump_json(indent=2))
    return summary
