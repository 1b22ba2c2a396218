"""A small name -> factory registry shared by :mod:`fgad.models` and :mod:`fgad.losses`.

A factory is registered once under a unique name (a duplicate is an error) together with its default
keyword arguments; :meth:`Registry.create` calls it with those defaults overridden by the caller's
keyword arguments, the way ``timm.create_model`` does.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, overload

T = TypeVar("T")

__all__ = ["Registry", "RegistryEntry"]


@dataclass(frozen=True)
class RegistryEntry(Generic[T]):
    """One registered factory.

    Attributes:
        name: the registered name.
        factory: the callable that builds the object.
        defaults: keyword arguments applied before the caller's.
        doc: the first line of the factory's docstring.
    """

    name: str
    factory: Callable[..., T]
    defaults: dict[str, Any] = field(default_factory=dict)
    doc: str = ""


class Registry(Generic[T]):
    """Name -> factory mapping with fnmatch listing and helpful errors.

    Args:
        kind: what is registered ("model", "loss"), used in error messages.

    Example:
        >>> reg = Registry("widget")
        >>> @reg.register
        ... def small(width: int = 2) -> int:
        ...     return width
        >>> reg.create("small", width=5)
        5
        >>> reg.list("sm*")
        ['small']
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, RegistryEntry[T]] = {}

    @overload
    def register(self, factory: Callable[..., T], /) -> Callable[..., T]: ...

    @overload
    def register(
        self, factory: None = None, /, *, name: str | None = None, **defaults: Any
    ) -> Callable[[Callable[..., T]], Callable[..., T]]: ...

    def register(
        self, factory: Callable[..., T] | None = None, /, *, name: str | None = None, **defaults: Any
    ) -> Any:
        """Register ``factory`` under ``name`` (default: its ``__name__``); usable as a decorator.

        Raises:
            ValueError: if the name is already registered.
        """

        def decorator(fn: Callable[..., T]) -> Callable[..., T]:
            key = name if name is not None else fn.__name__
            if not key or not isinstance(key, str):
                raise ValueError(f"{self.kind} name must be a non-empty string, got {key!r}")
            if key in self._entries:
                raise ValueError(f"{self.kind} {key!r} is already registered")
            doc = (inspect.getdoc(fn) or "").split("\n", 1)[0]
            self._entries[key] = RegistryEntry(key, fn, dict(defaults), doc)
            return fn

        if factory is not None:
            return decorator(factory)
        return decorator

    def get(self, name: str) -> RegistryEntry[T]:
        """Return the entry for ``name``.

        Raises:
            KeyError: unknown name; the message lists the closest registered names.
        """
        try:
            return self._entries[name]
        except KeyError:
            close = difflib.get_close_matches(str(name), list(self._entries), n=5, cutoff=0.4)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise KeyError(
                f"unknown {self.kind} {name!r}{hint} (registered: {', '.join(sorted(self._entries))})"
            ) from None

    def create(self, name: str, **kwargs: Any) -> T:
        """Build ``name`` with its defaults overridden by ``kwargs``."""
        entry = self.get(name)
        return entry.factory(**{**entry.defaults, **kwargs})

    def list(self, pattern: str = "*") -> list[str]:
        """Sorted registered names matching the fnmatch ``pattern``."""
        return sorted(n for n in self._entries if fnmatch.fnmatchcase(n, pattern))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)
