"""Load weights into a model, and report key by key what fitted: :func:`load_weights`.

Each tensor of the source goes to the model tensor of the same name when the shapes agree.
Otherwise:

* a head tensor (under the model's head, e.g. ``fc.weight``) is *skipped*: the weights were
  trained for another number of classes, and the head keeps its seeded initialisation;
* the input conv's kernel is *adapted* (:func:`~finetune_kit.models.adapt.adapt_input_conv_weight`:
  summed or repeated over input channels, resampled 7x7 -> 3x3 for a small-input stem);
* anything else is *mismatched* and left as it was.

Names only in the source are *unexpected*, names only in the model are *missing*. The
:class:`LoadReport` lists them all; ``strict=True`` raises instead of loading when any tensor
is missing, unexpected or mismatched. A source none of whose tensors fits raises always.

Example:
    >>> import torch
    >>> from finetune_kit.models import create_model
    >>> donor = create_model("lenet", num_classes=10, seed=1)
    >>> net = create_model("lenet", num_classes=7, in_channels=1)
    >>> report = load_weights(net, donor.state_dict())
    >>> report.skipped_head, report.adapted
    (('fc3.weight', 'fc3.bias'), ('conv1.weight',))
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields
from typing import Any

import torch
from torch import nn

from finetune_kit.errors import CheckpointError, ShapeError
from finetune_kit.models.adapt import adapt_input_conv_weight, find_input_conv
from finetune_kit.models.heads import get_head
from finetune_kit.models.info import INFO_ATTR, ModelInfo, adapt_stats, update_model_info
from finetune_kit.models.registry import MODELS
from finetune_kit.models.weights import WeightsMeta, WeightsSource, read_weights

__all__ = ["LoadReport", "load_report_of", "load_weights"]

logger = logging.getLogger("finetune_kit.models")

Shape = tuple[int, ...]


@dataclass(frozen=True)
class LoadReport:
    """What :func:`load_weights` did with each tensor name.

    Attributes:
        missing: model tensors the source does not have (left as they were).
        unexpected: source tensors the model does not have (ignored).
        mismatched: tensors of both with shapes that do not fit (left as they were).
        skipped_head: head tensors not loaded because the class count differs.
        adapted: input-conv tensors loaded after channel / kernel-size adaptation.
        loaded: tensors loaded as they were.
        source: where the weights came from.
        shapes: ``name -> (source shape, model shape)`` for every tensor whose shapes differ.

    Example:
        >>> print(LoadReport(missing=("fc.bias",), loaded=("fc.weight",), source="w.pth"))
        Loaded 1 of 2 model tensors from w.pth.
          missing (1): fc.bias
    """

    missing: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()
    mismatched: tuple[str, ...] = ()
    skipped_head: tuple[str, ...] = ()
    adapted: tuple[str, ...] = ()
    loaded: tuple[str, ...] = ()
    source: str = ""
    shapes: dict[str, tuple[Shape, Shape]] = field(default_factory=dict, hash=False)

    @property
    def ok(self) -> bool:
        """True when nothing is missing, unexpected or mismatched (head skips are fine)."""
        return not (self.missing or self.unexpected or self.mismatched)

    def __str__(self) -> str:
        total = len(self.loaded) + len(self.adapted) + len(self.missing)
        total += len(self.mismatched) + len(self.skipped_head)
        lines = [
            f"Loaded {len(self.loaded) + len(self.adapted)} of {total} model tensors "
            f"from {self.source or 'a state dict'}."
        ]
        if self.skipped_head:
            lines.append(
                f"  head skipped ({', '.join(self.skipped_head)}): {self._classes()}; "
                "the head keeps its seeded initialisation"
            )
        for key in self.adapted:
            src, dst = self.shapes[key]
            lines.append(f"  adapted {key}: {src} -> {dst} (input channels / stem kernel)")
        for title, names in (("missing", self.missing), ("unexpected", self.unexpected)):
            if names:
                lines.append(f"  {title} ({len(names)}): {_some(names)}")
        if self.mismatched:
            shown = [
                f"{k} {self.shapes[k][0]} in weights vs {self.shapes[k][1]} in model" for k in self.mismatched
            ]
            lines.append(f"  mismatched ({len(shown)}): {_some(shown)}")
        return "\n".join(lines)

    def summary(self) -> str:
        """One line: the source, tensors loaded and skipped, head replaced, stem adapted.

        Example:
            >>> LoadReport(loaded=("a", "b"), missing=("c",), source="w.pth").summary()
            'weights w.pth: 2 of 3 model tensors loaded; 1 missing'
        """
        total = len(self.loaded) + len(self.adapted) + len(self.missing)
        total += len(self.mismatched) + len(self.skipped_head)
        parts = [f"{len(self.loaded) + len(self.adapted)} of {total} model tensors loaded"]
        if self.skipped_head:
            parts.append(f"head replaced ({self._classes()})")
        for key in self.adapted:
            src, dst = self.shapes[key]
            parts.append(f"{key} adapted {_shape(src)} -> {_shape(dst)}")
        for title, names in (
            ("missing", self.missing),
            ("unexpected", self.unexpected),
            ("mismatched", self.mismatched),
        ):
            if names:
                parts.append(f"{len(names)} {title}")
        return f"weights {self.source or 'a state dict'}: " + "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and strings (for checkpoints and JSON); :meth:`from_dict` reverses it.

        Example:
            >>> report = LoadReport(loaded=("w",), source="x", shapes={"w": ((2,), (3,))})
            >>> LoadReport.from_dict(report.to_dict()) == report
            True
        """
        data: dict[str, Any] = {f.name: list(getattr(self, f.name)) for f in fields(self)}
        data["source"] = self.source
        data["shapes"] = {k: [list(a), list(b)] for k, (a, b) in self.shapes.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoadReport:
        """Rebuild a report from :meth:`to_dict` output."""
        values = {k: tuple(v) for k, v in data.items() if k not in ("source", "shapes")}
        shapes = {k: (tuple(a), tuple(b)) for k, (a, b) in data.get("shapes", {}).items()}
        return cls(source=str(data.get("source", "")), shapes=shapes, **values)

    def _classes(self) -> str:
        key = next((k for k in self.skipped_head if k in self.shapes), None)
        if key is None:
            return "their shapes differ"
        src, dst = self.shapes[key]
        if src and dst and src[1:] == dst[1:]:
            return f"the weights have {src[0]} classes, the model {dst[0]}"
        return f"shapes {src} in weights vs {dst} in model"


def _shape(shape: Shape) -> str:
    return "x".join(str(s) for s in shape)


def load_report_of(model: nn.Module) -> LoadReport | None:
    """The :class:`LoadReport` of the last weights loaded into ``model`` (None: none were).

    Args:
        model: a model built by ``create_model`` (others carry no report).

    Returns:
        The report, or None.

    Example:
        >>> from finetune_kit.models import create_model
        >>> net = create_model("lenet", num_classes=10)
        >>> load_report_of(net) is None
        True
        >>> _ = load_weights(net, net.state_dict())
        >>> load_report_of(net).summary()
        'weights state dict: 10 of 10 model tensors loaded'
    """
    info = getattr(model, INFO_ATTR, None)
    if not isinstance(info, ModelInfo) or info.load_report is None:
        return None
    return LoadReport.from_dict(info.load_report)


def _some(names: tuple[str, ...] | list[str], limit: int = 10) -> str:
    more = f", ... and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def load_weights(model: nn.Module, source: WeightsSource, *, strict: bool = False) -> LoadReport:
    """Load weights from any source into ``model`` and report what fitted (rules in module doc).

    Sources: ``"imagenet"`` / ``"DEFAULT"`` / a torchvision weights name or enum (for models
    built by ``create_model`` from torchvision), a ``.safetensors`` / ``.pth`` / ``.pt`` file,
    a finetune_kit ``.ckpt`` checkpoint or run directory, or a state dict (see
    :mod:`finetune_kit.models.weights`). Files are read with ``weights_only=True`` or
    safetensors. The model's ModelInfo gets the weights' name, and their mean/std and class
    names when known (class names only when the head was loaded).

    Args:
        model: the model, changed in place.
        source: the weights.
        strict: raise instead of loading when a tensor is missing, unexpected or mismatched.

    Returns:
        The :class:`LoadReport`.

    Raises:
        CheckpointError: unreadable or unsafe source, nothing fits, or a strict load that
            does not fit exactly.
        ConfigError: an unknown weights name.

    Example:
        >>> from finetune_kit.models import create_model
        >>> net = create_model("convnet", num_classes=10, in_channels=1)
        >>> load_weights(net, net.state_dict(), strict=True).ok
        True
    """
    state, meta = read_weights(source, torchvision_name=_torchvision_name(model))
    to_load, report = _plan(model, state, meta.name)
    if strict and not report.ok:
        raise CheckpointError(
            f"Strict load refused, nothing was loaded:\n{report}\nLoad with strict=False to take "
            "the tensors that fit, or build the model as the weights were trained."
        )
    model.load_state_dict(to_load, strict=False)
    _record(model, meta, report)
    logger.info("%s", report)
    return report


def _torchvision_name(model: nn.Module) -> str | None:
    info = getattr(model, INFO_ATTR, None)
    if isinstance(info, ModelInfo) and info.name in MODELS:
        return MODELS.get(info.name).torchvision_name
    return None


def _plan(
    model: nn.Module, state: dict[str, torch.Tensor], source: str
) -> tuple[dict[str, torch.Tensor], LoadReport]:
    """Sort every tensor name into the report's groups (model order) and pick what to load."""
    target = model.state_dict()
    head, conv = _head_prefix(model), _input_conv_key(model)
    head_differs = head is not None and any(
        key.startswith(head) and key in state and state[key].shape != value.shape
        for key, value in target.items()
    )
    groups: dict[str, list[str]] = {
        g: [] for g in ("missing", "mismatched", "skipped_head", "adapted", "loaded")
    }
    to_load: dict[str, torch.Tensor] = {}
    shapes: dict[str, tuple[Shape, Shape]] = {}
    for key, want in target.items():
        if key not in state:
            groups["missing"].append(key)
            continue
        value = state[key]
        if value.shape != want.shape:
            shapes[key] = (tuple(value.shape), tuple(want.shape))
        if head_differs and key.startswith(head):
            group = "skipped_head"  # the whole head: a new bias must not meet an old weight
        elif value.shape == want.shape:
            group, to_load[key] = "loaded", value
        elif key == conv and _adaptable(value, want.shape):
            group, to_load[key] = "adapted", adapt_input_conv_weight(value, want.shape)
        else:
            group = "mismatched"
        groups[group].append(key)
    if not to_load:
        raise CheckpointError(
            f"None of the {len(state)} tensors in {source} fits this {type(model).__name__} "
            f"(weights have e.g. {_some(list(state), 3)}; the model has e.g. "
            f"{_some(list(target), 3)}). Are these weights for another architecture?"
        )
    unexpected = tuple(key for key in state if key not in target)
    report = LoadReport(
        unexpected=unexpected, source=source, shapes=shapes, **{g: tuple(keys) for g, keys in groups.items()}
    )
    return to_load, report


def _adaptable(value: torch.Tensor, want: torch.Size) -> bool:
    return value.dim() == 4 and len(want) == 4 and value.shape[0] == want[0]


def _head_prefix(model: nn.Module) -> str | None:
    try:
        name, _ = get_head(model)
    except ShapeError:
        return None
    return f"{name}." if name else None


def _input_conv_key(model: nn.Module) -> str | None:
    try:
        name, _ = find_input_conv(model)
    except ShapeError:
        return None
    return f"{name}.weight"


def _record(model: nn.Module, meta: WeightsMeta, report: LoadReport) -> None:
    info = getattr(model, INFO_ATTR, None)
    if not isinstance(info, ModelInfo):
        return
    changes: dict = {"weights": meta.name, "load_report": report.to_dict()}
    if meta.mean is not None and meta.std is not None:
        changes["mean"] = adapt_stats(meta.mean, info.in_channels)
        changes["std"] = adapt_stats(meta.std, info.in_channels)
    head_loaded = not report.skipped_head and any(key.startswith(f"{info.head}.") for key in report.loaded)
    if head_loaded and meta.class_names and len(meta.class_names) == info.num_classes:
        changes["class_names"] = list(meta.class_names)
    update_model_info(model, **changes)
