"""Grid configs: strict keys with nearest-name hints, early name checks, cell expansion, shipped configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mimicry.config import load_yaml_config
from mimicry.errors import MimicryError
from mimicry.experiments.grid import BASELINE, GridConfig, check_names, expand, load_grid

REPO = Path(__file__).resolve().parents[1]

GRID = {
    "name": "tiny",
    "models": [{"name": "smollm2-135m", "align": True}],
    "tasks": ["piqa"],
    "strategies": ["benign", "aoa"],
    "mitigations": [{"method": "none"}, {"method": "mimic", "counts": [4, 8]}],
    "seeds": [0, 1],
}


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_an_unknown_top_level_key_names_the_nearest_valid_one(tmp_path: Path) -> None:
    data = {**GRID, "mitigatons": GRID["mitigations"]}
    del data["mitigations"]
    with pytest.raises(MimicryError, match=r"mitigatons: unknown key\. Did you mean 'mitigations'\?"):
        load_yaml_config(GridConfig, write(tmp_path, data))


def test_an_unknown_nested_key_names_the_nearest_valid_one(tmp_path: Path) -> None:
    with pytest.raises(MimicryError, match=r"data\.limt: unknown key\. Did you mean 'limit'\?"):
        load_yaml_config(GridConfig, write(tmp_path, {**GRID, "data": {"limt": 5}}))
    bad_amount = {**GRID, "mitigations": [{"method": "mimic", "count": [4]}]}
    with pytest.raises(MimicryError, match=r"Did you mean 'counts'\?"):
        load_yaml_config(GridConfig, write(tmp_path, bad_amount))


def test_stage_sections_are_checked_against_the_stage_configs(tmp_path: Path) -> None:
    with pytest.raises(MimicryError, match=r"training\.learning_rat: unknown key\. Did you mean 'learning_rate'\?"):
        load_yaml_config(GridConfig, write(tmp_path, {**GRID, "training": {"learning_rat": 1e-4}}))
    options = {**GRID, "mitigations": [{"method": "mimic", "counts": [4], "options": {"mimc": {}}}]}
    with pytest.raises(MimicryError, match=r"Did you mean 'mimic'\?"):
        check_names(load_yaml_config(GridConfig, write(tmp_path, options)))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("tasks", ["piqaa"], r"unknown task 'piqaa'\. Did you mean 'piqa'\?"),
        (
            "strategies",
            ["benign", "aoa+autofi"],
            r"unknown strategy 'aoa\+autofi'\. Did you mean 'aoa\+autoif'\?",
        ),
        ("mitigations", [{"method": "mimik"}], r"unknown mitigation 'mimik'\. Did you mean 'mimic'\?"),
    ],
)
def test_unknown_names_fail_before_any_work(tmp_path: Path, field: str, value: object, message: str) -> None:
    with pytest.raises(MimicryError, match=message):
        load_grid(write(tmp_path, {**GRID, field: value}))


def test_counts_and_ratios_are_exclusive(tmp_path: Path) -> None:
    both = {**GRID, "mitigations": [{"method": "generic", "counts": [4], "ratios": [0.1]}]}
    with pytest.raises(MimicryError, match="counts or ratios, not both"):
        load_yaml_config(GridConfig, write(tmp_path, both))


def test_expansion_gives_baselines_then_every_combination_seed_by_seed(tmp_path: Path) -> None:
    grid = load_yaml_config(GridConfig, write(tmp_path, GRID))
    cells = expand(grid)
    baselines = [c for c in cells if c.mitigation == BASELINE]
    tuned = [c for c in cells if c.fine_tuned]
    assert [c.strategy for c in baselines] == ["benign", "aoa"]
    # 2 strategies x (none + mimic at 2 counts) x 2 seeds
    assert len(tuned) == 2 * 3 * 2
    assert {(c.mitigation, c.key.amount_label) for c in tuned} == {("none", ""), ("mimic", "4"), ("mimic", "8")}
    assert len({c.id for c in cells}) == len(cells)
    assert [c.seed for c in tuned] == [0] * 6 + [1] * 6  # seed by seed: a stopped grid has whole seeds
    assert cells[-1].key.model_dump() == {
        "model": "smollm2-135m-aligned",
        "task": "piqa",
        "strategy": "aoa",
        "mitigation": "mimic",
        "amount_kind": "count",
        "amount": 8.0,
        "seed": 1,
    }


SHIPPED_GRIDS = sorted(p.stem for p in (REPO / "configs").glob("*.yaml"))


def test_every_shipped_grid_is_checked() -> None:
    assert {"quickstart", "paper-cpu", "paper-cpu-aoa", "paper-cpu-qwen", "paper-gpu"} <= set(SHIPPED_GRIDS)


@pytest.mark.parametrize("name", SHIPPED_GRIDS)
def test_shipped_configs_validate(name: str) -> None:
    grid = load_grid(REPO / "configs" / f"{name}.yaml")
    assert expand(grid)


def test_quickstart_aligns_with_its_own_smaller_recipe_under_its_own_name() -> None:
    """The quickstart's quick recipe must never overwrite the default aligned model of paper-cpu."""
    from mimicry.training.alignment import AlignConfig, aligned_name

    quickstart, paper = (load_grid(REPO / "configs" / f"{name}.yaml").alignment for name in ("quickstart", "paper-cpu"))
    assert paper == AlignConfig()
    assert aligned_name("smollm2-135m", quickstart) != aligned_name("smollm2-135m", paper)
    assert quickstart.safety_pairs + sum(quickstart.benign.values()) < paper.safety_pairs + sum(paper.benign.values())


