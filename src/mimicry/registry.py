"""Named registries: named implementations instead of if/else chains, one mechanism for all of them.

An entry is an object, or a lazy `"module:object"` string imported the first time its name is
asked for. Lazy entries keep heavy libraries (torch, vLLM, scikit-learn) out of light commands, and
let a registry name its plugins without importing them, so a plugin module may import the module
that holds the registry without closing an import circle. A registry with a `base` checks every
entry against it (a class must subclass it, or define a runtime protocol's methods; an instance
must be one), eager entries when added and lazy ones when resolved.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from mimicry.errors import MimicryError, unknown_name

T = TypeVar("T")


class Lazy(str):
    """A `"module:object"` reference, resolved by `Registry.get` on first use."""

    def resolve(self) -> Any:
        module, _, name = self.partition(":")
        return getattr(importlib.import_module(module), name)


def _protocol_methods(protocol: type) -> list[str]:
    return sorted(
        name
        for klass in protocol.__mro__
        if getattr(klass, "_is_protocol", False) and klass.__module__ != "typing"
        for name, value in vars(klass).items()
        if callable(value) and not name.startswith("_")
    )


def conforms(obj: Any, base: type) -> bool:
    """Whether `obj` is an acceptable entry for a registry of `base`: a subclass (for a runtime
    protocol, a class that defines its methods) or an instance."""
    if isinstance(obj, type):
        if getattr(base, "_is_protocol", False):
            return all(callable(getattr(obj, name, None)) for name in _protocol_methods(base))
        return issubclass(obj, base)
    return isinstance(obj, base)


class Registry(Generic[T]):
    """Maps names to objects; an unknown name raises an error naming the nearest and all known ones."""

    def __init__(self, kind: str, base: type | None = None) -> None:
        self.kind = kind
        self.base = base
        self._items: dict[str, T | Lazy] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            self.add(name, obj)
            return obj

        return decorator

    def add(self, name: str, obj: T) -> None:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._items[name] = self._checked(name, obj)

    def add_lazy(self, name: str, target: str) -> None:
        """Register `"module:object"`, imported when `name` is first asked for."""
        module, sep, attr = target.partition(":")
        if not (module and sep and attr):
            raise ValueError(f"{self.kind} {name!r}: lazy target {target!r} is not 'module:object'")
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._items[name] = Lazy(target)

    def replace(self, name: str, obj: T) -> None:
        """Re-point a registered name (e.g. a local model directory saved again elsewhere)."""
        self.get(name)
        self._items[name] = self._checked(name, obj)

    def get(self, name: str) -> T:
        try:
            item = self._items[name]
        except KeyError:
            raise unknown_name(self.kind, name, self._items) from None
        if isinstance(item, Lazy):
            try:
                resolved = item.resolve()
            except (ImportError, AttributeError) as err:
                raise MimicryError(f"{self.kind} {name!r} needs {item}, which is unavailable: {err}") from None
            item = self._items[name] = self._checked(name, resolved)
        return item

    def _checked(self, name: str, obj: Any) -> T:
        if self.base is not None and not conforms(obj, self.base):
            raise TypeError(f"{self.kind} {name!r}: {obj!r} is not a {self.base.__module__}.{self.base.__qualname__}")
        return obj

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
