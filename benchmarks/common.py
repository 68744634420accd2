"""Shared helpers of the benchmark scripts: the model cases, environment, timing, tables.

The scripts in this folder import this module as ``common`` (Python puts a script's own folder
first on ``sys.path``). Nothing here is part of the library: it measures the library.

* :data:`MODEL_CASES`, :func:`build_model`, :func:`synthetic_bundle` -- the models measured and
  the synthetic uint8 data they are fed.
* :func:`environment` -- hardware, software and machine load, printed with every figure.
* :func:`synchronize`, :class:`StepWindow` -- honest timing of steady-state optimizer steps,
  for a hand-written loop and for the :class:`finetune_kit.Trainer` alike.
* :func:`summarize`, :func:`markdown_table`, :func:`write_json` -- reporting.

The hand-written reference loop (``HandLoop``) lives in ``trainer_overhead.py``.

Example:
    >>> summarize([3.0, 1.0, 2.0])["median"]
    2.0
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

import finetune_kit as fk

__all__ = [
    "MODEL_CASES",
    "ModelCase",
    "StepWindow",
    "autocast_to",
    "build_model",
    "conv_bn_relu_pool_net",
    "describe",
    "environment",
    "free_memory",
    "markdown_table",
    "peak_memory_mib",
    "reset_peak_memory",
    "resolve_precision",
    "summarize",
    "synchronize",
    "synthetic_bundle",
    "torch_threads",
    "write_json",
]

REPO_ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------- benchmark cases
@dataclass(frozen=True)
class ModelCase:
    """One model of the benchmark and the data it is fed.

    Args:
        model: registered model name (or a name for ``builder``'s model).
        channels: image channels.
        image_size: side of the stored images.
        preset: the data preset (``imagenet`` resizes to 224 on the device).
        small_input: the ResNets' 3x3 stem for 32-pixel inputs.
        options: extra ``create_model`` options.
        builder: builds a model outside the registry instead, as ``builder(channels)``.

    Example:
        >>> MODEL_CASES["resnet18_224"].input_size
        224
    """

    model: str
    channels: int = 3
    image_size: int = 32
    preset: str = "cifar"
    small_input: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    builder: Callable[[int], nn.Module] | None = None

    @property
    def input_size(self) -> int:
        """The side the model sees."""
        return 224 if self.preset == "imagenet" else self.image_size


def conv_bn_relu_pool_net(in_channels: int, num_classes: int = 10, width: int = 16) -> nn.Module:
    """The net of a careful hand-written CPU script: three conv-BN-ReLU-max-pool blocks of
    ``width``, ``2 * width``, ``4 * width`` channels, global average pool, linear (24k params).

    ``bn_convnet`` has the same convolutions with the pool moved before BatchNorm and ReLU,
    and a 3x3 grid into its head; ``cpu_settings.py`` compares the two.

    Example:
        >>> sum(p.numel() for p in conv_bn_relu_pool_net(1).parameters())
        24058
    """
    layers: list[nn.Module] = []
    channels = in_channels
    for out in (width, 2 * width, 4 * width):
        conv = nn.Conv2d(channels, out, 3, padding=1, bias=False)
        layers += [conv, nn.BatchNorm2d(out), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        channels = out
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes))


MODEL_CASES: dict[str, ModelCase] = {
    "resnet18_32": ModelCase("resnet18", small_input=True),
    "resnet18_224": ModelCase("resnet18", preset="imagenet"),
    "resnet50_224": ModelCase("resnet50", preset="imagenet"),
    "resnet9_32": ModelCase("resnet9"),
    "convnet_28": ModelCase("convnet", channels=1, image_size=28, preset="fashion"),
    "bn_convnet_28": ModelCase("bn_convnet", channels=1, image_size=28, preset="fashion"),
    "conv_bn_relu_pool_28": ModelCase(
        "conv_bn_relu_pool", channels=1, image_size=28, preset="fashion", builder=conv_bn_relu_pool_net
    ),
    "lenet_16": ModelCase("lenet", image_size=16, options={"input_size": 16}),
}


def synthetic_bundle(case: ModelCase, n: int) -> fk.DataBundle:
    """``n`` random uint8 images of the case's shape with 10 balanced labels, as a bundle."""
    g = torch.Generator().manual_seed(0)
    shape = (n, case.channels, case.image_size, case.image_size)
    images = torch.randint(0, 256, shape, dtype=torch.uint8, generator=g)
    return fk.create_datasets(
        "tensors",
        train=(images, torch.arange(n) % 10),
        val_fraction=0,
        preset=case.preset,
        class_names=[str(i) for i in range(10)],
    )


def build_model(case: ModelCase) -> nn.Module:
    """A fresh, identically initialised model of the case."""
    torch.manual_seed(0)
    if case.builder is not None:
        return case.builder(case.channels)
    return fk.create_model(
        case.model,
        num_classes=10,
        in_channels=case.channels,
        small_input=case.small_input,
        seed=0,
        **case.options,
    )


# ------------------------------------------------------------------ environment and timing
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def environment(device: torch.device | str = "cpu") -> dict[str, Any]:
    """Hardware, software and load of this machine, to print next to every figure.

    Args:
        device: the device the benchmark runs on (its name is added for CUDA).

    Returns:
        A JSON-safe dict: ``cpu``, ``cores``, ``torch_threads``, ``load_average`` (1/5/15 min,
        a loaded machine slows CPU figures), ``python``, ``torch``, ``torchvision``,
        ``finetune_kit``, ``device`` and, on CUDA, ``gpu``, ``cuda`` and ``cudnn``.

    Example:
        >>> env = environment("cpu")
        >>> env["device"], env["cores"] >= 1
        ('cpu', True)
    """
    import torchvision

    device = torch.device(device)
    env: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count() or 1,
        "torch_threads": torch.get_num_threads(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "finetune_kit": fk.__version__,
        "device": device.type,
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
        env["cudnn"] = torch.backends.cudnn.version()
    return env


def describe(env: dict[str, Any]) -> str:
    """The environment as comment lines (``# ...``) above a table.

    Example:
        >>> describe({"cpu": "X", "cores": 2, "torch_threads": 2, "load_average": [1, 1, 1],
        ...           "python": "3.11", "torch": "2", "torchvision": "0", "finetune_kit": "0",
        ...           "device": "cpu"}).splitlines()[0]
        '# CPU: X (2 cores, 2 torch threads), load average 1 / 1 / 1'
    """
    load = " / ".join(str(v) for v in env["load_average"])
    lines = [
        f"# CPU: {env['cpu']} ({env['cores']} cores, {env['torch_threads']} torch threads), "
        f"load average {load}",
        f"# Python {env['python']}, torch {env['torch']}, torchvision {env['torchvision']}, "
        f"finetune_kit {env['finetune_kit']}",
    ]
    if "gpu" in env:
        lines.append(f"# GPU: {env['gpu']} (CUDA {env['cuda']}, cuDNN {env['cudnn']})")
    return "\n".join(lines)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU), so a clock reading is honest.

    Example:
        >>> synchronize(torch.device("cpu"))
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak-memory measurement on CUDA (nothing to reset on the CPU).

    Example:
        >>> reset_peak_memory(torch.device("cpu"))
    """
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mib(device: torch.device) -> float:
    """Peak memory in MiB: CUDA memory allocated by torch since :func:`reset_peak_memory`, or
    on the CPU the process's resident-set high-water mark (it never goes down, so on the CPU
    it bounds every case measured so far rather than the last one).

    Example:
        >>> peak_memory_mib(torch.device("cpu")) > 0
        True
    """
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is in KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def free_memory(device: torch.device) -> None:
    """Collect garbage and return cached CUDA blocks between cases.

    Example:
        >>> free_memory(torch.device("cpu"))
    """
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


@contextlib.contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run the block with ``count`` torch CPU threads (None: unchanged), then restore them.

    Example:
        >>> before = torch.get_num_threads()
        >>> with torch_threads(1):
        ...     torch.get_num_threads()
        1
        >>> torch.get_num_threads() == before
        True
    """
    previous = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def resolve_precision(name: str, device: torch.device) -> str:
    """``"auto"`` -> ``"bf16-mixed"`` on CUDA, ``"32"`` elsewhere; other names pass through.

    Example:
        >>> resolve_precision("auto", torch.device("cpu")), resolve_precision("32", "cuda")
        ('32', '32')
    """
    if name != "auto":
        return name
    return "bf16-mixed" if torch.device(device).type == "cuda" else "32"


