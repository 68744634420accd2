"""A model summary by stage: parameters, how many are trainable, output shapes.

The stages are those of the model's ModelInfo (``stem, layer1, ..., head`` for a ResNet), or its
top-level children for a model without one. Output shapes come from one forward pass of a
zero batch of one image, in eval mode and without gradients; the training mode of every
module is restored afterwards.

Example:
    >>> from finetune_kit.models import create_model
    >>> summary = model_summary(create_model("lenet", num_classes=10))
    >>> summary.total_params, summary.output_shape
    (62006, (1, 10))
    >>> print(summary.table().splitlines()[0])
    lenet: 62,006 parameters, 62,006 trainable; input (1, 3, 32, 32) -> output (1, 10)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from finetune_kit.errors import ConfigError
from finetune_kit.models.info import INFO_ATTR, ModelInfo
from finetune_kit.models.stages import Stage, split_into_stages, stage_spec

__all__ = ["ModelSummary", "StageSummary", "model_summary"]

Shape = tuple[int, ...]


@dataclass(frozen=True)
class StageSummary:
    """One stage of a :class:`ModelSummary`.

    Attributes:
        name: stage name, e.g. ``"layer1"``.
        modules: qualified names of its modules.
        params: number of parameters.
        trainable: how many of them require gradients.
        output_shape: shape of the stage's output in the summary's forward pass, or None.

    Example:
        >>> StageSummary("head", ("fc",), 10, 0, (1, 2)).status
        'frozen'
    """

    name: str
    modules: tuple[str, ...]
    params: int
    trainable: int
    output_shape: Shape | None = None

    @property
    def status(self) -> str:
        """``"trainable"``, ``"frozen"``, ``"partial"`` or ``"-"`` (no parameters)."""
        if self.params == 0:
            return "-"
        if self.trainable == self.params:
            return "trainable"
        return "frozen" if self.trainable == 0 else "partial"


@dataclass(frozen=True)
class ModelSummary:
    """Parameters and shapes of a model, stage by stage.

    Attributes:
        name: the model's registered name (or class name).
        stages: one :class:`StageSummary` per stage, plus ``"(other)"`` for parameters outside
            every stage.
        total_params: all parameters (shared ones counted once).
        trainable_params: those that require gradients.
        input_shape: the input of the forward pass, or None when none was run.
        output_shape: the model's output shape, or None.

    Example:
        >>> ModelSummary("m", (), 0, 0).table()
        'm: 0 parameters, 0 trainable'
    """

    name: str
    stages: tuple[StageSummary, ...]
    total_params: int
    trainable_params: int
    input_shape: Shape | None = None
    output_shape: Shape | None = None

    def table(self) -> str:
        """The summary as a fixed-width text table (one row per stage)."""
        title = f"{self.name}: {self.total_params:,} parameters, {self.trainable_params:,} trainable"
        if self.input_shape is not None:
            title += f"; input {self.input_shape} -> output {self.output_shape}"
        if not self.stages:
            return title
        rows = [("stage", "params", "trainable", "status", "output")]
        for s in self.stages:
            shape = "" if s.output_shape is None else str(s.output_shape)
            rows.append((s.name, f"{s.params:,}", f"{s.trainable:,}", s.status, shape))
        widths = [max(len(row[i]) for row in rows) for i in range(5)]
        lines = [title]
        for row in rows:
            cells = [row[0].ljust(widths[0])]
            cells += [cell.rjust(width) for cell, width in zip(row[1:3], widths[1:3], strict=True)]
            cells += [row[3].ljust(widths[3]), row[4]]
            lines.append("  ".join(cells).rstrip())
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def model_summary(model: nn.Module, input_size: Sequence[int] | None = None) -> ModelSummary:
    """Summarise ``model`` by stage: parameters, trainable or not, output shapes.

    Args:
        model: the model.
        input_size: ``(H, W)``, ``(C, H, W)`` or ``(N, C, H, W)`` of the forward pass that
            measures the shapes; None uses the ModelInfo's ``input_size`` and ``in_channels``
            (no forward pass for a model without ModelInfo).

    Returns:
        The :class:`ModelSummary`.

    Raises:
        ConfigError: ``input_size`` is not 2, 3 or 4 positive integers.
        ShapeError: the model refuses an input of that size (e.g. ``convnet``).

    Example:
        >>> from finetune_kit.models import create_model
        >>> net = create_model("convnet", num_classes=10, in_channels=1)
        >>> [s.output_shape for s in model_summary(net).stages]
        [(1, 32, 26, 26), (1, 64, 12, 12), (1, 128), (1, 10)]
    """
    info = getattr(model, INFO_ATTR, None)
    info = info if isinstance(info, ModelInfo) else None
    stages, left_out = split_into_stages(model, stage_spec(model))
    shape = _input_shape(input_size, info, model)
    outputs = _stage_outputs(model, stages, shape) if shape is not None else {}
    rows = [
        StageSummary(
            s.name,
            s.module_names,
            _count(s.params.values()),
            _count(p for p in s.params.values() if p.requires_grad),
            outputs.get(s.name),
        )
        for s in stages
    ]
    if left_out:
        named = dict(model.named_parameters())
        rest = [named[n] for n in left_out]
        rows.append(StageSummary("(other)", (), _count(rest), _count(p for p in rest if p.requires_grad)))
    every = {id(p): p for p in model.parameters()}.values()
    return ModelSummary(
        name=info.name if info is not None else type(model).__name__,
        stages=tuple(rows),
        total_params=sum(p.numel() for p in every),
        trainable_params=sum(p.numel() for p in every if p.requires_grad),
        input_shape=shape,
        output_shape=outputs.get("(model)"),
    )


def _count(params: Iterable[nn.Parameter]) -> int:
    return sum(p.numel() for p in params)


def _input_shape(size: Sequence[int] | None, info: ModelInfo | None, model: nn.Module) -> Shape | None:
    if size is None:
        return None if info is None else (1, info.in_channels, *info.input_size)
    size = tuple(size)
    if len(size) not in (2, 3, 4) or not all(isinstance(s, int) and s > 0 for s in size):
        raise ConfigError(
            f"input_size must be (H, W), (C, H, W) or (N, C, H, W) positive integers, got {size!r}."
        )
    if len(size) == 2:
        channels = info.in_channels if info is not None else _first_conv_channels(model)
        return (1, channels, *size)
    return size if len(size) == 4 else (1, *size)


def _first_conv_channels(model: nn.Module) -> int:
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return module.in_channels
    raise ConfigError("The model has no Conv2d to infer channels from; pass input_size=(C, H, W).")


def _stage_outputs(model: nn.Module, stages: Sequence[Stage], shape: Shape) -> dict[str, Shape]:
    """Run one zero batch through ``model`` and record the output shape of each stage."""
    outputs: dict[str, Shape] = {}

    def record(key: str):
        def hook(module: nn.Module, args: object, output: object) -> None:
            tensor = output[0] if isinstance(output, tuple | list) else output
            if torch.is_tensor(tensor):
                outputs[key] = tuple(tensor.shape)

        return hook

    handles = [
        model.get_submodule(s.module_names[-1]).register_forward_hook(record(s.name))
        for s in stages
        if s.module_names
    ]
    modes = {m: m.training for m in model.modules()}
    first = next(model.parameters(), None)
    x = torch.zeros(
        shape,
        device=first.device if first is not None else None,
        dtype=first.dtype if first is not None and first.is_floating_point() else None,
    )
    try:
        model.eval()
        with torch.no_grad():
            result = model(x)
        outputs["(model)"] = tuple(result.shape) if torch.is_tensor(result) else None
    finally:
        for handle in handles:
            handle.remove()
        for module, mode in modes.items():
            module.training = mode
    return outputs
