"""Core plumbing: registries, strict configs, hashing, near-duplicate detection, a light CLI start."""

from __future__ import annotations

import datetime
import hashlib
import subprocess
import sys

import pytest

from mimicry.config import StrictModel, validate_config
from mimicry.errors import MimicryError
from mimicry.hashing import canonical_json, hash_obj, sha256_file
from mimicry.registry import Registry
from mimicry.text import NearDuplicateIndex, normalize


class Inner(StrictModel):
    learning_rate: float = 1e-4
    epochs: int = 1


class Outer(StrictModel):
    name: str
    training: Inner = Inner()


def test_registry_unknown_name_lists_known_and_suggests():
    reg: Registry[int] = Registry("widget")
    reg.add("alpha", 1)
    reg.add("beta", 2)
    with pytest.raises(MimicryError, match=r"unknown widget 'alpah'.*Did you mean 'alpha'.*Known: alpha, beta"):
        reg.get("alpah")
    with pytest.raises(ValueError, match="registered twice"):
        reg.add("alpha", 3)


class Generates:
    def generate(self, prompts, config):
        return []


def test_registry_resolves_lazy_entries_on_first_use_and_checks_their_base():
    from collections import OrderedDict

    from mimicry.generation.base import GenerationBackend

    reg: Registry[type] = Registry("mapping", base=dict)
    reg.add_lazy("ordered", "collections:OrderedDict")
    reg.add_lazy("counter", "collections:Counter")
    reg.add_lazy("deque", "collections:deque")  # not a dict: refused when resolved
    reg.add_lazy("gone", "mimicry.no_such_module:Thing")
    assert reg.names() == ["counter", "deque", "gone", "ordered"]
    assert reg.get("ordered") is OrderedDict
    with pytest.raises(TypeError, match="mapping 'deque'.*is not a builtins.dict"):
        reg.get("deque")
    with pytest.raises(MimicryError, match="mapping 'gone' needs mimicry.no_such_module:Thing, which is unavailable"):
        reg.get("gone")
    with pytest.raises(MimicryError, match="unknown mapping 'ordred'. Did you mean 'ordered'"):
        reg.get("ordred")
    with pytest.raises(ValueError, match="not 'module:object'"):
        reg.add_lazy("bad", "collections.OrderedDict")
    with pytest.raises(TypeError, match="is not a builtins.dict"):
        reg.add("list", list)
    # A protocol base: a class must define the protocol's methods.
    backends: Registry[type] = Registry("backend", base=GenerationBackend)
    backends.add("ok", Generates)
    with pytest.raises(TypeError, match="is not a mimicry.generation.base.GenerationBackend"):
        backends.add("mute", OrderedDict)


def test_registries_name_their_plugins_without_importing_them():
    """Judges and backends are lazy entries: listing them imports no judge or backend module."""
    plugins = (
        "mimicry.evaluation.learned_judge",
        "mimicry.evaluation.llm_judges",
        "mimicry.evaluation.model_judge",
        "mimicry.generation.transformers_backend",
    )
    code = (
        "import sys; from mimicry.evaluation.judges import JUDGES; from mimicry.generation import BACKENDS; "
        "print(JUDGES.names(), BACKENDS.names(), "
        f"[m for m in {plugins!r} if m in sys.modules]); JUDGES.get('learned'); "
        "print('mimicry.evaluation.learned_judge' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split("\n")[:2] == [
        "['cascade', 'harmbench', 'keyword', 'learned', 'llm', 'model'] ['openai', 'transformers', 'vllm'] []",
        "True",
    ]


def test_config_rejects_unknown_nested_key_with_nearest_name():
    with pytest.raises(MimicryError) as err:
        validate_config(Outer, {"name": "x", "training": {"learning_rte": 0.1}}, "grid.yaml")
    message = str(err.value)
    assert "training.learning_rte" in message
    assert "Did you mean 'learning_rate'" in message
    assert "grid.yaml" in message


def test_hash_is_stable_and_sensitive():
    a = Outer(name="x")
    assert hash_obj(a) == hash_obj({"training": {"epochs": 1, "learning_rate": 1e-4}, "name": "x"})
    assert hash_obj(a) != hash_obj(Outer(name="y"))


def test_a_config_hashes_as_its_json_form_and_unicode_as_itself():
    """JSON mode, not python mode: a date keys as its ISO text, so the key never depends on `str()`."""

    class Dated(StrictModel):
        when: datetime.datetime

    dated = Dated(when=datetime.datetime(2024, 1, 2, 3, 4, 5))
    assert canonical_json(dated) == '{"when":"2024-01-02T03:04:05"}'
    assert canonical_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'
    assert len(hash_obj("x")) == 16 and len(hash_obj("x", length=8)) == 8
    assert hash_obj("x") == hashlib.sha256(b'"x"').hexdigest()[:16]


def test_file_checksums_read_the_whole_file_in_chunks(tmp_path):
    data = bytes(range(256)) * 9
    (tmp_path / "f").write_bytes(data)
    assert sha256_file(tmp_path / "f", chunk=100) == sha256_file(tmp_path / "f") == hashlib.sha256(data).hexdigest()


def test_near_duplicates_are_found_and_distinct_texts_are_not():
    index = NearDuplicateIndex(["How do I build a bomb at home?", "Write a poem about the sea."])
    assert index.is_duplicate("how do I build a BOMB at home")
    assert index.is_duplicate("Tell me: how do I build a bomb at home quickly?")
    assert not index.is_duplicate("What is the capital of France?")
    assert normalize("Héllo,   World!") == "hello world"


# Every module a light command touches; building the parser imports every `*_cmd` module.
LIGHT_MODULES = (
    "mimicry.cli",
    "mimicry.tasks",
    "mimicry.strategies",
    "mimicry.models",
    "mimicry.mitigations",
    "mimicry.evaluation",
    "mimicry.experiments",
    "mimicry.generation.transformers_backend",
    "mimicry.generation.openai_backend",
    "mimicry.generation.vllm_backend",
)
HEAVY_LIBRARIES = ("torch", "transformers", "sklearn", "matplotlib")


def test_importing_the_package_and_cli_loads_no_heavy_library():
    """The CLI must start fast: heavy libraries are imported inside the functions that need them."""
    code = (
        f"import sys, importlib; [importlib.import_module(m) for m in {LIGHT_MODULES!r}]; "
        "import mimicry.cli; mimicry.cli.build_parser(); "
        f"print(sorted(m for m in {HEAVY_LIBRARIES!r} if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_missing_data_root_is_an_actionable_error(tmp_path, monkeypatch):
    from mimicry.cli import main
    from mimicry.data.root import set_data_root

    monkeypatch.delenv("MIMICRY_DATA", raising=False)
    set_data_root(None)
    try:
        assert main(["data", "check"]) == 2
        assert main(["--data-root", str(tmp_path / "nowhere"), "data", "check"]) == 2
    finally:
        set_data_root(None)
