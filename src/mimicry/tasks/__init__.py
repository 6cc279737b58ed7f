"""Tasks as data: every task is a YAML spec in `tasks/specs/`; adding a task adds a file, no Python."""

from __future__ import annotations

from pathlib import Path

import yaml

from mimicry.config import validate_config
from mimicry.errors import MimicryError
from mimicry.registry import Registry
from mimicry.tasks.spec import Example, TaskSpec, template_variables

SPECS_DIR = Path(__file__).parent / "specs"


def load_spec_file(path: Path) -> TaskSpec:
    """Read and validate one spec; errors name the file and the offending key."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise MimicryError(f"{path} is not valid YAML: {err}") from None
    spec = validate_config(TaskSpec, data, str(path))
    if spec.name != path.stem:
        raise MimicryError(f"{path}: the spec's name {spec.name!r} must match its file name {path.stem!r}")
    return spec


TASKS: Registry[TaskSpec] = Registry("task", base=TaskSpec)
for _path in sorted(SPECS_DIR.glob("*.yaml")):
    _spec = load_spec_file(_path)
    TASKS.add(_spec.name, _spec)


def load_task(name: str) -> TaskSpec:
    return TASKS.get(name)


def task_names() -> list[str]:
    return TASKS.names()


__all__ = ["TASKS", "Example", "TaskSpec", "load_spec_file", "load_task", "task_names", "template_variables"]
