"""What the model looked at: Grad-CAM heatmaps (Selvaraju et al., 2017) for any CNN.

Grad-CAM weighs the feature maps of a convolutional layer by how much each raises the score of
a class: with activations ``A: (K, h, w)`` and the gradient of the class logit ``y_c`` with
respect to them, the weights are ``a_k = mean_ij dy_c / dA_kij`` and the heatmap is
``relu(sum_k a_k A_k)``, upsampled to the input size and scaled to ``[0, 1]`` per image.

The layer is found by itself (:func:`find_target_layer`): the output of the last stage of the
model (:func:`~finetune_kit.models.model_stages`: ``layer4`` of a ResNet, the last feature block
of an EfficientNet or a VGG) that is still a spatial map larger than 1x1. It lives here, above
the models, because it needs their stages; it changes nothing in the model (no gradients are
left in ``.grad``, the train/eval mode is restored) and works on frozen models too.

Example:
    >>> import torch
    >>> from finetune_kit.models import create_model
    >>> net = create_model("resnet9", num_classes=3, in_channels=1)
    >>> out = explain(net, torch.randn(2, 1, 32, 32))
    >>> out.layer, tuple(out.heatmaps.shape), float(out.heatmaps.max()) <= 1.0
    ('layer3', (2, 32, 32), True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from finetune_kit.analysis import denormalize, plot_images
from finetune_kit.data import eval_transform_from_meta
from finetune_kit.errors import ConfigError, OutputDirError, ShapeError
from finetune_kit.inference.load import LoadedModel
from finetune_kit.inference.torch_predict import ImageInput, _batches, _paths, _resolve_model, check_files
from finetune_kit.models import model_stages, unwrap_model
from finetune_kit.runtime import eval_mode

__all__ = ["Explanation", "explain", "explanation_paths", "find_target_layer", "save_explanations"]


@dataclass(frozen=True, eq=False)
class Explanation:
    """Grad-CAM heatmaps of ``N`` images (all tensors on the CPU).

    Attributes:
        heatmaps: ``(N, H, W)`` float32 in ``[0, 1]``, at the model's input size; 1 is where
            the evidence for the class is strongest (all zeros: no positive evidence).
        targets: ``(N,)`` the class each heatmap explains.
        probabilities: ``(N, C)`` the model's softmax output for each image.
        inputs: ``(N, C, H, W)`` the images as the model saw them (normalised float).
        layer: the name of the module whose activations were used.

    Example:
        >>> e = Explanation(torch.zeros(1, 4, 4), torch.tensor([2]), torch.full((1, 3), 1 / 3),
        ...                 torch.zeros(1, 1, 4, 4), "layer4")
        >>> len(e), e.layer
        (1, 'layer4')
    """

    heatmaps: torch.Tensor
    targets: torch.Tensor
    probabilities: torch.Tensor
    inputs: torch.Tensor
    layer: str

    def __len__(self) -> int:
        return int(self.heatmaps.shape[0])


def _stage_modules(model: nn.Module) -> dict[str, nn.Module]:
    """The modules the stages (all but the head) are made of, by qualified name."""
    modules = dict(model.named_modules())
    stages = model_stages(model)[:-1]  # the last stage is the head: its output is the logits
    return {name: modules[name] for stage in stages for name in stage.module_names if name in modules}


def find_target_layer(model: nn.Module, example: torch.Tensor) -> str | None:
    """The module Grad-CAM uses by default: the last stage output that is a spatial map.

    ``example`` (a batch of model inputs) runs through the model once, without gradients,
    recording the output of every module its stages are made of (the head excluded); the
    answer is the last of them, in the order they ran, whose output is ``(N, C, h, w)`` with
    ``h * w > 1`` (a ResNet at 28 pixels has a 1x1 ``layer4``: then ``layer3``).

    Args:
        model: the network (wrappers such as DDP or ``torch.compile`` are looked through).
        example: ``(N, C, H, W)`` model inputs on the model's device (one image is enough).

    Returns:
        The qualified module name, or None when no stage outputs a spatial map (an MLP).

    Example:
        >>> from finetune_kit.models import create_model
        >>> find_target_layer(create_model("convnet", num_classes=2), torch.zeros(1, 3, 28, 28))
        'dropout1'
        >>> find_target_layer(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2)),
        ...                   torch.zeros(1, 1, 2, 2)) is None
        True
    """
    model = unwrap_model(model)
    seen: list[str] = []

    def record(name: str) -> Any:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            if isinstance(output, torch.Tensor) and output.ndim == 4 and output.shape[-2:].numel() > 1:
                seen.append(name)

        return hook

    handles = [m.register_forward_hook(record(n)) for n, m in _stage_modules(model).items()]
    try:
        with torch.no_grad(), eval_mode(model):
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    return seen[-1] if seen else None


def _gradcam(
    model: nn.Module, module: nn.Module, x: torch.Tensor, targets: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Heatmaps, explained classes and probabilities of one batch ``x`` (on the model's device)."""
    saved: dict[str, torch.Tensor] = {}

    def keep(mod: nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
        saved["maps"] = output
        return output.clone()  # an in-place op after the layer (ReLU(inplace=True)) keeps off the maps

    handle = module.register_forward_hook(keep)
    try:
        with torch.enable_grad(), eval_mode(model):
            # Gradients must reach the maps even when every parameter is frozen.
            logits = model(x.detach().float().requires_grad_(True)).float()
            classes = logits.argmax(dim=1) if targets is None else targets.to(logits.device)
            score = logits.gather(1, classes[:, None]).sum()
            (grads,) = torch.autograd.grad(score, saved["maps"])
    finally:
        handle.remove()
    maps = saved["maps"].detach().float()
    cam = F.relu((grads.float().mean(dim=(2, 3), keepdim=True) * maps).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    peak = cam.flatten(1).amax(dim=1)[:, None, None]
    cam = torch.where(peak > 0, cam / peak.clamp(min=torch.finfo(cam.dtype).tiny), 0.0)
    return cam.cpu(), classes.cpu(), logits.detach().softmax(dim=1).cpu()


def _model_inputs(
    model_or_path: Any, images: ImageInput, meta: Mapping[str, Any] | None, device: Any, batch_size: int
) -> tuple[nn.Module, list[torch.Tensor]]:
    """The model, and the images as model inputs (normalised float batches on its device)."""
    if isinstance(images, torch.Tensor) and images.is_floating_point():
        if not isinstance(model_or_path, nn.Module):
            model_or_path = _resolve_model(model_or_path, meta, device)[0]
        x = images.unsqueeze(0) if images.ndim == 3 else images
        if x.ndim != 4 or x.shape[0] == 0:
            raise ShapeError(
                f"explain needs (N, C, H, W) images with N >= 1; got shape {tuple(images.shape)}."
            )
        params = list(model_or_path.parameters())
        where = params[0].device if params else torch.device("cpu")
        return model_or_path, [x[i : i + batch_size].to(where) for i in range(0, x.shape[0], batch_size)]
    paths = _paths(images)
    if paths is not None:
        check_files(paths)
    model, meta, device = _resolve_model(model_or_path, meta, device)
    chunks, _, _ = _batches(images, meta, batch_size)
    transform = eval_transform_from_meta(meta, device=device)
    return model, [transform(chunk.to(device)) for chunk in chunks]


def explain(
    model_or_path: nn.Module | LoadedModel | str | Path,
    images: ImageInput,
    *,
    targets: torch.Tensor | Sequence[int] | None = None,
    layer: str | None = None,
    meta: Mapping[str, Any] | None = None,
    device: str | torch.device | None = None,
    batch_size: int = 64,
) -> Explanation:
    """Grad-CAM heatmaps: where in each image the evidence for a class lies.

    Args:
        model_or_path: a model, a :class:`~finetune_kit.LoadedModel`, or a path that
            :func:`~finetune_kit.load_model` reads (export, checkpoint, run directory).
        images: model inputs as a normalised float tensor ``(N, C, H, W)`` (as loaders yield
            them, e.g. ``TopLosses.images``); or, preprocessed as :func:`~finetune_kit.predict`
            does (needs ``meta`` with a bare model), a uint8 tensor, image file paths or a
            dataset split.
        targets: the class to explain for each image (default: the predicted class).
        layer: the qualified name of the module to use (default: :func:`find_target_layer`).
        meta: the training data's ``DataBundle.meta()``, for uint8 images and files.
        device: where to run (default: where the model is; a path loads to the CPU).
        batch_size: images per forward/backward pass.

    Returns:
        The :class:`Explanation`.

    Raises:
        ConfigError: no convolutional stage to explain, an unknown ``layer``, a bad
            ``batch_size``, or missing ``meta``.
        ShapeError: images or ``targets`` of the wrong shape.
        DataError: missing image files (as :func:`~finetune_kit.predict`).

    Example:
        >>> from finetune_kit.models import create_model
        >>> net = create_model("convnet", num_classes=3, in_channels=1)
        >>> out = explain(net, torch.randn(4, 1, 28, 28), targets=[0, 1, 2, 0])
        >>> out.targets.tolist(), tuple(out.heatmaps.shape)
        ([0, 1, 2, 0], (4, 28, 28))
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ConfigError(f"batch_size must be an integer >= 1, got {batch_size!r}.")
    model, chunks = _model_inputs(model_or_path, images, meta, device, batch_size)
    model = unwrap_model(model)
    name = layer if layer is not None else find_target_layer(model, chunks[0][:1])
    modules = dict(model.named_modules())
    if name is None:
        raise ConfigError(
            f"explain: this {type(model).__name__} has no stage with a spatial output (a 2-D map "
            "larger than 1x1) to take Grad-CAM heat from; it works on convolutional networks."
        )
    if name not in modules:
        raise ConfigError(
            f"explain: the model has no module {name!r}; give a name from model.named_modules()."
        )
    wanted = _targets(targets, sum(len(c) for c in chunks))
    results, start = [], 0
    for x in chunks:
        part = None if wanted is None else wanted[start : start + len(x)]
        results.append(_gradcam(model, modules[name], x, part))
        start += len(x)
    heat, classes, probs = (torch.cat(parts) for parts in zip(*results, strict=True))
    return Explanation(heat, classes, probs, torch.cat([x.detach().cpu() for x in chunks]), name)


def _targets(targets: torch.Tensor | Sequence[int] | None, n: int) -> torch.Tensor | None:
    if targets is None:
        return None
    wanted = torch.as_tensor(targets, dtype=torch.int64).flatten().cpu()
    if wanted.shape[0] != n:
        raise ShapeError(f"explain got {n} images but {wanted.shape[0]} targets; give one class each.")
    return wanted


def explanation_paths(directory: str | Path, names: Sequence[str]) -> list[Path]:
    """The files :func:`save_explanations` writes: ``<directory>/<name>.gradcam.png``, one per name.

    Repeated names get ``-2``, ``-3`` ... Call it before the work, so that nothing is computed
    only to be refused.

    Args:
        directory: where the files go.
        names: one file-name stem per image (e.g. the input files' stems).

    Returns:
        The paths, in order.

    Raises:
        OutputDirError: one of them exists already (nothing is ever replaced).

    Example:
        >>> [p.name for p in explanation_paths("out", ["shirt", "shoe", "shirt"])]
        ['shirt.gradcam.png', 'shoe.gradcam.png', 'shirt-2.gradcam.png']
    """
    stems: list[str] = []
    for stem in names:
        candidate, k = stem, 1
        while candidate in stems:
            k += 1
            candidate = f"{stem}-{k}"
        stems.append(candidate)
    paths = [Path(directory) / f"{stem}.gradcam.png" for stem in stems]
    taken = [str(p) for p in paths if p.exists()]
    if taken:
        raise OutputDirError(
            f"Refusing to replace {len(taken)} existing file(s), e.g. {taken[0]}; choose another "
            "directory for the heatmaps or move those files away."
        )
    return paths


def save_explanations(
    explanation: Explanation, paths: Sequence[Path], *, meta: Mapping[str, Any]
) -> list[Path]:
    """Write one PNG per image: the image with its heatmap over it, titled with the class.

    Args:
        explanation: from :func:`explain`.
        paths: one PNG path per image (:func:`explanation_paths`).
        meta: the training data's ``DataBundle.meta()`` (mean, std and class names).

    Returns:
        ``paths``.

    Raises:
        ShapeError: ``paths`` does not have one entry per image.
        ConfigError: matplotlib is missing.
        OutputDirError: a file cannot be written.
    """
    if len(paths) != len(explanation):
        raise ShapeError(f"save_explanations got {len(explanation)} images but {len(paths)} paths.")
    images = denormalize(explanation.inputs, meta["mean"], meta["std"])
    classes = [str(c) for c in meta["class_names"]]
    for i, path in enumerate(paths):
        c = int(explanation.targets[i])
        title = f"{classes[c]} ({float(explanation.probabilities[i, c]):.2f})"
        plot_images(images[i : i + 1], [title], path, heatmaps=explanation.heatmaps[i : i + 1])
    return list(paths)
