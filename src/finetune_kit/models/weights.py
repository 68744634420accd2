"""Where weights come from: torchvision's pretrained weights, weight files, checkpoints, run dirs.

:func:`read_weights` turns any weights *source* into a state dict (name -> tensor, on the CPU)
plus the metadata that travels with it (:class:`WeightsMeta`: normalisation, class names):

* ``"imagenet"``, ``"DEFAULT"``, a member name such as ``"IMAGENET1K_V2"`` (or
  ``"ResNet50_Weights.IMAGENET1K_V2"``), or a torchvision ``WeightsEnum``: torchvision's
  weights for the model. They are read from the torch hub cache,
  ``torch.hub.get_dir()/checkpoints/<file name of the URL>``, and downloaded there (with
  torchvision's SHA-256 prefix check) only when absent. A file already in the cache is used
  as it is, without re-checking its hash (as torchvision does); it is still loaded with
  ``weights_only=True``, so it cannot run code.
* a ``.safetensors`` file (read with safetensors);
* a ``.pt`` / ``.pth`` / ``.bin`` file holding a state dict (``torch.load(weights_only=True)``);
* a finetune_kit checkpoint ``.ckpt``: a dict whose ``"model"`` entry is the state dict (and
  whose optional ``"model_info"`` entry, a :meth:`ModelInfo.to_dict`, provides mean, std and
  class names); a dict with a ``"state_dict"`` entry is read the same way;
* a run directory: its ``best.ckpt``, else ``last.ckpt``, else ``model.safetensors``.

A key prefix ``module.`` (DistributedDataParallel) or ``_orig_mod.`` (torch.compile) shared by
every key is removed. A pickle holding anything but tensors and plain containers is refused
with :class:`~finetune_kit.errors.CheckpointError` before any of its code can run.

Example:
    >>> import tempfile, torch
    >>> path = tempfile.mkdtemp() + "/w.pth"
    >>> torch.save({"module.fc.weight": torch.zeros(2, 3)}, path)
    >>> state, meta = read_weights(path)
    >>> list(state), meta.mean
    (['fc.weight'], None)
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
import torchvision
from torchvision.models import WeightsEnum

from finetune_kit.errors import CheckpointError, ConfigError
from finetune_kit.storage.metadata import check_model_info
from finetune_kit.storage.paths import user_path
from finetune_kit.storage.torch_files import read_torch_file

__all__ = [
    "RUN_DIR_FILES",
    "WeightsMeta",
    "WeightsSource",
    "fetch_torchvision_state_dict",
    "is_torchvision_name",
    "read_weights",
    "read_weights_file",
    "resolve_torchvision_weights",
    "torchvision_cache_dir",
]

WeightsSource = str | os.PathLike | WeightsEnum | Mapping
"""What ``weights=`` accepts: a torchvision name or enum, a path, or a state dict."""

RUN_DIR_FILES = ("best.ckpt", "last.ckpt", "model.safetensors")
"""The files looked for in a run directory, in order of preference."""

_FILE_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")
_TORCHVISION_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)?$")
_HASH_PREFIX = re.compile(r"-([a-f0-9]{8,})\.")
_PREFIXES = ("module.", "_orig_mod.")


@dataclass(frozen=True)
class WeightsMeta:
    """Metadata that comes with a set of weights.

    Attributes:
        name: where they came from, e.g. ``"ResNet18_Weights.IMAGENET1K_V1"`` or a path.
        mean: per-channel normalisation mean they were trained with, if known.
        std: per-channel normalisation std, if known.
        class_names: names of the classes of their head, if known.

    Example:
        >>> WeightsMeta("w.pth").class_names is None
        True
    """

    name: str
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    class_names: tuple[str, ...] | None = None


def is_torchvision_name(source: object) -> bool:
    """True when ``source`` names torchvision weights rather than a file or directory.

    A string is a torchvision name when it is an identifier, optionally ``Enum.MEMBER``, and
    does not end in a weights-file suffix; write ``./imagenet`` for a directory of that name.

    Example:
        >>> [is_torchvision_name(s) for s in ("imagenet", "runs/a", "w.pth")]
        [True, False, False]
    """
    if isinstance(source, WeightsEnum):
        return True
    if not isinstance(source, str):
        return False
    return bool(_TORCHVISION_NAME.match(source)) and not source.lower().endswith(_FILE_SUFFIXES)


def resolve_torchvision_weights(model_name: str | None, source: str | WeightsEnum) -> WeightsEnum:
    """The torchvision weights enum member that ``source`` names for ``model_name``.

    Args:
        model_name: the torchvision model name (``"resnet18"``), or None when unknown.
        source: ``"imagenet"`` / ``"DEFAULT"`` (the recommended weights), a member name such
            as ``"IMAGENET1K_V1"`` (any case), ``"ResNet18_Weights.IMAGENET1K_V1"``, or a member.

    Returns:
        The enum member.

    Raises:
        ConfigError: the model has no torchvision weights, or no such member.

    Example:
        >>> resolve_torchvision_weights("resnet50", "imagenet")
        ResNet50_Weights.IMAGENET1K_V2
    """
    if isinstance(source, WeightsEnum):
        return source
    if model_name is None:
        raise ConfigError(
            f"weights={source!r} names torchvision weights, but this model has none: names "
            "work for the torchvision models built by create_model (resnet*, wide_resnet50_2, "
            "mobilenet_v3_*, efficientnet_b0, vgg11_bn); for others pass the enum member "
            "(e.g. torchvision.models.ResNet18_Weights.DEFAULT), a path to a weights file or "
            f"run directory (write ./{source} for one of that name), or no weights (weights=None; "
            "--set model.weights=none)."
        )
    enum = torchvision.models.get_model_weights(model_name)
    choices = ["imagenet", *enum.__members__]
    owner, _, member = source.rpartition(".")
    key = "DEFAULT" if member.upper() == "IMAGENET" else member.upper()
    if (owner and owner != enum.__name__) or key not in enum.__members__:
        raise ConfigError(
            f"Unknown weights {source!r} for {model_name}. Choose one of "
            f"{', '.join(choices)} (or {enum.__name__}.<member>), a path to a weights file or "
            "run directory (write ./name for a directory in the current folder), or None."
        )
    return enum[key]


def torchvision_cache_dir() -> Path:
    """Where torchvision weights are cached: ``torch.hub.get_dir()/checkpoints``.

    ``torch.hub.get_dir()`` is ``$TORCH_HOME/hub`` (``~/.cache/torch/hub`` by default).

    Example:
        >>> torchvision_cache_dir().name
        'checkpoints'
    """
    return Path(torch.hub.get_dir()) / "checkpoints"


def fetch_torchvision_state_dict(weights: WeightsEnum) -> dict[str, torch.Tensor]:
    """torchvision's state dict for ``weights``: from the hub cache, else downloaded into it.

    Args:
        weights: the enum member, e.g. ``ResNet18_Weights.IMAGENET1K_V1``.

    Returns:
        The state dict, on the CPU.

    Raises:
        CheckpointError: the download failed (the message names the file, the cache
            directory and how to place the file there by hand), or the file is unreadable.

    Example:
        >>> from torchvision.models import ResNet18_Weights
        >>> fetch_torchvision_state_dict(ResNet18_Weights.DEFAULT)  # doctest: +SKIP
    """
    filename = os.path.basename(urlparse(weights.url).path)
    cached = torchvision_cache_dir() / filename
    if not cached.is_file():
        _download(weights, cached)
    state, _ = read_weights_file(cached)
    return state


def _download(weights: WeightsEnum, target: Path) -> None:
    match = _HASH_PREFIX.search(target.name)
    prefix = match.group(1) if match else None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(weights.url, str(target), prefix, progress=True)
    except (OSError, RuntimeError, ValueError) as err:  # URLError is an OSError
        check = (
            f" Its SHA-256 digest starts with {prefix} (check: sha256sum {target.name})." if prefix else ""
        )
        raise CheckpointError(
            f"Could not download the torchvision weights {weights} ({target.name}) from "
            f"{weights.url}: {err}. They are looked up first in the cache directory "
            f"{target.parent}. To use them without network access, download the file by hand "
            f"on a machine that has it (e.g. curl -L -o {target.name} {weights.url}) and copy "
            f"it to {target} (set TORCH_HOME to use another cache directory).{check} "
            "Or start from a random initialisation: weights=None in Python, --set "
            'model.weights=none on the command line (weights = "none" in a config).'
        ) from err


def read_weights(
    source: WeightsSource, *, torchvision_name: str | None = None
) -> tuple[dict[str, torch.Tensor], WeightsMeta]:
    """Read any weights source (see the module doc) into a state dict and its metadata.

    Args:
        source: torchvision name or enum, path to a file or run directory, or a state dict.
        torchvision_name: the model's torchvision name, needed for names like ``"imagenet"``.

    Returns:
        ``(state dict on the CPU, WeightsMeta)``.

    Raises:
        ConfigError: an unknown torchvision name, or a source of the wrong type.
        CheckpointError: a missing, unreadable or unsafe file, or a failed download.

    Example:
        >>> state, meta = read_weights({"fc.bias": torch.zeros(2)})
        >>> meta.name
        'state dict'
    """
    if isinstance(source, Mapping):
        return _clean_state(source, "state dict"), WeightsMeta("state dict")
    if isinstance(source, str) and not source.strip():
        raise ConfigError("weights is an empty string; pass None for no weights, or a name/path.")
    if is_torchvision_name(source):
        weights = resolve_torchvision_weights(torchvision_name, source)
        transform = weights.transforms()
        meta = WeightsMeta(
            name=str(weights),
            mean=tuple(transform.mean),
            std=tuple(transform.std),
            class_names=tuple(weights.meta.get("categories") or ()) or None,
        )
        return fetch_torchvision_state_dict(weights), meta
    if isinstance(source, str | os.PathLike):
        return read_weights_file(source)
    raise ConfigError(
        f"weights must be None, a torchvision name ('imagenet'), a path or a state dict; "
        f"got a {type(source).__name__}."
    )


def read_weights_file(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], WeightsMeta]:
    """Read a weights file, checkpoint or run directory (see the module doc).

    Args:
        path: the file or directory.

    Returns:
        ``(state dict on the CPU, WeightsMeta)``.

    Raises:
        CheckpointError: missing, unreadable, unsafe, or of an unknown type.

    Example:
        >>> import tempfile
        >>> run = Path(tempfile.mkdtemp())
        >>> torch.save({"model": {"fc.bias": torch.ones(2)}, "epoch": 3}, run / "last.ckpt")
        >>> read_weights_file(run)[1].name.endswith("last.ckpt")
        True
    """
    path = user_path(path, "weights").expanduser()
    if path.is_dir():
        path = _run_dir_file(path)
    if not path.is_file():
        raise CheckpointError(
            f"Weights file {path} does not exist. Pass an existing .safetensors, .pth, .pt or "
            ".ckpt file, a run directory, a torchvision name such as 'imagenet', or None."
        )
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        state, info = _read_safetensors(path)
    elif suffix in _FILE_SUFFIXES:
        state, info = _unpack(_torch_load(path), path)
    else:
        raise CheckpointError(
            f"Cannot tell what kind of weights file {path} is from its suffix {suffix!r}. "
            f"Expected one of {', '.join(_FILE_SUFFIXES)}, or a run directory."
        )
    return _clean_state(state, str(path)), _meta_from_info(str(path), info)


def _run_dir_file(directory: Path) -> Path:
    for name in RUN_DIR_FILES:
        if (directory / name).is_file():
            return directory / name
    raise CheckpointError(
        f"The run directory {directory} holds none of {', '.join(RUN_DIR_FILES)}. Point "
        "weights at a checkpoint or weights file, or at a directory where training saved one."
    )


def _torch_load(path: Path) -> Any:
    return read_torch_file(
        path,
        what="weights file",
        fix="Expected a state dict or checkpoint saved with torch.save; download or copy it again.",
    )


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict | None]:
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    try:
        state = load_file(str(path), device="cpu")
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(
            f"Cannot read {path}: {err}. It is truncated or not a safetensors file."
        ) from err
    if "model_info" not in metadata:
        return state, None
    try:
        info = json.loads(metadata["model_info"])
    except (json.JSONDecodeError, RecursionError):
        raise CheckpointError(
            f"{path}: its metadata entry 'model_info' is not valid JSON. {_META_FIX}"
        ) from None
    return state, info


def _unpack(obj: Any, path: Path) -> tuple[Mapping, dict | None]:
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state dict or checkpoint dict.")
    for key in ("model", "state_dict"):
        if isinstance(obj.get(key), Mapping):
            return obj[key], obj.get("model_info")
    return obj, None


def _clean_state(state: Mapping, where: str) -> dict[str, torch.Tensor]:
    bad = [k for k, v in state.items() if not isinstance(k, str) or not torch.is_tensor(v)]
    if bad or not state:
        keys = ", ".join(map(str, list(state)[:8]))
        raise CheckpointError(
            f"{where} is not a state dict of named tensors (keys: {keys or 'none'}). Expected "
            "{'conv1.weight': tensor, ...}, or a checkpoint with one under 'model'."
        )
    state = dict(state)
    for prefix in _PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


_META_FIX = "The file is corrupted or was edited; use another copy, or a plain state dict."


def _meta_from_info(name: str, info: Any) -> WeightsMeta:
    if info is None:
        return WeightsMeta(name)
    info = check_model_info(info, name, complete=False, fix=_META_FIX)

    def floats(key: str) -> tuple[float, ...] | None:
        value = info.get(key)
        return tuple(float(v) for v in value) if value else None

    names = info.get("class_names")
    return WeightsMeta(name, floats("mean"), floats("std"), tuple(names) if names else None)
