"""Export a trained model for deployment: :func:`export` writes safetensors, ONNX or ``torch.export``.

``format="safetensors"`` (the default) writes ``model.safetensors`` plus ``model.json``, which
:func:`~finetune_kit.inference.load.load_model` rebuilds in PyTorch
(:mod:`~finetune_kit.inference.safetensors_export`). ``"onnx"`` writes ``model.onnx`` for
onnxruntime and other ONNX runtimes, ``"torch_export"`` a ``torch.export`` program
``model.pt2``; both carry the class names, normalisation, image sizes and source run as
metadata (:mod:`~finetune_kit.inference.program_export`). ``"all"`` writes the four files into
one directory.

Every ONNX and ``torch.export`` artifact is checked before it is written: it is run on a
batch of images beside the eval-mode PyTorch model, and the export fails with
:class:`~finetune_kit.errors.ExportError` (nothing written) when their outputs differ by more
than ``tolerance``. Importing this module does not import PyTorch.

Example:
    >>> import tempfile, finetune_kit as fk
    >>> data = fk.create_datasets("fake", num_classes=3, in_channels=1, image_size=16,
    ...                           train_size=32, test_size=8)
    >>> model = fk.create_model("lenet", num_classes=3, in_channels=1, input_size=16)
    >>> run = tempfile.mkdtemp() + "/run"
    >>> _ = fk.Trainer(model, data, epochs=1, batch_size=16, progress=False, output_dir=run).fit()
    >>> out = export(run, tempfile.mkdtemp() + "/exported", format="all")
    >>> sorted(p.name for p in out.iterdir())
    ['model.json', 'model.onnx', 'model.pt2', 'model.safetensors']
    >>> from finetune_kit.inference.load import load_model
    >>> loaded = load_model(out)
    >>> loaded.class_names, loaded.model.training
    (['fake_0', 'fake_1', 'fake_2'], False)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetune_kit.errors import ConfigError, OutputDirError
from finetune_kit.inference.export_files import is_export_file
from finetune_kit.registry import did_you_mean
from finetune_kit.storage.paths import user_path

if TYPE_CHECKING:
    from torch import nn

    from finetune_kit.inference.load import LoadedModel

__all__ = ["DEFAULT_OPSET", "FORMATS", "Artifact", "export", "export_artifacts"]

FORMATS = ("safetensors", "onnx", "torch_export", "all")
DEFAULT_OPSET = 20  # onnxruntime >= 1.17 runs it
_FILES = {"safetensors": "model.safetensors", "onnx": "model.onnx", "torch_export": "model.pt2"}
_SUFFIXES = {"safetensors": ".safetensors", "onnx": ".onnx", "torch_export": ".pt2"}


@dataclass(frozen=True)
class Artifact:
    """One file group written by :func:`export_artifacts`.

    Attributes:
        format: ``"safetensors"``, ``"onnx"`` or ``"torch_export"``.
        path: the file written (for safetensors: the weights; ``model.json`` is beside them).
        max_abs_diff: the largest absolute difference between the artifact's outputs and the
            eval-mode PyTorch model's on the check batch; None when not checked
            (safetensors holds the weights themselves, or ``check=False``).
        checked_images: images in the check batch (0 when not checked).
        float32_noise: the model's own float32 rounding (its float32 vs float64 logits),
            measured when ``max_abs_diff`` exceeded the tolerance; see
            :mod:`~finetune_kit.inference.parity`.

    Example:
        >>> Artifact("onnx", Path("m.onnx"), 2.4e-07, 8).summary()
        'onnx: m.onnx (checked against PyTorch on 8 images: max |logit difference| 2.4e-07)'
    """

    format: str
    path: Path
    max_abs_diff: float | None = None
    checked_images: int = 0
    float32_noise: float | None = None

    def summary(self) -> str:
        """One line: the format, the path and the parity check."""
        if self.max_abs_diff is None:
            note = "" if self.format == "safetensors" else " (not checked)"
            return f"{self.format}: {self.path}{note}"
        noise = "" if self.float32_noise is None else f", float32 PyTorch vs float64 {self.float32_noise:.1e}"
        return (
            f"{self.format}: {self.path} (checked against PyTorch on {self.checked_images} images: "
            f"max |logit difference| {self.max_abs_diff:.1e}{noise})"
        )


def _check_options(format: str, opset: int, tolerance: float, extras: bool) -> None:
    if format not in FORMATS:
        raise ConfigError(
            f"Unknown export format {format!r}.{did_you_mean(str(format), list(FORMATS))} "
            f"Formats: {', '.join(FORMATS)}."
        )
    if not isinstance(opset, int) or isinstance(opset, bool) or not 18 <= opset <= 23:
        raise ConfigError(f"opset must be an integer from 18 to 23, got {opset!r}.")
    number = isinstance(tolerance, (int, float)) and not isinstance(tolerance, bool)
    if not number or not math.isfinite(tolerance) or tolerance <= 0:
        raise ConfigError(f"tolerance must be a number > 0, got {tolerance!r}.")
    if extras and format == "safetensors":
        raise ConfigError(
            "with_preprocessing and probabilities shape an ONNX or torch.export graph; use "
            "format='onnx', 'torch_export' or 'all'."
        )


def _targets(path: Path, format: str) -> dict[str, Path]:
    """``{format: file}`` to write for ``path`` (a file of the format's suffix, or a directory)."""
    formats = list(_FILES) if format == "all" else [format]
    suffix = path.suffix.lower()
    if format != "all" and suffix == _SUFFIXES[format]:
        return {format: path}
    expected = "a directory" if format == "all" else f"a directory or a NAME{_SUFFIXES[format]} path"
    if path.is_file():
        raise OutputDirError(f"Export path {path} is an existing file; pass {expected}.")
    if suffix in _SUFFIXES.values():
        raise OutputDirError(f"Export path {path} does not fit format={format!r}; pass {expected}.")
    return {name: path / _FILES[name] for name in formats}


def _refuse_overwrite(files: list[Path], overwrite: bool) -> None:
    existing = [p for p in files if p.exists() or p.is_symlink()]
    if existing and not overwrite:
        raise OutputDirError(
            f"Refusing to overwrite {', '.join(map(str, existing))}; nothing was written. Choose "
            "another path, or pass overwrite=True (--overwrite) to replace these files."
        )
    for found in existing:  # --overwrite replaces an export, never a file of the user's
        if not is_export_file(found, files):
            raise OutputDirError(
                f"Refusing to replace {found}: it is not part of a finetune_kit export, so "
                "--overwrite does not apply to it; nothing was written. Move it away or "
                "choose another export path."
            )


def _write(blobs: list[tuple[Path, bytes]]) -> None:
    """Write the files of one export as a group (the description last): a process killed
    meanwhile leaves the old export, the new one, or none that loads."""
    from finetune_kit.storage.atomic import atomic_write_group

    if not blobs:
        return
    description = [item for item in blobs if item[0].suffix == ".json"]
    ordered = [item for item in blobs if item[0].suffix != ".json"] + description
    target = ordered[-1][0]
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_group(ordered)
    except OSError as exc:
        raise OutputDirError(
            f"Could not write the export to {target.parent}: {exc.strerror or exc}. Free some "
            "disk space or choose another path."
        ) from None


def export_artifacts(
    source: str | Path | nn.Module | LoadedModel,
    path: str | Path,
    *,
    format: str = "safetensors",
    meta: Mapping[str, Any] | None = None,
    use_ema: bool = True,
    overwrite: bool = False,
    with_preprocessing: bool = False,
    probabilities: bool = False,
    check: bool = True,
    tolerance: float = 1e-4,
    opset: int = DEFAULT_OPSET,
) -> list[Artifact]:
    """:func:`export`, returning what was written and the parity check of each artifact.

    Args:
        source: see :func:`export`.
        path: see :func:`export`.
        format: see :func:`export`.
        meta: see :func:`export`.
        use_ema: see :func:`export`.
        overwrite: see :func:`export`.
        with_preprocessing: see :func:`export`.
        probabilities: see :func:`export`.
        check: see :func:`export`.
        tolerance: see :func:`export`.
        opset: see :func:`export`.

    Returns:
        One :class:`Artifact` per format written.

    Example:
        >>> import tempfile, finetune_kit as fk
        >>> meta = {"class_names": ["a", "b"], "in_channels": 1, "image_size": [28, 28],
        ...         "input_size": [28, 28], "mean": [0.5], "std": [0.25]}
        >>> net = fk.create_model("convnet", num_classes=2, in_channels=1)
        >>> [art] = export_artifacts(net, tempfile.mkdtemp() + "/m.pt2", format="torch_export",
        ...                          meta=meta)
        >>> art.format, art.checked_images, art.max_abs_diff < 1e-4
        ('torch_export', 8, True)
    """
    _check_options(format, opset, tolerance, with_preprocessing or probabilities)
    targets = _targets(user_path(path, "path"), format)
    files = list(targets.values())
    if "safetensors" in targets:
        files.append(targets["safetensors"].with_suffix(".json"))
    _refuse_overwrite(files, overwrite)
    if "onnx" in targets:  # fail before the slow part when a package is missing
        from finetune_kit.inference.optional import require

        for package in ("onnx", "onnxscript", *(["onnxruntime"] if check else [])):
            require(package, "Exporting to ONNX" if package != "onnxruntime" else "Checking an ONNX export")
    from finetune_kit.inference.export_source import resolve_source

    src = resolve_source(source, meta=meta, use_ema=use_ema)
    blobs: list[tuple[Path, bytes]] = []
    artifacts: list[Artifact] = []
    if "safetensors" in targets:
        from finetune_kit.inference.safetensors_export import safetensors_files

        blobs += safetensors_files(src, targets["safetensors"])
        artifacts.append(Artifact("safetensors", targets["safetensors"]))
    programs = [name for name in ("onnx", "torch_export") if name in targets]
    if programs:
        from finetune_kit.inference.program_export import program_artifacts

        made = program_artifacts(
            src,
            {name: targets[name] for name in programs},
            with_preprocessing=with_preprocessing,
            probabilities=probabilities,
            tolerance=tolerance if check else None,
            opset=opset,
        )
        blobs += [(art.path, blob) for art, blob in made]
        artifacts += [art for art, _ in made]
    _write(blobs)
    return artifacts


def export(
    source: str | Path | nn.Module | LoadedModel,
    path: str | Path,
    *,
    format: str = "safetensors",
    meta: Mapping[str, Any] | None = None,
    use_ema: bool = True,
    overwrite: bool = False,
    with_preprocessing: bool = False,
    probabilities: bool = False,
    check: bool = True,
    tolerance: float = 1e-4,
    opset: int = DEFAULT_OPSET,
) -> Path:
    """Export a trained model as safetensors, ONNX and/or a ``torch.export`` program.

    LoRA layers are merged into their base weights, and a checkpoint's EMA weights are used
    when it has them (``use_ema``), as evaluation used them. ONNX and ``torch.export``
    artifacts are checked against the eval-mode PyTorch model before anything is written.

    Args:
        source: a run directory (its ``last.ckpt``, else ``best.ckpt``), a ``.ckpt``
            checkpoint, an export directory, a :class:`~finetune_kit.inference.load.LoadedModel`,
            or a model (then ``meta`` is required).
        path: for ``"safetensors"``: a directory that receives ``model.safetensors`` and
            ``model.json``, or a ``NAME.safetensors`` file (the JSON goes beside it as
            ``NAME.json``); for ``"onnx"`` / ``"torch_export"``: a ``NAME.onnx`` / ``NAME.pt2``
            file or a directory (``model.onnx`` / ``model.pt2`` in it); for ``"all"``: a
            directory that receives all four files.
        format: ``"safetensors"``, ``"onnx"``, ``"torch_export"`` or ``"all"``.
        meta: the training data's ``DataBundle.meta()`` (class names, sizes, mean, std);
            required with a bare model, not allowed with a path.
        use_ema: export a checkpoint's EMA weights when it has them (the artifact records which
            weights it holds).
        overwrite: replace existing export files at ``path`` (other files are never touched).
        with_preprocessing: ONNX / ``torch.export``: put ``x / 255`` and the normalisation
            into the graph, which then takes uint8 ``(N, C, H, W)`` at the model's input size
            (no resize in the graph). Otherwise it takes normalised float32.
        probabilities: ONNX / ``torch.export``: output the softmax probabilities as a second
            output ``probabilities`` beside ``logits``.
        check: run each ONNX / ``torch.export`` artifact beside the PyTorch model on a batch
            of 8 images and refuse it when their outputs differ by more than ``tolerance``.
        tolerance: the largest absolute difference the check accepts.
        opset: the ONNX opset (18 to 23; 20 runs on onnxruntime 1.17 and later).

    Returns:
        The file written (``.onnx``, ``.pt2``, ``.safetensors`` when one was named) or the
        directory of the export.

    Raises:
        CheckpointError: the checkpoint is missing, corrupted, unsafe (pickled code is refused
            unread) or its weights do not fit its own model description.
        ConfigError: a bad option, ``meta`` missing for a model, a model without ModelInfo for
            safetensors, or ``onnx``/``onnxscript``/``onnxruntime`` not installed
            (``pip install "finetune-kit[deploy]"``).
        ExportError: the model cannot be traced or converted, or an artifact's outputs differ
            from the model's by more than ``tolerance`` (nothing is written).
        OutputDirError: the export files exist and ``overwrite`` is False, or ``path`` does not
            fit the format.

    Example:
        >>> import tempfile, pathlib
        >>> from finetune_kit.storage.checkpoint import save_checkpoint
        >>> from finetune_kit.data import create_datasets
        >>> from finetune_kit.models import create_model, model_info
        >>> tmp = pathlib.Path(tempfile.mkdtemp())
        >>> data = create_datasets("fake", num_classes=2, in_channels=1, image_size=16,
        ...                        train_size=8, test_size=2)
        >>> net = create_model("lenet", num_classes=2, in_channels=1, input_size=16)
        >>> save_checkpoint({"model": net.state_dict(), "model_info": model_info(net).to_dict(),
        ...                  "data_meta": data.meta()}, tmp / "last.ckpt")
        >>> export(tmp / "last.ckpt", tmp / "out").name
        'out'
        >>> export(tmp / "last.ckpt", tmp / "out")  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        finetune_kit.errors.OutputDirError: Refusing to overwrite ...
        >>> export(tmp / "last.ckpt", tmp / "lenet.onnx", format="onnx").name
        'lenet.onnx'
    """
    artifacts = export_artifacts(
        source,
        path,
        format=format,
        meta=meta,
        use_ema=use_ema,
        overwrite=overwrite,
        with_preprocessing=with_preprocessing,
        probabilities=probabilities,
        check=check,
        tolerance=tolerance,
        opset=opset,
    )
    if format == "all" or (format == "safetensors" and Path(path).suffix.lower() != ".safetensors"):
        return Path(path)
    return artifacts[0].path
