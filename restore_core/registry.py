"""One explicit registry per kind (architectures, losses, metrics, scan backends).

Entries are added by explicit imports in each sub-package's ``__init__``; there is no directory scanning.
A duplicate name raises, so two modules can never silently shadow each other.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, List, Optional


class Registry:
    """A name -> object map with a duplicate check and a query API.

    >>> LOSSES = Registry("loss")
    >>> @LOSSES.register()
    ... def l1(): ...
    >>> LOSSES.get("l1") is l1
    True
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: Dict[str, Any] = {}

    def register(self, name: Optional[str] = None, obj: Any = None) -> Callable[[Any], Any]:
        """Register ``obj`` under ``name`` (defaults to ``obj.__name__``); usable as a decorator."""

        def _add(o: Any) -> Any:
            key = name or o.__name__
            if key in self._items:
                raise KeyError(f"{self.kind} {key!r} is already registered (by {self._items[key]!r})")
            self._items[key] = o
            return o

        if obj is not None:
            return _add(obj)
        return _add

    def get(self, name: str) -> Any:
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise KeyError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def names(self) -> List[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
