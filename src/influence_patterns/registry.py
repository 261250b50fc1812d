"""One small registry for everything looked up by name: QoIs, IG baselines, quadrature
rules, GPR methods, ablation methods, backends, tasks and default models.

A :class:`Registry` is a ``dict`` from name to item that also keeps a one-line
description per name, raises one clear :class:`InputError` for an unknown name (listing
the valid ones), and gives the CLI its choices and help text, so a new entry is one
``register`` call and shows up everywhere.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Generic, Iterable, TypeVar

from influence_patterns.errors import InputError

T = TypeVar("T")


@dataclass(frozen=True)
class Lazy:
    """An item named by ``"package.module:attribute"``, imported on its first
    :meth:`Registry.lookup`: a registry the CLI reads for its help can list heavy items
    (torch code) without importing them."""

    target: str

    def load(self) -> Any:
        module, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(module), attribute)


#: The error for an unknown name: ``kind``, ``name``, ``choices`` (registration order)
#: and ``sorted`` (alphabetical) are filled in.
UNKNOWN = "unknown {kind} {name!r}; choose one of {choices}"


class Registry(dict, Generic[T]):  # type: ignore[type-arg]
    """Named items of one ``kind`` ("QoI", "baseline", ...), in registration order.
    An unknown name raises ``error`` (default :class:`InputError`) worded by ``unknown``
    (default :data:`UNKNOWN`). Each item holds everything its users need (a function,
    a rule and its default size, ...): a new entry is one ``register`` call."""

    def __init__(self, kind: str, error: type[Exception] = InputError, unknown: str = UNKNOWN) -> None:
        super().__init__()
        self.kind = kind
        self.error = error
        self.unknown = unknown
        self.descriptions: dict[str, str] = {}

    def register(self, name: str, item: T, description: str = "", replace: bool = False) -> T:
        """Add ``item`` under ``name``; a second item of the same name needs ``replace=True``."""
        if name in self and not replace:
            raise InputError(f"{self.kind} {name!r} is already registered (pass replace=True to overwrite it)")
        self[name] = item
        self.descriptions[name] = description or (getattr(item, "description", "") or "")
        return item

    def lookup(self, name: str) -> T:
        """The item called ``name``, or one line naming the valid choices."""
        try:
            item = self[name]
        except (KeyError, TypeError):
            message = self.unknown.format(kind=self.kind, name=name, choices=self.choices(),
                                          sorted=self.choices(sorted(self)))
            raise self.error(message) from None
        if isinstance(item, Lazy):
            item = self[name] = item.load()
        return item

    def check(self, name: str) -> str:
        """``name`` if registered (for options stored by name), else :meth:`lookup`'s error."""
        self.lookup(name)
        return name

    def choices(self, names: Iterable[str] | None = None) -> str:
        """``"a, b, c"``: the names, for messages."""
        return ", ".join(self if names is None else names)

    def help(self, lead: str = "") -> str:
        """CLI help: ``lead`` then each name with its description, as one paragraph."""
        parts = [f"{n} ({d})" if d else n for n, d in ((n, self.descriptions.get(n, "")) for n in self)]
        return (lead + " " if lead else "") + "; ".join(parts) + "."
