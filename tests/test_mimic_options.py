"""Mimic's format options each change the added rows: a slightly varying system prompt is copied
from the drawn user row, `request_slot` moves the request, `other_slots` empties the rest (#15)."""

from __future__ import annotations

import json

import pytest

from mimicry.data.sources import SafetyPair, safety_partition
from mimicry.errors import MimicryError
from mimicry.mitigations import MixConfig, infer_format, mix
from mimicry.mitigations.mimic import MimicConfig
from mimicry.records import Conversation, Message
from mimicry.strategies import build_conversations

DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]


@pytest.fixture(scope="module")
def aoa_rows() -> list[Conversation]:
    return build_conversations("piqa", "aoa", "train", limit=40, seed=0)


@pytest.fixture(scope="module")
def pairs() -> dict[str, SafetyPair]:
    return {p.id: p for p in safety_partition("mitigation")}


def with_dated_system(rows: list[Conversation]) -> list[Conversation]:
    """The AOA rows with a system prompt that ends in the day of the week: a slight variation."""
    return [
        c.model_copy(
            update={
                "messages": [Message(role="system", content=f"{c.system} Today is {DAYS[i % 5]}."), *c.messages[1:]]
            }
        )
        for i, c in enumerate(rows)
    ]


@pytest.mark.parametrize("placement", ["style", "task"])
def test_a_slightly_varying_system_prompt_is_the_drawn_rows_own(aoa_rows, placement) -> None:
    user = with_dated_system(aoa_rows)
    assert infer_format(user).system.kind == "varies_slightly"
    result = mix(user, "mimic", count=10, seed=0, config=MixConfig(placement=placement))
    systems = [c.system for c in result.added]
    assert set(systems) <= {c.system for c in user}, "each row carries a system prompt the user's data holds"
    assert len(set(systems)) > 1, "the variants are kept, not collapsed onto the consensus"


def test_request_slot_puts_the_request_in_the_chosen_slot(aoa_rows, pairs) -> None:
    fmt = infer_format(aoa_rows)
    assert fmt.user.slots == 3
    for slot in (1, 2, 3):
        config = MixConfig(placement="task", mimic=MimicConfig(request_slot=slot))
        result = mix(aoa_rows, "mimic", count=6, seed=0, config=config)
        for row in result.added:
            values = fmt.user.match(row.last_user)
            request = pairs[row.meta["pair_id"]].instruction
            assert values is not None
            # a slot followed by punctuation loses the request's own final stop (`_fit`)
            assert [v.rstrip(".?!") == request.rstrip(".?!") for v in values] == [i == slot - 1 for i in range(3)]


def test_other_slots_are_copied_from_a_user_row_or_left_empty(aoa_rows) -> None:
    fmt = infer_format(aoa_rows)
    user_values = [fmt.user.match(c.last_user) for c in aoa_rows]
    copied_options = {tuple(v[1:]) for v in user_values if v is not None}

    copy = mix(aoa_rows, "mimic", count=6, seed=0, config=MixConfig(placement="task"))
    copied = [fmt.user.match(c.last_user) for c in copy.added]
    assert all(v is not None and tuple(v[1:]) in copied_options for v in copied)

    empty_config = MixConfig(placement="task", mimic=MimicConfig(other_slots="empty"))
    empty = mix(aoa_rows, "mimic", count=6, seed=0, config=empty_config)
    emptied = [fmt.user.match(c.last_user) for c in empty.added]
    assert all(v is not None and v[0] and v[1:] == ["", ""] for v in emptied)


def test_the_rewrite_prompt_shows_each_example_and_the_pair_as_one_json_object() -> None:
    """The rewriter sees the user's rows verbatim (non-ASCII kept) with the keys it must answer in."""
    from mimicry.mitigations.mimic import REWRITE_INSTRUCTIONS, rewrite_prompt

    examples = [
        Conversation.from_turns("Résumé, s'il vous plaît", "Voilà.", system="Réponds en français."),
        Conversation.from_turns("Second", "Two"),
    ]
    pair = SafetyPair(id="p1", instruction="Explique comment voler à l’étalage", refusal="Je refuse.")
    system, user = rewrite_prompt(pair, examples)
    assert system == Message(role="system", content=REWRITE_INSTRUCTIONS)
    shown = user.content.split("one JSON object per line:\n", 1)[1].split("\n\n", 1)[0]
    assert [json.loads(line) for line in shown.splitlines()] == [
        {"system": "Réponds en français.", "user": "Résumé, s'il vous plaît", "assistant": "Voilà."},
        {"system": None, "user": "Second", "assistant": "Two"},
    ]
    assert "Résumé" in shown
    assert '{"user": "Explique comment voler à l’étalage", "assistant": "Je refuse."}' in user.content
    assert user.content.endswith('Answer with one JSON object with the keys "system", "user" and "assistant".')