class StepWindow(fk.Callback):
    """Times optimizer steps ``warmup + 1 .. warmup + steps`` of a Trainer run.

    The clock starts (after a device synchronisation) when step ``warmup`` has finished and
    stops (after another) when step ``warmup + steps`` has: everything the Trainer does per
    step in between -- loading the batch, forward, backward, optimizer, scheduler, EMA, running
    metrics, callbacks -- is inside the window; set-up, compilation and cuDNN autotuning of the
    first steps are not. Give the Trainer ``max_steps=warmup + steps``. Both wall time and the
    process's CPU time are taken (on a shared CPU the second is the steadier measure of work).

    Args:
        warmup: untimed steps first.
        steps: timed steps.
        images_per_step: images of one step (the batch size).

    Example:
        >>> StepWindow(warmup=2, steps=5, images_per_step=32).images
        160
    """

    def __init__(self, *, warmup: int, steps: int, images_per_step: int) -> None:
        self.warmup, self.steps, self.images = warmup, steps, steps * images_per_step
        self._start: tuple[float, float] | None = None
        self.seconds: float | None = None
        self.cpu_seconds: float | None = None

    def _begin(self, device: torch.device) -> None:
        synchronize(device)
        self._start = (time.perf_counter(), time.process_time())

    def on_fit_start(self, trainer: fk.Trainer) -> None:
        if self.warmup == 0:
            self._begin(trainer.device)

    def on_train_batch_end(self, trainer: fk.Trainer) -> None:
        step = trainer.state.global_step
        if step == self.warmup and self._start is None:
            self._begin(trainer.device)
        elif step == self.warmup + self.steps and self.seconds is None:
            synchronize(trainer.device)
            self.seconds = time.perf_counter() - self._start[0]
            self.cpu_seconds = time.process_time() - self._start[1]

    @property
    def images_per_second(self) -> float:
        """Images per wall-clock second over the window (NaN when the run ended too soon)."""
        return self.images / self.seconds if self.seconds else float("nan")

    @property
    def images_per_cpu_second(self) -> float:
        """Images per second of the process's CPU time over the window."""
        return self.images / self.cpu_seconds if self.cpu_seconds else float("nan")


