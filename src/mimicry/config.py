"""Typed configs: pydantic models that reject unknown keys early, naming the nearest valid key."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from mimicry.errors import MimicryError, did_you_mean

M = TypeVar("M", bound="StrictModel")


class StrictModel(BaseModel):
    """Base for every config: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """Follow a validation-error location down nested models to the model that owns the last key."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        annotation = field.annotation
        args = [a for a in getattr(annotation, "__args__", ()) if isinstance(a, type)]
        current = annotation if isinstance(annotation, type) else (args[-1] if args else None)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def format_validation_error(model: type[BaseModel], err: ValidationError, source: str) -> str:
    lines = [f"invalid config in {source}:"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            owner = _model_at(model, tuple(e["loc"]))
            known = list(owner.model_fields) if owner else []
            msg = f"unknown key.{did_you_mean(str(e['loc'][-1]), known)}"
            if known:
                msg += f" Valid keys here: {', '.join(known)}"
        lines.append(f"  {loc}: {msg}")
    return "\n".join(lines)


def validate_config(model: type[M], data: Any, source: str = "config") -> M:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise MimicryError(format_validation_error(model, err, source)) from None


def with_overrides(config: M, overrides: Mapping[str, Any], source: str = "command-line options") -> M:
    """`config` with each given value (None: not given) set at its dotted key, e.g. `mimic.mode`,
    then validated once, as a file's values are: the one way command-line flags override a config."""
    data = config.model_dump()
    for dotted, value in overrides.items():
        if value is None:
            continue
        *parents, leaf = dotted.split(".")
        node = data
        for key in parents:
            node = node[key]
        node[leaf] = value
    return validate_config(type(config), data, source)


def load_yaml_config(model: type[M], path: str | Path) -> M:
    path = Path(path)
    if not path.is_file():
        raise MimicryError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise MimicryError(f"{path} is not valid YAML: {err}") from None
    return validate_config(model, data, str(path))