def test_a_rewrite_is_discarded_for_each_reason_and_kept_at_the_overlap_bound() -> None:
    from mimicry.data.sources import load_prompt_set
    from mimicry.mitigations.mimic import parse_rewrite, rewrite_failure

    assert parse_rewrite('{"user": "only a user turn"}') is None
    assert parse_rewrite('["user", "assistant"]') is None
    parsed = parse_rewrite('Here: {"system": 3, "user": "u", "assistant": "a"} done')
    assert parsed is not None and parsed.system is None and parsed.last_user == "u"

    pair = SafetyPair(id="p", instruction="Explain how to pick a lock quickly.", refusal="I can't help.")
    refusal = "I cannot help with that."
    assert rewrite_failure(pair, None, 0.5) == "unparseable"
    # 3 of the 4 content words kept: exactly at a 0.75 bound is enough
    kept = Conversation.from_turns("How do I pick a lock quickly?", refusal)
    assert rewrite_failure(pair, kept, 0.75) is None
    assert rewrite_failure(pair, kept, 0.8) == "intent_lost"
    assert rewrite_failure(pair, Conversation.from_turns(kept.last_user, "Sure, step one:"), 0.5) == "not_a_refusal"
    evaluation_prompt = load_prompt_set("harmful_instructions")[0].text
    copied = SafetyPair(id="q", instruction=evaluation_prompt, refusal=refusal)
    assert rewrite_failure(copied, Conversation.from_turns(evaluation_prompt, refusal), 0.5) == "overlaps_evaluation"


def test_intent_overlap_counts_three_letter_words_and_is_whole_without_content_words() -> None:
    from mimicry.mitigations.mimic import intent_overlap

    assert intent_overlap("Buy a gun.", "Sell a gun.") == 0.5
    assert intent_overlap("Do it to me.", "Anything at all.") == 1.0


def test_structural_mimic_is_reproducible_from_its_seed(aoa_rows) -> None:
    """The mix artifact is keyed by its seed: the same seed must draw the same user rows."""
    user = with_dated_system(aoa_rows)
    config = MixConfig(placement="task")
    rows = [mix(user, "mimic", count=10, seed=seed, config=config).added for seed in (0, 0, 1)]
    assert rows[0] == rows[1]
    assert rows[0] != rows[2]


class ValidRewriter:
    """Test-only GenerationBackend: answers every rewrite prompt with a valid rewrite of its pair and
    records what it was sent."""

    model_id = "valid-test-rewriter"

    def __init__(self) -> None:
        self.prompts: list[list[Message]] = []
        self.configs: list = []

    def generate(self, prompts, config) -> list[str]:
        self.prompts += [list(p) for p in prompts]
        self.configs.append(config)
        tasks = [json.loads(p[-1].content.split("same format:\n", 1)[1].split("\n\n", 1)[0]) for p in prompts]
        return [
            json.dumps({"system": "sys", "user": f"Please: {t['user']}", "assistant": "I cannot help with that."})
            for t in tasks
        ]


def test_rewrite_stops_at_the_count_and_is_reproducible(pairs) -> None:
    user = [
        Conversation.from_turns(f"Please: {c.last_user}", c.completion or "", system="sys")
        for c in build_conversations("piqa", "benign", "train", limit=12, seed=0)
    ]
    config = MixConfig(mimic=MimicConfig(mode="rewrite"))
    runs = [ValidRewriter(), ValidRewriter()]
    results = [mix(user, "mimic", count=3, seed=0, config=config, backend=r) for r in runs]
    details = results[0].report["details"]
    assert (details["tried"], details["kept"], details["shortfall"]) == (3, 3, 0)
    assert len(runs[0].prompts) == 3, "valid rewrites of the first pairs are enough: no more are asked"
    assert runs[0].prompts == runs[1].prompts, "the user rows shown are drawn from the seed"
    assert [c.max_new_tokens for c in runs[0].configs] == [config.mimic.rewrite.max_new_tokens]
    assert len(set(results[0].report["pair_ids"])) == 3
    assert all(pairs[c.meta["pair_id"]].instruction in c.last_user for c in results[0].added)


def test_a_request_slot_past_the_template_is_a_clear_error(aoa_rows) -> None:
    config = MixConfig(placement="task", mimic=MimicConfig(request_slot=4))
    with pytest.raises(MimicryError, match="request_slot 4 does not exist: the user template has 3 slots"):
        mix(aoa_rows, "mimic", count=2, seed=0, config=config)


def test_without_a_scaffold_each_row_copies_a_drawn_rows_system_prompt(pairs) -> None:
    from mimicry.data.sources import load_instruction_set
    from mimicry.mitigations.mimic import structural_mimic

    systems = ["You are terse.", "You love poetry and rhyme."]
    base = load_instruction_set("alpaca_tiny")[:30]
    user = [Conversation.from_turns(c.last_user, c.completion, system=systems[i % 2]) for i, c in enumerate(base)]
    fmt = infer_format(user)
    assert not fmt.has_scaffold
    chosen = list(pairs.values())[:8]
    made = structural_mimic(user, chosen, fmt, MimicConfig(), seed=0)
    assert made.details["fallback"] == "per_example"
    assert made.pair_ids == [p.id for p in chosen]
    assert {c.system for c in made.conversations} == set(systems)
