"""Metadata read from files, checked before anything is built from it.

Exports (``model.json``), checkpoints (their ``model_info``, ``data_meta``, ``freezing``,
``position`` and ``config`` entries) and safetensors metadata describe a model and its data in
plain numbers, strings and lists. A file may be truncated, edited or malicious, so every reader
passes these entries through the checks here first: types, ranges, lengths that agree with
each other, finite statistics with a positive standard deviation, and sizes a machine can hold
(a class count of ten billion must not allocate a head of terabytes). A bad entry is one
:class:`~finetune_kit.errors.CheckpointError` (or the error class the caller names) that says
which file, which entry, what was expected and how to fix it.

Example:
    >>> meta = {"name": "fake", "num_classes": 2, "in_channels": 1, "image_size": [16, 16],
    ...         "input_size": [16, 16], "class_names": ["a", "b"], "mean": [0.5],
    ...         "std": [0.0], "preset": "none"}
    >>> check_data_meta(meta, "model.json")
    Traceback (most recent call last):
    ...
    finetune_kit.errors.CheckpointError: model.json: data_meta.std[0] must be a finite number > 0, ...
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from finetune_kit.errors import CheckpointError, FinetuneKitError

__all__ = [
    "MAX_CHANNELS",
    "MAX_CLASSES",
    "MAX_IMAGE_SIDE",
    "check_data_meta",
    "check_freezing",
    "check_model_info",
    "check_position",
    "check_stored_model",
]

MAX_CLASSES = 1_000_000
"""The largest class count a file may claim (ImageNet-21k has 21,841)."""
MAX_CHANNELS = 1024
"""The largest number of image channels a file may claim."""
MAX_IMAGE_SIDE = 8192
"""The largest image height or width a file (or a dataset option) may claim, in pixels."""
_MAX_SEED = 2**64 - 1  # the largest seed PyTorch accepts

FIX = "The file is corrupted or was edited; use another copy (or export/train again)."

Error = type[FinetuneKitError]


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Checker:
    """Checks the fields of one entry; every failure names the file, the entry and the fix."""

    def __init__(self, where: str, entry: str, error: Error, fix: str) -> None:
        self.where, self.entry, self.error, self.fix = where, entry, error, fix

    def fail(self, key: str, expected: str, value: Any, *, shown: str | None = None) -> FinetuneKitError:
        got = _show(value) if shown is None else shown
        return self.error(f"{self.where}: {self.entry}.{key} must be {expected}, got {got}. {self.fix}")

    def mapping(self, value: Any, key: str | None = None) -> Mapping[str, Any]:
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            if key is None:
                raise self.error(
                    f"{self.where}: {self.entry} must be a table of named values, got "
                    f"{_show(value)}. {self.fix}"
                )
            raise self.fail(key, "a table of named values", value)
        return value

    def integer(self, value: Any, key: str, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(key, f"an integer in [{low}, {high}]", value)
        return value

    def number(self, value: Any, key: str, *, positive: bool = False) -> float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or (positive and value <= 0):
            raise self.fail(key, "a finite number > 0" if positive else "a finite number", value)
        return float(value)

    def text(self, value: Any, key: str, *, empty: bool = True, limit: int = 1000) -> str:
        if not isinstance(value, str) or (not empty and not value) or len(value) > limit:
            what = "a text" if empty else "a non-empty text"
            raise self.fail(key, f"{what} of at most {limit} characters", value)
        return value

    def size(self, value: Any, key: str) -> tuple[int, int]:
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise self.fail(key, f"a pair [height, width] of integers in [1, {MAX_IMAGE_SIDE}]", value)
        return (
            self.integer(value[0], f"{key}[0]", 1, MAX_IMAGE_SIDE),
            self.integer(value[1], f"{key}[1]", 1, MAX_IMAGE_SIDE),
        )

    def stats(self, value: Any, key: str, channels: int | None, *, positive: bool) -> list[float]:
        if not isinstance(value, (list, tuple)) or not value or len(value) > MAX_CHANNELS:
            raise self.fail(key, "a list of one number per channel", value)
        if channels is not None and len(value) != channels:
            raise self.fail(key, f"a list of {channels} numbers (one per channel)", value)
        return [self.number(v, f"{key}[{i}]", positive=positive) for i, v in enumerate(value)]

    def names(self, value: Any, key: str, count: int | None) -> list[str]:
        if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= MAX_CLASSES:
            raise self.fail(key, "a list of class names", value)
        if count is not None and len(value) != count:
            raise self.fail(key, f"a list of {count} names (one per class)", value, shown=f"{len(value)}")
        return [self.text(v, f"{key}[{i}]") for i, v in enumerate(value)]

    def plain(self, value: Any, key: str, depth: int = 0) -> None:
        """JSON-like data only: numbers, texts, booleans, None, lists and tables of them."""
        if value is None or isinstance(value, (bool, int, str)):
            return
        if isinstance(value, float):
            self.number(value, key)
        elif isinstance(value, (list, tuple)) and depth < 8:
            for i, item in enumerate(value):
                self.plain(item, f"{key}[{i}]", depth + 1)
        elif isinstance(value, Mapping) and depth < 8:
            for name, item in self.mapping(value, key).items():
                self.plain(item, f"{key}.{name}", depth + 1)
        else:
            raise self.fail(key, "plain data (numbers, texts, lists)", value)


_INFO_KEYS = (
    "name",
    "num_classes",
    "in_channels",
    "input_size",
    "min_input_size",
    "head",
    "stages",
    "mean",
    "std",
    "class_names",
    "weights",
    "build_kwargs",
    "load_report",
)
_INFO_REQUIRED = _INFO_KEYS[:7]


def check_model_info(
    info: Any,
    where: str,
    *,
    complete: bool = True,
    error: Error = CheckpointError,
    entry: str = "model_info",
    fix: str = FIX,
) -> dict[str, Any]:
    """Check a stored model description (a ``ModelInfo.to_dict()``).

    Args:
        info: the entry as read from the file.
        where: the file, for messages.
        complete: require every field a model is rebuilt from; False checks only the fields
            present (weights files carry a partial description: mean, std, class names).
        error: the error class to raise.
        entry: the entry's name, for messages.
        fix: what to do about a bad entry, for messages.

    Returns:
        ``info`` as a plain dict (unchanged).

    Raises:
        CheckpointError: (or ``error``) a missing or unknown field, a wrong type, a value out
            of range, or lengths that disagree (mean/std per channel, one name per class).

    Example:
        >>> check_model_info({"num_classes": 10**12}, "w.ckpt", complete=False)
        Traceback (most recent call last):
        ...
        finetune_kit.errors.CheckpointError: w.ckpt: model_info.num_classes must be an integer ...
    """
    c = _Checker(where, entry, error, fix)
    info = dict(c.mapping(info))
    unknown = sorted(set(info) - set(_INFO_KEYS))
    missing = [key for key in _INFO_REQUIRED if key not in info] if complete else []
    if unknown or missing:
        problem = f"unknown fields {unknown}" if unknown else f"no {', '.join(missing)}"
        raise error(f"{where}: {entry} has {problem}. {fix}")
    if "name" in info:
        c.text(info["name"], "name", empty=False, limit=200)
    classes = channels = None
    if "num_classes" in info:
        classes = c.integer(info["num_classes"], "num_classes", 1, MAX_CLASSES)
    if "in_channels" in info:
        channels = c.integer(info["in_channels"], "in_channels", 1, MAX_CHANNELS)
    for key in ("input_size", "min_input_size"):
        if key in info:
            c.size(info[key], key)
    if "head" in info:
        c.text(info["head"], "head")
    if "stages" in info:
        _check_stages(c, info["stages"])
    for key, positive in (("mean", False), ("std", True)):
        if info.get(key) is not None:
            c.stats(info[key], key, channels, positive=positive)
    if info.get("class_names") is not None:
        c.names(info["class_names"], "class_names", classes)
    if info.get("weights") is not None:
        c.text(info["weights"], "weights", limit=4096)
    if "build_kwargs" in info or complete:
        _check_build_kwargs(c, info.get("build_kwargs"), classes, channels)
    if info.get("load_report") is not None:
        _check_load_report(c, info["load_report"])
    return info


_REPORT_LISTS = ("missing", "unexpected", "mismatched", "skipped_head", "adapted", "loaded")


def _check_load_report(c: _Checker, report: Any) -> None:
    """A ``LoadReport.to_dict()``: lists of tensor names, a source text, and a table of shapes."""
    report = c.mapping(report, "load_report")
    unknown = sorted(set(report) - {*_REPORT_LISTS, "source", "shapes"})
    if unknown:
        raise c.fail(
            "load_report",
            f"a weights load report (fields {', '.join(_REPORT_LISTS)}, source, shapes)",
            unknown,
        )
    for key in _REPORT_LISTS:
        names = report.get(key, [])
        if not isinstance(names, (list, tuple)) or len(names) > 100_000:
            raise c.fail(f"load_report.{key}", "a list of tensor names", names)
        for i, name in enumerate(names):
            c.text(name, f"load_report.{key}[{i}]")
    c.text(report.get("source", ""), "load_report.source", limit=4096)
    for name, pair in c.mapping(report.get("shapes", {}), "load_report.shapes").items():
        ok = isinstance(pair, (list, tuple)) and len(pair) == 2
        if not ok or not all(isinstance(s, (list, tuple)) and len(s) <= 8 for s in pair):
            raise c.fail(f"load_report.shapes.{name}", "a pair [weights shape, model shape]", pair)
        for shape in pair:
            for size in shape:
                c.integer(size, f"load_report.shapes.{name}", 0, 2**40)


def _check_stages(c: _Checker, stages: Any) -> None:
    if not isinstance(stages, (list, tuple)) or not 1 <= len(stages) <= 10_000:
        raise c.fail("stages", "a list of [stage name, [module names]] pairs", stages)
    for i, stage in enumerate(stages):
        if not isinstance(stage, (list, tuple)) or len(stage) != 2 or not isinstance(stage[1], (list, tuple)):
            raise c.fail(f"stages[{i}]", "a pair [stage name, [module names]]", stage)
        c.text(stage[0], f"stages[{i}][0]", empty=False)
        for j, module in enumerate(stage[1]):
            c.text(module, f"stages[{i}][1][{j}]")


# Arguments of create_model that load files or rename others: never taken from a file.
_NOT_BUILD_KWARGS = ("weights", "pretrained", "in_chans")


def _check_build_kwargs(c: _Checker, kwargs: Any, classes: int | None, channels: int | None) -> None:
    kwargs = c.mapping(kwargs, "build_kwargs")
    for key in _NOT_BUILD_KWARGS:
        if key in kwargs:
            raise c.fail(f"build_kwargs.{key}", "absent (weights come from the file itself)", kwargs[key])
    for key, expected in (("num_classes", classes), ("in_channels", channels)):
        if key in kwargs and expected is not None and kwargs[key] != expected:
            raise c.fail(f"build_kwargs.{key}", f"{expected} (as {key} says)", kwargs[key])
    if "seed" in kwargs:
        c.integer(kwargs["seed"], "build_kwargs.seed", 0, _MAX_SEED)
    if "dropout" in kwargs:
        dropout = c.number(kwargs["dropout"], "build_kwargs.dropout")
        if not 0 <= dropout < 1:
            raise c.fail("build_kwargs.dropout", "a number in [0, 1)", dropout)
    if "small_input" in kwargs and not isinstance(kwargs["small_input"], bool):
        raise c.fail("build_kwargs.small_input", "true or false", kwargs["small_input"])
    if "input_size" in kwargs:
        size = kwargs["input_size"]
        if isinstance(size, int) and not isinstance(size, bool):
            c.integer(size, "build_kwargs.input_size", 1, MAX_IMAGE_SIDE)
        else:
            c.size(size, "build_kwargs.input_size")
    for key, value in kwargs.items():
        c.plain(value, f"build_kwargs.{key}")


_META_REQUIRED = (
    "name",
    "num_classes",
    "in_channels",
    "image_size",
    "input_size",
    "class_names",
    "mean",
    "std",
)


def check_data_meta(
    meta: Any,
    where: str,
    *,
    error: Error = CheckpointError,
    entry: str = "data_meta",
    fix: str = FIX,
) -> dict[str, Any]:
    """Check a stored data description (a ``DataBundle.meta()``) that preprocessing is built from.

    Args:
        meta: the entry as read from the file (or given by the caller).
        where: the file (or argument), for messages.
        error: the error class to raise.
        entry: the entry's name, for messages.
        fix: what to do about a bad entry, for messages.

    Returns:
        ``meta`` as a plain dict (unchanged).

    Raises:
        CheckpointError: (or ``error``) a missing field, a wrong type, a value out of range, a
            standard deviation that is not > 0, or a class-name list of another length than
            ``num_classes``.

    Example:
        >>> check_data_meta({"name": "x"}, "model.json")
        Traceback (most recent call last):
        ...
        finetune_kit.errors.CheckpointError: model.json: data_meta has no num_classes, ...
    """
    c = _Checker(where, entry, error, fix)
    meta = dict(c.mapping(meta))
    missing = [key for key in _META_REQUIRED if key not in meta]
    if missing:
        raise error(f"{where}: {entry} has no {', '.join(missing)}. {fix}")
    c.text(meta["name"], "name", limit=200)
    classes = c.integer(meta["num_classes"], "num_classes", 1, MAX_CLASSES)
    channels = c.integer(meta["in_channels"], "in_channels", 1, MAX_CHANNELS)
    c.size(meta["image_size"], "image_size")
    c.size(meta["input_size"], "input_size")
    c.names(meta["class_names"], "class_names", classes)
    c.stats(meta["mean"], "mean", channels, positive=False)
    c.stats(meta["std"], "std", channels, positive=True)
    for key in ("dataset_mean", "dataset_std"):
        if meta.get(key) is not None:
            c.stats(meta[key], key, channels, positive=False)
    for key, value in meta.items():
        if key not in _META_REQUIRED:
            c.plain(value, key)
    return meta


def check_stored_model(info: Mapping[str, Any], meta: Mapping[str, Any], where: str, fix: str = FIX) -> None:
    """Check that a (checked) model description and data description agree with each other.

    Raises:
        CheckpointError: the model has another number of classes or channels than the data.

    Example:
        >>> check_stored_model({"num_classes": 3, "in_channels": 1},
        ...                    {"num_classes": 3, "in_channels": 1}, "model.json")
    """
    for key in ("num_classes", "in_channels"):
        if info[key] != meta[key]:
            raise CheckpointError(
                f"{where}: model_info.{key} is {info[key]} but data_meta.{key} is {meta[key]}; "
                f"the two descriptions disagree. {fix}"
            )


def check_freezing(state: Any, where: str, fix: str = FIX) -> dict[str, Any]:
    """Check a checkpoint's ``freezing`` entry (strategy, options, policy, level, trainable).

    Raises:
        CheckpointError: a wrong type or a value out of range.

    Example:
        >>> check_freezing({"strategy": "full", "options": {}, "bn_policy": "eval", "level": 0,
        ...                 "trainable": ["fc.weight"]}, "last.ckpt")["strategy"]
        'full'
    """
    c = _Checker(where, "freezing", CheckpointError, fix)
    state = dict(c.mapping(state))
    for key in ("strategy", "bn_policy"):
        if key in state:
            c.text(state[key], key, empty=False, limit=200)
    if "options" in state:
        c.plain(c.mapping(state["options"], "options"), "options")
    if "level" in state:
        c.integer(state["level"], "level", 0, 2**31)
    if "trainable" in state:
        names = state["trainable"]
        if not isinstance(names, (list, tuple)):
            raise c.fail("trainable", "a list of parameter names", names)
        for i, name in enumerate(names):
            c.text(name, f"trainable[{i}]")
    return state


def check_position(position: Any, where: str, fix: str = FIX) -> dict[str, Any]:
    """Check a checkpoint's ``position`` entry: epoch, batch and step counters.

    Raises:
        CheckpointError: a counter that is not an integer >= 0.

    Example:
        >>> check_position({"epoch": -1}, "last.ckpt")
        Traceback (most recent call last):
        ...
        finetune_kit.errors.CheckpointError: last.ckpt: position.epoch must be an integer in [0, ...
    """
    c = _Checker(where, "position", CheckpointError, fix)
    position = dict(c.mapping(position))
    for key in ("epoch", "batch", "global_step", "skipped_steps"):
        if position.get(key) is not None:
            c.integer(position[key], key, 0, 2**63 - 1)
    return position