def autocast_to(device: torch.device, dtype: torch.dtype | None) -> Any:
    """Autocast to ``dtype`` on ``device``, or nothing at all for ``None`` (as the Trainer).

    Example:
        >>> autocast_to(torch.device("cpu"), None)  # doctest: +ELLIPSIS
        <contextlib.nullcontext object at ...>
    """
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


# ------------------------------------------------------------------------------- reporting
def summarize(values: Sequence[float]) -> dict[str, float]:
    """Median, min, max and the relative spread ``(max - min) / median`` of repeated figures.

    Example:
        >>> summarize([10.0, 12.0, 11.0])
        {'median': 11.0, 'min': 10.0, 'max': 12.0, 'spread': 0.18181818181818182, 'n': 3}
    """
    median = statistics.median(values)
    low, high = min(values), max(values)
    spread = (high - low) / median if median else float("nan")
    return {"median": median, "min": low, "max": high, "spread": spread, "n": len(values)}


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A Markdown table of ``rows`` (dicts) with the given column keys (floats: 3 digits).

    Example:
        >>> print(markdown_table([{"a": 1, "b": 2.5}], ["a", "b"]))
        | a | b |
        | --- | ---: |
        | 1 | 2.5 |
    """

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
        return str(value)

    numeric = [
        all(isinstance(r.get(c), (int, float)) for r in rows)
        and any(isinstance(r.get(c), float) for r in rows)
        for c in columns
    ]
    lines = [
        "| " + " | ".join(columns) + " |",
        "| " + " | ".join("---:" if num else "---" for num in numeric) + " |",
    ]
    lines += ["| " + " | ".join(cell(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def write_json(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` as indented JSON (NaN as null) and return the path.

    Example:
        >>> import tempfile
        >>> p = write_json(Path(tempfile.mkdtemp()) / "r.json", {"x": float("nan")})
        >>> p.read_text()
        '{\\n  "x": null\\n}'
    """

    def clean(value: Any) -> Any:
        if isinstance(value, float) and value != value:
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(clean(payload), indent=2), encoding="utf-8")
    return path
