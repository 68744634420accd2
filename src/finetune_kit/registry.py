"""One generic registry: parts of the library looked up by name.

Datasets, models, strategies, losses, optimizers, schedulers, metrics: each kind has one
:class:`Registry` and user code adds its own entries with ``register``.

Example:
    >>> from finetune_kit.registry import Registry
    >>> colours = Registry("colour")
    >>> @colours.register("red")
    ... def make_red():
    ...     return "#f00"
    >>> colours.get("red")()
    '#f00'
    >>> colours.list("r*")
    ['red']
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar, overload

from finetune_kit.errors import ConfigError, UnknownNameError

__all__ = ["Registry", "did_you_mean"]

T = TypeVar("T")

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def did_you_mean(name: str, choices: list[str] | tuple[str, ...]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest choice, or ``""`` when none is close.

    Args:
        name: what the user wrote.
        choices: the valid names.

    Returns:
        A sentence to append to an error message, starting with a space, or an empty string.

    Example:
        >>> did_you_mean("resnt18", ["resnet18", "convnet"])
        " Did you mean 'resnet18'?"
    """
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


class Registry(Generic[T]):
    """A name -> object table for one kind of part.

    Names are lowercase snake_case. Registering a name twice raises (pass ``override=True`` to
    replace on purpose); looking up an unknown name raises :class:`UnknownNameError` listing the
    valid choices.

    Args:
        kind: what the entries are, used in messages ("dataset", "model", ...).

    Example:
        >>> r = Registry("loss")
        >>> r.register("l1", abs)
        <built-in function abs>
        >>> "l1" in r
        True
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    @overload
    def register(self, name: str, obj: None = None, *, override: bool = False) -> Callable[[T], T]:
        ...

    @overload
    def register(self, name: str, obj: T, *, override: bool = False) -> T:
        ...

    def register(self, name: str, obj: T | None = None, *, override: bool = False):
        """Register ``obj`` under ``name``; without ``obj``, return a decorator.

        Args:
            name: lowercase snake_case key.
            obj: the entry; omit it to use ``register`` as a decorator.
            override: replace an existing entry instead of raising.

        Returns:
            ``obj`` itself (or a decorator that registers and returns its argument).

        Raises:
            ConfigError: the name is not snake_case, or is taken and ``override`` is False.
        """
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(
                f"Cannot register {self.kind} {name!r}: names must be lowercase snake_case "
                "(letters, digits, underscores, starting with a letter), e.g. 'my_model'."
            )
        if name in self._entries and not override:
            raise ConfigError(
                f"A {self.kind} named {name!r} is already registered. Choose another name, "
                "or pass override=True to replace it on purpose."
            )

        def add(entry: T) -> T:
            self._entries[name] = entry
            return entry

        return add if obj is None else add(obj)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (for tests and plugins that clean up after themselves)."""
        self.get(name)
        del self._entries[name]

    def get(self, name: str) -> T:
        """Return the entry registered under ``name``.

        Raises:
            UnknownNameError: no such name; the message lists the registered names.
        """
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            pass
        choices = sorted(self._entries)
        raise UnknownNameError(
            f"Unknown {self.kind} {name!r}.{did_you_mean(str(name), choices)} "
            f"Available {self.kind}s: {', '.join(choices) or '(none registered)'}."
        )

    def list(self, pattern: str = "*") -> list[str]:
        """Sorted names matching a shell-style glob, e.g. ``"resnet*"``."""
        return sorted(n for n in self._entries if fnmatch.fnmatchcase(n, pattern))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self)} entries)"
