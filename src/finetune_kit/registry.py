"""One generic registry: parts of the library looked up by name.

Datasets, models, strategies, losses, optimizers, schedulers, metrics: each kind has one
:class:`Registry` and user code adds its own entries with ``register``. Options given by name
are checked in one place, :func:`check_options`: an unknown option is an error that suggests the
closest valid one and lists them all.

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
import inspect
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Generic, TypeVar, overload

from finetune_kit.errors import ConfigError, UnknownNameError

__all__ = ["Registry", "accepted_options", "check_options", "did_you_mean", "plural"]

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


def plural(kind: str) -> str:
    """The plural of a registry kind: ``"loss"`` -> ``"losses"``, ``"strategy"`` -> ``"strategies"``.

    Args:
        kind: a singular noun.

    Returns:
        Its plural.

    Example:
        >>> [plural(k) for k in ("model", "loss", "strategy")]
        ['models', 'losses', 'strategies']
    """
    if kind.endswith(("s", "x", "ch", "sh")):
        return kind + "es"
    if kind.endswith("y") and kind[-2:-1] not in ("a", "e", "i", "o", "u"):
        return kind[:-1] + "ies"
    return kind + "s"


def accepted_options(
    factory: Callable[..., Any], *, reserved: Sequence[str] = (), open_kwargs: bool = True
) -> list[str] | None:
    """The keyword options ``factory`` takes, minus ``reserved`` ones (``None``: any, it has ``**kwargs``).

    Args:
        factory: a function or class.
        reserved: parameters the library fills itself (not user options).
        open_kwargs: whether a ``**kwargs`` parameter accepts anything; False when it only
            carries the reserved arguments on to a base class.

    Returns:
        The option names in signature order, or None when the factory accepts any keyword.

    Example:
        >>> def build(root, *, size=32, flip=True): ...
        >>> accepted_options(build, reserved=["root"])
        ['size', 'flip']
    """
    params = inspect.signature(factory).parameters
    if open_kwargs and any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [n for n, p in params.items() if p.kind in named and n not in reserved and n != "self"]


def check_options(
    kind: str,
    name: str,
    options: Mapping[str, Any],
    accepted: Sequence[str] | None,
    *,
    common: Sequence[str] = (),
) -> None:
    """The one option checker: refuse an option that the ``kind`` named ``name`` does not take.

    Args:
        kind: what the part is (``"loss"``, ``"model"`` ...), for the message.
        name: its registered name.
        options: the options given.
        accepted: the options it takes (``None``: any).
        common: options every part of this kind takes besides its own (listed as such).

    Raises:
        ConfigError: naming the unknown option, the closest valid one, and all valid ones.

    Example:
        >>> check_options("loss", "focal", {"gama": 2.0}, ["gamma", "reduction"])
        ... # doctest: +ELLIPSIS
        Traceback (most recent call last):
        finetune_kit.errors.ConfigError: The loss 'focal' has no option 'gama'. Did you mean 'gamma'? ...
    """
    if accepted is None:
        return
    for key in options:
        if key not in accepted and key not in common:
            also = f"; every {kind} also takes {', '.join(common)}" if common else ""
            raise ConfigError(
                f"The {kind} {name!r} has no option {key!r}.{did_you_mean(str(key), [*accepted, *common])} "
                f"Its options are: {', '.join(accepted) or '(none)'}{also}."
            )


class Registry(Generic[T]):
    """A name -> object table for one kind of part.

    Names are lowercase snake_case. Registering a name twice raises (pass ``override=True`` to
    replace on purpose); looking up an unknown name raises :class:`UnknownNameError` listing the
    valid choices.

    Args:
        kind: what the entries are, used in messages ("dataset", "model", ...).
        options: ``options(entry)`` -> the keyword options an entry takes (``None``: any);
            by default read from the entry's signature (:func:`accepted_options`).
        common: options every entry takes, besides its own.

    Example:
        >>> r = Registry("loss")
        >>> r.register("l1", abs)
        <built-in function abs>
        >>> "l1" in r
        True
    """

    def __init__(
        self,
        kind: str,
        *,
        options: Callable[[T], Sequence[str] | None] | None = None,
        common: Sequence[str] = (),
    ) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._options = options or accepted_options
        self._common = tuple(common)

    @overload
    def register(self, name: str, obj: None = None, *, override: bool = False) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, obj: T, *, override: bool = False) -> T: ...

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
            f"Available {plural(self.kind)}: {', '.join(choices) or '(none registered)'}."
        )

    def options(self, name: str) -> list[str] | None:
        """The keyword options the entry ``name`` takes (``None``: any)."""
        accepted = self._options(self.get(name))
        return None if accepted is None else list(accepted)

    def check_options(self, name: str, options: Mapping[str, Any]) -> None:
        """Refuse options the entry ``name`` does not take (see :func:`check_options`).

        Raises:
            UnknownNameError: no such name.
            ConfigError: an unknown option, with a suggestion and the valid ones.
        """
        check_options(self.kind, name, options, self.options(name), common=self._common)

    def create(self, name: str, /, *args: Any, **options: Any) -> Any:
        """Call the entry ``name`` with ``args`` and ``options``, checking the options first.

        Example:
            >>> sizes = Registry("size")
            >>> _ = sizes.register("square", lambda side, *, scale=1: side * side * scale)
            >>> sizes.create("square", 3, scale=2)
            18
            >>> sizes.create("square", 3, scael=2)  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            finetune_kit.errors.ConfigError: The size 'square' has no option 'scael'. Did you mean ...
        """
        self.check_options(name, options)
        return self.get(name)(*args, **options)

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