def test_results_name_an_aligned_model_by_its_recipe() -> None:
    from mimicry.training.alignment import aligned_name

    quickstart = load_grid(REPO / "configs" / "quickstart.yaml")
    own = aligned_name("smollm2-135m", quickstart.alignment)
    assert {c.key.model for c in expand(quickstart)} == {own}
    assert {c.key.model for c in expand(load_grid(REPO / "configs" / "paper-cpu.yaml"))} == {"smollm2-135m-aligned"}


def test_a_mitigation_limited_to_some_strategies_skips_the_others(tmp_path: Path) -> None:
    data = {**GRID, "mitigations": [{"method": "none"}, {"method": "mimic", "ratios": [0.2], "strategies": ["aoa"]}]}
    cells = [c for c in expand(load_yaml_config(GridConfig, write(tmp_path, data))) if c.mitigation != BASELINE]
    assert sorted((c.strategy, c.mitigation) for c in cells if c.seed == 0) == [
        ("aoa", "mimic"),
        ("aoa", "none"),
        ("benign", "none"),
    ]
    bad = {**GRID, "mitigations": [{"method": "mimic", "ratios": [0.2], "strategies": ["autoif"]}]}
    with pytest.raises(MimicryError, match=r"unknown strategy of mitigations\[0\] 'autoif'"):
        check_names(load_yaml_config(GridConfig, write(tmp_path, bad)))


def test_two_entries_of_one_method_stay_apart_in_results_and_cache(tmp_path: Path) -> None:
    """Mimic placements from `options` reach the mix stage, key it, and name the results."""
    mitigations = [
        {"method": "mimic", "ratios": [0.2], "options": {"placement": "style"}},
        {"method": "mimic", "ratios": [0.2], "options": {"placement": "task"}, "label": "mimic-in-task"},
    ]
    grid = load_yaml_config(GridConfig, write(tmp_path, {**GRID, "mitigations": mitigations, "seeds": [0]}))
    check_names(grid)
    cells = [c for c in expand(grid) if c.mitigation != BASELINE and c.strategy == "aoa"]
    assert [c.key.mitigation for c in cells] == ["mimic placement=style", "mimic-in-task"]
    assert len({c.id for c in cells}) == 2
    bad = {**GRID, "mitigations": [{"method": "mimic", "options": {"placement": "styel"}}]}
    with pytest.raises(MimicryError, match="placement"):
        check_names(load_yaml_config(GridConfig, write(tmp_path, bad)))
    from mimicry.experiments.stages import MixStage
    from mimicry.mitigations import MixConfig

    keys = {
        MixStage().key({"user": "u"}, {"options": MixConfig.model_validate(dict(c.options)).model_dump(mode="json")})
        for c in cells
    }
    assert len(keys) == 2


@pytest.mark.parametrize("name", ["/tmp/elsewhere", "../up", "a/b", ".hidden", ""])
def test_a_grid_name_cannot_place_its_run_outside_runs(tmp_path: Path, name: str) -> None:
    with pytest.raises(MimicryError, match="plain folder name|name"):
        load_yaml_config(GridConfig, write(tmp_path, {**GRID, "name": name}))
