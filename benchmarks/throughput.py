"""Training throughput (images/s): a plain PyTorch loop, a hand-written fast loop and the Trainer.

For each model, in one run and on the same synthetic uint8 data of CIFAR shape (3x32x32; the
``convnet_28`` case uses Fashion-MNIST's 1x28x28), three loops train and are timed over
``--batches`` optimizer steps after ``--warmup`` untimed ones:

(a) **plain** -- a plain PyTorch loop as most tutorials write it: a dataset yielding PIL images,
    ``transforms.Compose([RandomCrop(32, padding=4), RandomHorizontalFlip(), (Resize(224),)
    ToTensor(), Normalize(...)])``, ``DataLoader(batch_size=128, shuffle=True)`` with its
    defaults (no workers), fp32, ``loss.item()`` every batch;
(b) **hand** -- a hand-written fast loop (``HandLoop`` of ``trainer_overhead.py``): the data on the device as
    uint8, crop and flip there, bf16 autocast and channels_last on CUDA, resize on the device
    for the 224 cases, no host sync per step;
(c) **trainer** -- ``finetune_kit.Trainer`` with its defaults (the device loader, cuDNN
    autotuning, channels_last on CUDA, running metrics on the device) and the same model,
    batch, augmentation, precision, optimizer (SGD, lr 0.05, momentum 0.9, weight decay 5e-4
    on weights) and loss as (b). The precision is passed explicitly (``--precision auto``:
    bf16-mixed on CUDA, fp32 elsewhere), since the Trainer's own default is fp32.

The loops run one after the other in this order (a, b, c); ``benchmarks/trainer_overhead.py``
interleaves repeated runs of (b) and (c) for a tighter overhead figure. It prints a Markdown
table with images/s and peak memory, then the ratios c/a and c/b per model (the goals, on
one H100 for ``resnet18_32``: c/b >= 0.97 and c/a >= 15).

Run::

    python benchmarks/throughput.py --device cuda --json throughput_gpu.json    # the H100 run
    python benchmarks/throughput.py --device cpu                                # small, ~1 min
    python benchmarks/throughput.py --device cpu --models convnet_28 --batches 10

``--scale`` picks the default sizes (``gpu``: ResNet-18 at 32 and 224 and ResNet-50 at 224,
batch 512, 50 timed steps; ``cpu``: ConvNet and ResNet-18 at 32, batch 32, 4 timed steps);
every size flag overrides it. ``--sync-debug`` (CUDA) runs ``--batches`` more steps of (b) and
(c) after the timed ones and counts their host synchronisations with
``torch.cuda.set_sync_debug_mode("warn")`` (column ``syncs``; -1: not measured). The Trainer
reads its loss once per ``log_every`` (50) steps by design, so one sync per 50 steps is expected.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from common import (
    MODEL_CASES,
    ModelCase,
    StepWindow,
    build_model,
    describe,
    environment,
    free_memory,
    markdown_table,
    peak_memory_mib,
    reset_peak_memory,
    resolve_precision,
    synchronize,
    synthetic_bundle,
    torch_threads,
    write_json,
)
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from trainer_overhead import HandLoop

import finetune_kit as fk
from finetune_kit.runtime import resolve_device

__all__ = ["SCALES", "main", "ratios", "run_model"]


SCALES: dict[str, dict[str, Any]] = {
    "gpu": {
        "models": ["resnet18_32", "resnet18_224", "resnet50_224"],
        "batch_size": 512,
        "plain_batch_size": 128,
        "batches": 50,
        "warmup": 10,
    },
    "cpu": {
        "models": ["convnet_28", "resnet18_32"],
        "batch_size": 32,
        "plain_batch_size": 32,
        "batches": 4,
        "warmup": 1,
    },
}
LOOPS = ("plain", "hand", "trainer")


# ---------------------------------------------------------------------------- (a) plain
class PILDataset(Dataset):
    """A torchvision-style dataset: uint8 images handed out one by one as PIL images."""

    def __init__(self, images: torch.Tensor, targets: torch.Tensor, transform: Any) -> None:
        self.images = images.permute(0, 2, 3, 1).numpy()  # NHWC, as torchvision's CIFAR10
        self.targets = targets.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        array = self.images[i]
        image = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
        return self.transform(image), self.targets[i]


def plain_transform(bundle: fk.DataBundle) -> Any:
    """The plain loop's per-sample PIL pipeline for the bundle's preset."""
    from torchvision import transforms as T

    size = bundle.image_size[0]
    ops: list[Any] = [
        T.RandomCrop(size, padding=bundle.preset.padding_for(bundle.image_size)),
        T.RandomHorizontalFlip(),
    ]
    if bundle.preset.resize:
        ops.append(T.Resize(bundle.preset.resize))
    ops += [T.ToTensor(), T.Normalize(bundle.mean, bundle.std)]
    return T.Compose(ops)


def plain_loop(
    case: ModelCase,
    bundle: fk.DataBundle,
    device: torch.device,
    *,
    batch_size: int,
    warmup: int,
    batches: int,
) -> float:
    """Images/s of the plain PyTorch loop: PIL transforms, DataLoader defaults, fp32, ``.item()``."""
    torch.backends.cudnn.benchmark = False  # torch's default, which the plain loop keeps
    model = build_model(case).to(device).train()
    data = PILDataset(bundle.train.images, bundle.train.targets, plain_transform(bundle))
    loader = DataLoader(data, batch_size=batch_size, shuffle=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    criterion = nn.CrossEntropyLoss()
    running_loss, started = 0.0, None
    for i, (x, y) in enumerate(loader):
        if i == warmup:
            synchronize(device)
            started = time.perf_counter()
        if i == warmup + batches:
            break
        x, y = x.to(device), y.to(device)
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        running_loss += loss.item()
    synchronize(device)
    return batches * batch_size / (time.perf_counter() - started)


# ----------------------------------------------------------------------------- (b) hand
class _SyncCounter:
    """Count CUDA host synchronisations between :meth:`start` and :meth:`stop`.

    Uses ``torch.cuda.set_sync_debug_mode("warn")``; the warnings are recorded, not shown.
    On the CPU, or when not ``enabled``, :attr:`count` stays -1 (not measured).
    """

    def __init__(self, device: torch.device, enabled: bool) -> None:
        self.enabled = enabled and device.type == "cuda"
        self.count = 0 if self.enabled else -1
        self._catch = warnings.catch_warnings(record=True)
        self._records: list[Any] = []

    def __enter__(self) -> _SyncCounter:
        if self.enabled:
            self._records = self._catch.__enter__()
            warnings.simplefilter("always")
        return self

    def start(self) -> None:
        if self.enabled:
            torch.cuda.set_sync_debug_mode("warn")

    def stop(self) -> None:
        if self.enabled:
            torch.cuda.set_sync_debug_mode("default")

    def __exit__(self, *exc: Any) -> None:
        if self.enabled:
            self.stop()
            self._catch.__exit__(*exc)
            self.count = sum("synchroniz" in str(w.message) for w in self._records)


def hand_loop(
    case: ModelCase,
    bundle: fk.DataBundle,
    device: torch.device,
    *,
    batch_size: int,
    warmup: int,
    batches: int,
    precision: str,
    compile: bool,
    sync_debug: bool,
) -> tuple[float, int]:
    """Images/s of the hand-written fast loop; with ``sync_debug``, ``batches`` more steps
    count the host syncs (else -1)."""
    preset = bundle.preset
    loop = HandLoop(
        build_model(case),
        bundle.train.images,
        bundle.train.targets,
        mean=bundle.mean,
        std=bundle.std,
        device=device,
        batch_size=batch_size,
        precision=precision,
        channels_last=device.type == "cuda",
        padding=preset.padding_for(bundle.image_size),
        hflip=preset.hflip,
        resize=preset.resize,
        compile=compile,
    )
    rate = loop.images_per_second(warmup=warmup, steps=batches)
    with _SyncCounter(device, sync_debug) as syncs:
        if syncs.enabled:
            syncs.start()
            for _ in loop.steps(batches):
                pass
            syncs.stop()
    return rate, syncs.count


# -------------------------------------------------------------------------- (c) trainer
class _SyncWindow(fk.Callback):
    """Count host syncs over steps ``after + 1 .. after + steps`` of a Trainer run."""

    def __init__(self, syncs: _SyncCounter, *, after: int, steps: int) -> None:
        self.syncs, self.after, self.steps = syncs, after, steps

    def on_train_batch_end(self, trainer: fk.Trainer) -> None:
        step = trainer.state.global_step
        if step == self.after:
            self.syncs.start()
        elif step == self.after + self.steps:
            self.syncs.stop()


def trainer_loop(
    case: ModelCase,
    bundle: fk.DataBundle,
    device: torch.device,
    *,
    batch_size: int,
    warmup: int,
    batches: int,
    precision: str,
    compile: bool,
    sync_debug: bool,
) -> tuple[float, int]:
    """Images/s of ``fk.Trainer`` (defaults; no checkpoint files); with ``sync_debug``,
    ``batches`` more steps count the host syncs (else -1)."""
    no_files = fk.ModelCheckpoint(monitor=None, save_last=False, save_top_k=0)
    window = StepWindow(warmup=warmup, steps=batches, images_per_step=batch_size)
    with tempfile.TemporaryDirectory() as tmp, _SyncCounter(device, sync_debug) as syncs:
        counter = _SyncWindow(syncs, after=warmup + batches, steps=batches)
        extra = batches if syncs.enabled else 0
        trainer = fk.Trainer(
            build_model(case),
            bundle,
            callbacks=[window, counter, no_files],
            epochs=1,
            batch_size=batch_size,
            max_steps=warmup + batches + extra,
            precision=precision,
            device=str(device),
            compile=compile,
            progress=False,
            output_dir=f"{tmp}/run",
            seed=0,
        )
        trainer.fit()
    return window.images_per_second, syncs.count


# ---------------------------------------------------------------------------------- run
def run_model(
    key: str,
    device: torch.device,
    *,
    batch_size: int,
    plain_batch_size: int,
    warmup: int,
    batches: int,
    precision: str,
    loops: Sequence[str] = LOOPS,
    compile: bool = False,
    sync_debug: bool = False,
) -> list[dict[str, Any]]:
    """Measure the chosen loops on one model; one result row per loop.

    Returns:
        Rows with ``model``, ``loop``, ``precision``, ``batch``, ``img_s``, ``peak_mib``,
        ``syncs`` (host syncs in the window with ``sync_debug``, else -1).
    """
    case = MODEL_CASES[key]
    n = max(batch_size, plain_batch_size) * (warmup + 2 * batches)
    bundle = synthetic_bundle(case, n)
    rows = []
    for loop in loops:
        free_memory(device)
        reset_peak_memory(device)
        if loop == "plain":
            rate, syncs = (
                plain_loop(case, bundle, device, batch_size=plain_batch_size, warmup=warmup, batches=batches),
                -1,
            )
            batch, prec = plain_batch_size, "32"
        else:
            run = hand_loop if loop == "hand" else trainer_loop
            rate, syncs = run(
                case,
                bundle,
                device,
                batch_size=batch_size,
                warmup=warmup,
                batches=batches,
                precision=precision,
                compile=compile,
                sync_debug=sync_debug,
            )
            batch, prec = batch_size, precision
        rows.append(
            {
                "model": key,
                "loop": loop,
                "precision": prec,
                "batch": batch,
                "img_s": rate,
                "peak_mib": peak_memory_mib(device),
                "syncs": syncs,
            }
        )
        print(f"  {key} {loop}: {rate:,.1f} img/s", flush=True)
    return rows


def ratios(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per model: trainer / plain (c/a) and trainer / hand (c/b).

    Example:
        >>> ratios([{"model": "m", "loop": "plain", "img_s": 1.0},
        ...         {"model": "m", "loop": "trainer", "img_s": 15.0}])
        [{'model': 'm', 'c/a': 15.0, 'c/b': nan}]
    """
    out = []
    for model in dict.fromkeys(r["model"] for r in rows):
        rate = {r["loop"]: r["img_s"] for r in rows if r["model"] == model}
        nan = float("nan")
        out.append(
            {
                "model": model,
                "c/a": rate.get("trainer", nan) / rate.get("plain", nan),
                "c/b": rate.get("trainer", nan) / rate.get("hand", nan),
            }
        )
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument(
        "--scale",
        choices=["auto", *SCALES],
        default="auto",
        help="default sizes: gpu or cpu (auto: from the device)",
    )
    p.add_argument("--models", nargs="+", choices=list(MODEL_CASES), default=None)
    p.add_argument("--loops", nargs="+", choices=LOOPS, default=list(LOOPS))
    p.add_argument("--batch-size", type=int, default=None, help="batch of (b) and (c)")
    p.add_argument("--plain-batch-size", type=int, default=None, help="batch of (a)")
    p.add_argument("--batches", type=int, default=None, help="timed steps per loop")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first")
    p.add_argument("--precision", default="auto", help="auto (bf16-mixed on CUDA, else 32)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model in (b), (c)")
    p.add_argument("--sync-debug", action="store_true", help="count host syncs (CUDA)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--json", default=None, help="also write the results here")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; print the table and ratios; return (and optionally save) the results."""
    args = parse_args(argv)
    with torch_threads(args.threads):
        return _run(args)


def _run(args: argparse.Namespace) -> dict[str, Any]:
    device = resolve_device(args.device)
    scale = SCALES[args.scale if args.scale != "auto" else ("gpu" if device.type == "cuda" else "cpu")]
    sizes = {k: getattr(args, k) if getattr(args, k) is not None else scale[k] for k in scale}
    precision = resolve_precision(args.precision, device)
    env = environment(device)
    print(describe(env))
    print(f"# sizes: {sizes}, precision {precision}, compile {args.compile}", flush=True)
    rows: list[dict[str, Any]] = []
    for key in sizes["models"]:
        rows += run_model(
            key,
            device,
            batch_size=sizes["batch_size"],
            plain_batch_size=sizes["plain_batch_size"],
            warmup=sizes["warmup"],
            batches=sizes["batches"],
            precision=precision,
            loops=args.loops,
            compile=args.compile,
            sync_debug=args.sync_debug,
        )
    print()
    print(markdown_table(rows, ["model", "loop", "precision", "batch", "img_s", "peak_mib", "syncs"]))
    print()
    summary = ratios(rows)
    print(markdown_table(summary, ["model", "c/a", "c/b"]))
    if device.type == "cpu":
        print("# peak_mib on the CPU: the process's RSS high-water mark so far (never decreases)")
    result = {
        "benchmark": "throughput",
        "environment": env,
        "sizes": sizes,
        "precision": precision,
        "compile": args.compile,
        "results": rows,
        "ratios": summary,
    }
    if args.json:
        write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
