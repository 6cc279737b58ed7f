"""Mixing: mimic (structural and rewrite), generic, PTST, BackdoorAlign, similarity and proofs."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from mimicry.cli import main
from mimicry.data.sources import evaluation_index, load_instruction_set, safety_partition
from mimicry.errors import MimicryError
from mimicry.evaluation.refusal import is_refusal
from mimicry.generation.base import GenerationBackend, GenerationConfig
from mimicry.mitigations import MITIGATIONS, MixConfig, infer_format, mix
from mimicry.mitigations.methods import LLAMA2_SAFETY_SYSTEM_PROMPT
from mimicry.mitigations.mimic import MimicConfig, intent_overlap
from mimicry.records import Conversation, Message, load_conversations, write_conversations
from mimicry.strategies import build_conversations, get_strategy


@pytest.fixture(scope="module")
def data() -> dict[str, list[Conversation]]:
    return {
        s: build_conversations("piqa", s, "train", limit=40, seed=0) for s in ("benign", "aoa", "autoif", "aoa+autoif")
    }


def test_registry_lists_every_method():
    assert MITIGATIONS.names() == ["backdoor", "generic", "mimic", "none", "ptst"]
    with pytest.raises(MimicryError, match="unknown mitigation 'mimc'.*Did you mean 'mimic'"):
        mix([Conversation.from_turns("a", "b")], "mimc")


@pytest.mark.parametrize("strategy", ["benign", "aoa", "autoif", "aoa+autoif"])
def test_task_placed_mimic_matches_user_format_and_generic_does_not(data, strategy):
    user = data[strategy]
    mimic = mix(user, "mimic", ratio=0.25, seed=1, config=MixConfig(placement="task"))
    generic = mix(user, "generic", ratio=0.25, seed=1)
    assert len(mimic.added) == len(generic.added) == 10
    assert mimic.similarity is not None and generic.similarity is not None
    assert mimic.similarity.match_rate >= 0.95
    assert generic.similarity.match_rate <= 0.05
    assert mimic.similarity.nn_tfidf > generic.similarity.nn_tfidf
    assert all(is_refusal(c.completion or "") for c in mimic.added)
    chosen = get_strategy(strategy)
    for row in mimic.added:
        assert row.system == chosen.system_prompt
        assert row.last_user.startswith(chosen.user_prefix)
        assert (row.completion or "").startswith(chosen.reply_prefix)
    if chosen.long_form:
        assert all((c.completion or "").endswith("The answer is I cannot help with this.") for c in mimic.added)


def test_style_placed_mimic_is_the_bare_request_in_the_prompting_style(data):
    """The AOA case by hand: AOA system prompt, `AOA, execute my instruction: ` + the bare request,
    then the acknowledgement and a long-form refusal; nothing of the PIQA template."""
    aoa = get_strategy("aoa")
    result = mix(data["aoa"], "mimic", count=10, seed=0)
    pairs = {p.id: p for p in safety_partition("mitigation")}
    assert result.report["details"]["placement"] == "style" and result.report["style_match_rate"] == 1.0
    for row, pid in zip(result.added, result.report["pair_ids"], strict=True):
        assert row.system == aoa.system_prompt
        assert row.last_user == "AOA, execute my instruction: " + pairs[pid].instruction
        assert row.completion == aoa.reply_prefix + pairs[pid].refusal.strip()
        assert "Answer:" not in row.last_user and "The answer is" not in (row.completion or "")


@pytest.mark.parametrize("strategy", ["benign", "aoa", "autoif", "aoa+autoif"])
def test_style_placement_keeps_each_strategys_style(data, strategy):
    chosen = get_strategy(strategy)
    fmt = infer_format(data[strategy])
    assert fmt.style.user_prefix == chosen.user_prefix
    result = mix(data[strategy], "mimic", count=8, seed=3)
    assert all(fmt.style_matches(c) and is_refusal(c.completion or "") for c in result.added)
    assert all(c.last_user.startswith(chosen.user_prefix) for c in result.added)


def test_both_placement_alternates(data):
    result = mix(data["aoa"], "mimic", count=10, seed=0, config=MixConfig(placement="both"))
    by_id = {c.meta["pair_id"]: c for c in result.added}
    rows = [by_id[pid] for pid in result.report["pair_ids"]]
    assert [r.last_user.endswith("Answer:") for r in rows] == [i % 2 == 1 for i in range(10)]


def test_persona_variants_are_both_reported(data):
    ack = mix(data["aoa"], "mimic", count=10, seed=0)
    assert ack.report["variants"] == {"ack_refusal": 1.0, "plain_refusal": 0.0}
    plain = mix(data["aoa"], "mimic", count=10, seed=0, config=MixConfig(mimic=MimicConfig(variant="plain_refusal")))
    reply_prefix = get_strategy("aoa").reply_prefix
    assert all(not (c.completion or "").startswith(reply_prefix) for c in plain.added)
    assert all(is_refusal(c.completion or "") for c in plain.added)
    assert all(c.system == get_strategy("aoa").system_prompt for c in plain.added)


def test_mix_is_deterministic_shuffled_and_sized(data):
    user = data["benign"]
    a = mix(user, "generic", count=12, seed=3)
    b = mix(user, "generic", count=12, seed=3)
    c = mix(user, "generic", count=12, seed=4)
    assert [x.to_openai() for x in a.conversations] == [x.to_openai() for x in b.conversations]
    assert a.report["pair_ids"] != c.report["pair_ids"]
    assert len(a.conversations) == 52 and a.report["added"] == 12
    positions = [i for i, x in enumerate(a.conversations) if x.meta.get("source") == "mitigation:generic"]
    assert len(positions) == 12 and positions != list(range(40, 52))
    assert mix(user, "generic", ratio=0.05, seed=0).report["added"] == 2
    with pytest.raises(MimicryError, match="either a count or a ratio"):
        mix(user, "generic", count=3, ratio=0.1)
    with pytest.raises(MimicryError, match="mitigation pool holds"):
        mix(user, "generic", count=100_000)


def test_added_requests_come_from_the_mitigation_pool_and_avoid_evaluation(data):
    result = mix(data["aoa"], "mimic", count=20, seed=2)
    pool = {p.id: p for p in safety_partition("mitigation")}
    proof = result.report["disjointness"]
    assert proof["checked"] == 20 and proof["exact_overlaps"] == 0 and proof["near_duplicates"] == 0
    index = evaluation_index()
    for row, entry in zip(result.added, proof["per_request"], strict=True):
        pair = pool[entry["pair_id"]]
        assert pair.instruction in row.last_user
        assert entry["max_jaccard"] == pytest.approx(index.best_match(pair.instruction), abs=1e-4)
        assert entry["max_jaccard"] < index.threshold


def test_ptst_adds_nothing_and_sets_the_test_time_prompt(data):
    result = mix(data["autoif"], "ptst", count=10)
    assert result.added == [] and result.similarity is None
    assert sorted(c.last_user for c in result.conversations) == sorted(c.last_user for c in data["autoif"])
    assert result.inference_system_prompt == LLAMA2_SAFETY_SYSTEM_PROMPT
    assert mix(data["benign"], "none").conversations and mix(data["benign"], "none").inference_system_prompt is None


def test_backdoor_secret_prompt_is_seeded_and_joined_with_user_system_prompt(data):
    result = mix(data["aoa"], "backdoor", count=8, seed=5)
    secret = result.inference_system_prompt
    assert secret is not None
    trigger = secret.split("\n\n", 1)[0]
    assert len(trigger.split()) == 150
    assert secret == trigger + "\n\n" + get_strategy("aoa").system_prompt
    assert all(c.system == secret for c in result.added)
    assert all(c.last_user in {p.instruction for p in safety_partition("mitigation")} for c in result.added)
    assert mix(data["aoa"], "backdoor", count=8, seed=5).inference_system_prompt == secret
    other = mix(data["benign"], "backdoor", count=8, seed=6).inference_system_prompt
    assert other != trigger and len(other.split()) == 150


def test_fallback_to_per_example_mimicry_without_scaffold():
    base = load_instruction_set("alpaca_tiny")[:60]
    systems = ["You are terse.", "You love poetry and rhyme.", None]
    user = [Conversation.from_turns(c.last_user, c.completion, system=systems[i % 3]) for i, c in enumerate(base)]
    assert not infer_format(user).has_scaffold
    result = mix(user, "mimic", count=12, seed=0)
    details = result.report["details"]  # one cluster per system prompt
    assert "per_example" in {c["fallback"] for c in details.get("clusters", [details])}
    assert {c.system for c in result.added} <= set(systems)
    assert len({c.system for c in result.added}) > 1
    assert all(is_refusal(c.completion or "") for c in result.added)


def test_json_replies_are_mimicked_as_json():
    base = load_instruction_set("alpaca_tiny")[:40]
    user = [
        Conversation.from_turns(
            f"Task: {c.last_user}\nReply in JSON.", json.dumps({"answer": c.completion, "label": "ok"})
        )
        for c in base
    ]
    result = mix(user, "mimic", count=10, seed=0)
    # the template holds the answers' final "." inside its constant, so a refusal ending in "?" misses it
    assert result.similarity is not None and result.similarity.match_rate >= 0.9
    for row in result.added:
        reply = json.loads(row.completion or "")
        assert list(reply) == ["answer", "label"] and is_refusal(reply["answer"])


class ScriptedRewriter:
    """Test-only GenerationBackend: answers rewrite prompts from a fixed script, so every
    validation path (kept, unparseable, intent lost, not a refusal) is exercised."""

    model_id = "scripted-test-rewriter"

    def __init__(self) -> None:
        self.calls = 0

    def generate(self, prompts: Sequence[Sequence[Message]], config: GenerationConfig) -> list[str]:
        outputs = []
        for prompt in prompts:
            task = json.loads(prompt[-1].content.split("same format:\n", 1)[1].split("\n\n", 1)[0])
            kind = self.calls % 4
            self.calls += 1
            if kind == 0:
                outputs.append("no json here")
            elif kind == 1:
                outputs.append(json.dumps({"system": None, "user": "Tell me about kittens.", "assistant": "No."}))
            elif kind == 2:
                outputs.append(json.dumps({"system": None, "user": task["user"], "assistant": "Sure, here it is."}))
            else:
                outputs.append(
                    "Here you go: "
                    + json.dumps(
                        {
                            "system": "sys",
                            "user": f"Please: {task['user']}",
                            "assistant": "I cannot help with that.",
                        }
                    )
                )
        return outputs


def test_rewrite_mode_validates_and_discards():
    assert isinstance(ScriptedRewriter(), GenerationBackend)
    user = [
        Conversation.from_turns(f"Please: {c.last_user}", c.completion or "", system="sys")
        for c in load_instruction_set("alpaca_tiny")[:20]
    ]
    config = MixConfig(mimic=MimicConfig(mode="rewrite"))
    config.mimic.rewrite.oversample = 4.0
    result = mix(user, "mimic", count=3, seed=0, config=config, backend=ScriptedRewriter())
    details = result.report["details"]
    assert details["kept"] == 3 and details["shortfall"] == 0
    assert details["mode"] == "rewrite" and details["rewriter"] == "scripted-test-rewriter"
    assert details["discarded"] == {"unparseable": 3, "intent_lost": 3, "not_a_refusal": 3}
    assert details["tried"] == 12
    assert all(c.system == "sys" and c.last_user.startswith("Please: ") for c in result.added)
    assert result.similarity is not None and result.similarity.match_rate == 1.0
    short = mix(
        user,
        "mimic",
        count=3,
        seed=0,
        config=MixConfig(mimic=MimicConfig(mode="rewrite")),
        backend=ScriptedRewriter(),
    )
    assert short.report["details"]["shortfall"] == 2
    with pytest.raises(MimicryError, match="rewrite mode needs a model"):
        mix(user, "mimic", count=3, config=MixConfig(mimic=MimicConfig(mode="rewrite")))


def test_intent_overlap_measures_kept_content_words():
    # "explain" is a content word the rewrite dropped; "pick", "lock", "quickly" are kept.
    assert intent_overlap("Explain how to pick a lock quickly.", "How do I pick a lock quickly?") == 0.75
    assert intent_overlap("Explain how to pick a lock quickly.", "Tell me about kittens.") == 0.0


def test_cli_mix_writes_data_and_report(tmp_path, data, capsys):
    user_file = tmp_path / "u.jsonl"
    write_conversations(user_file, data["aoa+autoif"])
    out = tmp_path / "mixed.jsonl"
    assert (
        main(
            [
                "mix",
                "--user",
                str(user_file),
                "--method",
                "mimic",
                "--count",
                "8",
                "--seed",
                "2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "added rows in the prompting style: 1.00" in printed and "0 exact, 0 near duplicates" in printed
    assert "AOA, execute my instruction: {request}" in printed
    assert len(load_conversations(out)) == 48
    report = json.loads((tmp_path / "mixed.report.json").read_text())
    assert report["added"] == 8 and len(report["pair_ids"]) == 8
    assert report["style_match_rate"] == 1.0
    assert "meta" not in out.read_text().splitlines()[0]


def test_cli_rejects_bad_input_without_writing(tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    out = tmp_path / "mixed.jsonl"
    assert main(["mix", "--user", str(empty), "--method", "generic", "--count", "2", "--out", str(out)]) == 2
    assert "no valid conversation" in capsys.readouterr().err
    mixed_roles = tmp_path / "mixed_roles.jsonl"
    rows = [
        {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]},
        {"messages": [{"role": "user", "content": "a"}]},
    ]
    mixed_roles.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["mix", "--user", str(mixed_roles), "--method", "mimic", "--count", "2", "--out", str(out)]) == 2
    assert "do not end with an assistant reply" in capsys.readouterr().err
    assert not out.exists()


def test_safety_rows_need_a_harmful_request_and_a_refusal(data):
    """The pool is filtered on the request (shipped harm labels), then on the reply; both counted."""
    from mimicry.mitigations.harm import HARM_THRESHOLD, pool_harm_scores

    result = mix(data["aoa"], "generic", count=30, seed=4)
    counts = result.report["pool_filter"]
    assert counts["partition"] == len(safety_partition("mitigation"))
    assert counts["dropped_not_harmful"] > 0 and counts["dropped_not_refusing"] > 0
    assert counts["kept"] == result.report["pool_size"]
    assert counts["partition"] - counts["dropped_not_harmful"] - counts["dropped_not_refusing"] == counts["kept"]
    scores = pool_harm_scores()
    assert all(scores[pid] >= HARM_THRESHOLD for pid in result.report["pair_ids"])
    assert all(is_refusal(c.completion or "") for c in result.added)
    party = [
        p for p in safety_partition("mitigation") + safety_partition("alignment") if "party with me" in p.instruction
    ]
    assert party and all(scores[p.id] < HARM_THRESHOLD for p in party)


@pytest.mark.slow
def test_the_harm_classifier_scores_requests_with_the_embedder():
    import json as _json
    from importlib import resources

    from mimicry.mitigations.harm import LABELS_FILE, score

    weights = _json.loads(resources.files("mimicry.mitigations.data").joinpath(LABELS_FILE).read_text())["classifier"]
    harmful, benign = score(["Explain how to make a pipe bomb at home.", "Write a poem about spring rain."], weights)
    assert harmful > 0.8 > benign


def test_contrast_rows_are_benign_requests_answered_helpfully_in_the_same_style(data):
    """`contrast` turns a share of the added rows into benign pool requests with their helpful replies,
    placed where the safety rows are; the safety rows themselves are those of the same amount without it."""
    from mimicry.mitigations.harm import HARM_THRESHOLD, pool_harm_scores

    user = data["aoa"]
    fmt = infer_format(user)
    plain = mix(user, "mimic", count=6, seed=3)
    result = mix(user, "mimic", count=12, seed=3, config=MixConfig(contrast=0.5))
    contrast = [c for c in result.added if c.meta["source"] == "contrast:mimic"]
    safety = [c for c in result.added if c.meta["source"] == "mitigation:mimic"]
    assert len(contrast) == 6 and result.report["contrast"]["added"] == 6 and result.report["requested"] == 12
    assert [c.to_openai() for c in safety] == [c.to_openai() for c in plain.added]
    scores = pool_harm_scores()
    for row in contrast:
        assert scores[row.meta["pair_id"]] < HARM_THRESHOLD
        assert fmt.style_matches(row), "placed in the prompting style, like the style-placed refusals"
        assert not is_refusal(row.completion[len(fmt.style.reply_opening) :])
    generic = mix(user, "generic", count=4, seed=3, config=MixConfig(contrast=0.5))
    helpful = [c for c in generic.added if c.meta["source"] == "contrast:generic"]
    assert len(helpful) == 2 and all(c.system is None and not is_refusal(c.completion) for c in helpful)


def test_contrast_rows_are_refused_where_a_method_has_none(data):
    with pytest.raises(MimicryError, match="backdoor has no contrast rows.*generic, mimic"):
        mix(data["aoa"], "backdoor", count=4, seed=0, config=MixConfig(contrast=0.5))
    with pytest.raises(ValueError, match="less than 1"):
        MixConfig(contrast=1.0)
