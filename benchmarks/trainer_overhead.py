"""Trainer overhead: the Trainer's images/s against a hand-written loop doing the same work.

The overhead case of the issue: the MNIST-recipe ConvNet (``convnet``, 1.2M parameters) on
synthetic 1x28x28 uint8 data of Fashion-MNIST's shape, on the CPU by default. Both loops keep
the data in memory as uint8 and do exactly the same work per step: gather a batch, normalise
it (and crop and flip it with ``--augment``), forward, cross-entropy, backward, SGD (lr 0.05,
momentum 0.9, weight decay 5e-4 on weights), ``zero_grad(set_to_none=True)``, running loss and
accuracy on the device -- the hand-written loop (:class:`HandLoop`, below) with nothing else,
``finetune_kit.Trainer`` with its defaults (callbacks, scheduler, checkpoint-ready state).

Two figures, each repeated ``--repeats`` times with the two loops interleaved (ABBA order, so
a machine that slows down during the run does not favour either):

* **steps**: images/s over ``--batches`` steps after ``--warmup`` untimed ones (steady state),
  per wall-clock second and per second of the process's CPU time (the steadier figure on a
  shared machine: time spent descheduled is not counted). The default is one torch thread
  (``--threads``): on a shared CPU, intra-op threads waiting for each other turn every small
  operation into a scheduler time slice (a LeNet step took 300 ms with two threads, 1.3 ms
  with one, on the 2-core machine of docs/benchmarks.md);
* **run**: wall time of a whole one-epoch run of ``warmup + batches`` steps, set-up included
  (for the Trainer: ``Trainer(...)`` plus ``fit()``, with its run files and end-of-epoch
  checkpoint; for the hand loop: building the optimizer and running the steps).

The hand-written loop itself (:class:`HandLoop`, with its device-side crop and flip) is defined
here; ``throughput.py`` uses it as its loop (b). Overhead = 1 - median(Trainer / hand) of the
paired repeats. The goal: <= 5% on the CPU.
A shared, loaded machine makes single figures noisy: read the median and the spread.

Run::

    python benchmarks/trainer_overhead.py                       # CPU, batch 128, 5 repeats
    python benchmarks/trainer_overhead.py --repeats 9 --batches 40 --json o.json
    python benchmarks/trainer_overhead.py --device cuda --model resnet18_32 --batch-size 512
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from common import (
    MODEL_CASES,
    ModelCase,
    StepWindow,
    autocast_to,
    build_model,
    describe,
    environment,
    markdown_table,
    resolve_precision,
    summarize,
    synchronize,
    synthetic_bundle,
    torch_threads,
    write_json,
)
from torch import nn

import finetune_kit as fk
from finetune_kit.runtime import resolve_device

__all__ = ["HandLoop", "crop_flip_gather", "hand_crop_flip", "main", "measure_hand", "measure_trainer"]


# --------------------------------------------------------------------- the hand-written loop
def crop_flip_gather(
    x: torch.Tensor,
    top: torch.Tensor,
    left: torch.Tensor,
    flip: torch.Tensor,
    padding: int,
    *,
    channels_last: bool,
) -> torch.Tensor:
    """Crop every image at its own offset of the zero-padded batch, flipped where asked.

    One advanced-indexing gather on the NHWC view does crop and flip for the whole batch;
    output pixel ``(i, j)`` of image ``b`` is padded pixel ``(top[b] + i, left[b] + j)``, or
    column ``left[b] + W - 1 - j`` when ``flip[b]`` (torchvision's crop-then-flip).

    Args:
        x: ``(B, C, H, W)`` images, any dtype.
        top: ``(B,)`` row offsets in ``0..2 * padding`` (on ``x``'s device).
        left: ``(B,)`` column offsets in ``0..2 * padding``.
        flip: ``(B,)`` bool.
        padding: zero padding on each side.
        channels_last: return a channels-last tensor (the gather makes one for free).

    Returns:
        ``(B, C, H, W)``, same dtype and device.

    Example:
        >>> x = torch.arange(4, dtype=torch.uint8).view(1, 1, 2, 2)
        >>> t = torch.tensor
        >>> crop_flip_gather(x, t([0]), t([0]), t([True]), 0, channels_last=False).flatten()
        tensor([1, 0, 3, 2], dtype=torch.uint8)
    """
    b, _, h, w = x.shape
    dev = x.device
    padded = F.pad(x, (padding,) * 4) if padding else x
    ar_h, ar_w = torch.arange(h, device=dev), torch.arange(w, device=dev)
    rows = top.view(b, 1, 1) + ar_h.view(1, h, 1)  # (B, H, 1)
    cols = left.view(b, 1, 1) + torch.where(flip.view(b, 1, 1), w - 1 - ar_w, ar_w)  # (B, 1, W)
    out = padded.permute(0, 2, 3, 1)[torch.arange(b, device=dev).view(b, 1, 1), rows, cols]
    out = out.permute(0, 3, 1, 2)  # (B, C, H, W) view of NHWC memory: channels_last already
    return out if channels_last else out.contiguous()


def hand_crop_flip(x: torch.Tensor, padding: int, *, channels_last: bool) -> torch.Tensor:
    """Random crop after zero padding and random horizontal flip, drawn on the device.

    The hand-tuned way: offsets and flips are drawn where the batch is (no host round trip)
    and applied by :func:`crop_flip_gather`.

    Args:
        x: ``(B, C, H, W)`` images, any dtype, on any device.
        padding: offsets are uniform in ``0..2 * padding``; flips have probability 0.5.
        channels_last: return a channels-last tensor.

    Returns:
        ``(B, C, H, W)``, same dtype and device.

    Example:
        >>> x = torch.arange(8, dtype=torch.uint8).view(2, 1, 2, 2)
        >>> y = hand_crop_flip(x, 0, channels_last=False)  # no padding: each image, or mirrored
        >>> all(torch.equal(y[i], x[i]) or torch.equal(y[i], x[i].flip(-1)) for i in range(2))
        True
    """
    b, dev = x.shape[0], x.device
    top = torch.randint(0, 2 * padding + 1, (b,), device=dev)
    left = torch.randint(0, 2 * padding + 1, (b,), device=dev)
    flip = torch.rand(b, device=dev) < 0.5
    return crop_flip_gather(x, top, left, flip, padding, channels_last=channels_last)


@dataclass
class HandLoop:
    """A hand-written training loop doing the Trainer's work with nothing else around it.

    The split lives on the device as uint8 (and on CUDA ``cudnn.benchmark`` is turned on); each
    epoch is one ``randperm`` on the device; each
    step gathers a batch, crops and flips it (when ``padding`` or ``hflip``), normalises it
    with one multiply-add, resizes it on the device when ``resize`` is set, runs forward and
    loss under autocast, backward, the optimizer step, ``zero_grad(set_to_none=True)``, and
    adds loss and correct counts to running sums on the device (read once, at the end).

    Args:
        model: the network (moved to ``device``; channels_last when asked).
        images: ``(N, C, H, W)`` uint8.
        targets: ``(N,)`` int64.
        mean: per-channel mean of ``x / 255``.
        std: per-channel standard deviation of ``x / 255``.
        device: where everything runs.
        batch_size: images per step.
        precision: ``"32"`` or ``"bf16-mixed"``.
        channels_last: channels-last model and batches.
        padding: random-crop padding (0: no crop).
        hflip: random horizontal flip.
        resize: bilinear resize of the batch to this side, on the device (None: none).
        lr: SGD learning rate (momentum 0.9, weight decay 5e-4 on weights only, as the
            Trainer's defaults).
        compile: compile the model with ``torch.compile``.

    Example:
        >>> loop = HandLoop(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)),
        ...                 torch.zeros(8, 1, 2, 2, dtype=torch.uint8), torch.zeros(8).long(),
        ...                 mean=(0.5,), std=(0.5,), batch_size=4)
        >>> len(list(loop.steps(3)))
        3
    """

    model: nn.Module
    images: torch.Tensor
    targets: torch.Tensor
    mean: Sequence[float]
    std: Sequence[float]
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    batch_size: int = 128
    precision: str = "32"
    channels_last: bool = False
    padding: int = 0
    hflip: bool = False
    resize: int | None = None
    lr: float = 0.05
    compile: bool = False

    def __post_init__(self) -> None:
        self.device = torch.device(self.device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # autotuned kernels, as the Trainer's default
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        self.model.to(self.device, memory_format=fmt).train()
        self.forward = torch.compile(self.model) if self.compile else self.model
        self.images = self.images.to(self.device)
        self.targets = self.targets.to(self.device)
        std = torch.tensor(self.std, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        mean = torch.tensor(self.mean, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        self.scale, self.shift = 1.0 / (255.0 * std), -mean / std
        decay = [p for p in self.model.parameters() if p.ndim > 1]
        no_decay = [p for p in self.model.parameters() if p.ndim <= 1]
        self.optimizer = torch.optim.SGD(
            [{"params": decay, "weight_decay": 5e-4}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self.lr,
            momentum=0.9,
        )
        self.dtype = torch.bfloat16 if self.precision == "bf16-mixed" else None
        self.running = torch.zeros(2, dtype=torch.float64, device=self.device)

    def _batch(self, index: torch.Tensor) -> torch.Tensor:
        x = self.images.index_select(0, index)
        if self.padding or self.hflip:
            x = hand_crop_flip(x, self.padding, channels_last=self.channels_last)
        x = x.float().mul_(self.scale).add_(self.shift)  # (x / 255 - mean) / std
        if self.resize:
            x = F.interpolate(x, size=(self.resize, self.resize), mode="bilinear", align_corners=False)
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        return x.contiguous(memory_format=fmt)

    def step(self, index: torch.Tensor) -> None:
        """One optimizer step on the samples at ``index`` (a device tensor)."""
        x, y = self._batch(index), self.targets.index_select(0, index)
        with autocast_to(self.device, self.dtype):
            logits = self.forward(x)
            loss = F.cross_entropy(logits, y)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        correct = (logits.detach().argmax(dim=1) == y).sum()
        self.running += torch.stack([loss.detach().double() * y.shape[0], correct.double()])

    def steps(self, count: int) -> Iterator[int]:
        """Run ``count`` steps (new permutations as epochs run out), yielding each step's number."""
        n = self.images.shape[0]
        per_epoch = max(n // self.batch_size, 1)
        order = torch.randperm(n, device=self.device)
        for i in range(count):
            if i and i % per_epoch == 0:
                order = torch.randperm(n, device=self.device)
            j = i % per_epoch
            self.step(order[j * self.batch_size : (j + 1) * self.batch_size])
            yield i + 1

    def timed(self, *, warmup: int, steps: int) -> tuple[float, float]:
        """Run ``warmup`` untimed steps, then ``steps`` timed ones.

        Returns:
            ``(wall seconds, process CPU seconds)`` of the timed steps.
        """
        for _ in self.steps(warmup):
            pass
        synchronize(self.device)
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in self.steps(steps):
            pass
        synchronize(self.device)
        return time.perf_counter() - wall, time.process_time() - cpu

    def images_per_second(self, *, warmup: int, steps: int) -> float:
        """Images per wall-clock second of :meth:`timed`."""
        wall, _ = self.timed(warmup=warmup, steps=steps)
        return steps * self.batch_size / wall


def measure_hand(
    case: ModelCase,
    bundle: fk.DataBundle,
    device: torch.device,
    *,
    batch_size: int,
    warmup: int,
    batches: int,
    precision: str,
    augment: bool,
) -> dict[str, float]:
    """One repeat of the hand-written loop: steady-state images/s and whole-run seconds."""
    model = build_model(case)
    synchronize(device)
    started = time.perf_counter()
    preset = bundle.preset
    loop = HandLoop(
        model,
        bundle.train.images,
        bundle.train.targets,
        mean=bundle.mean,
        std=bundle.std,
        device=device,
        batch_size=batch_size,
        precision=precision,
        channels_last=device.type == "cuda",
        padding=preset.padding_for(bundle.image_size) if augment else 0,
        hflip=preset.hflip and augment,
        resize=preset.resize,
    )
    wall, cpu = loop.timed(warmup=warmup, steps=batches)
    loop.running.tolist()  # the end-of-epoch read of the running metrics, as the Trainer's
    synchronize(device)
    images = batches * batch_size
    return {"img_s": images / wall, "cpu_img_s": images / cpu, "run_s": time.perf_counter() - started}


def measure_trainer(
    case: ModelCase,
    bundle: fk.DataBundle,
    device: torch.device,
    *,
    batch_size: int,
    warmup: int,
    batches: int,
    precision: str,
    augment: bool,
) -> dict[str, float]:
    """One repeat of ``fk.Trainer`` (defaults): steady-state images/s and whole-run seconds."""
    model = build_model(case)
    window = StepWindow(warmup=warmup, steps=batches, images_per_step=batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        synchronize(device)
        started = time.perf_counter()
        trainer = fk.Trainer(
            model,
            bundle,
            callbacks=[window],
            epochs=1,
            batch_size=batch_size,
            max_steps=warmup + batches,
            augment=augment,
            precision=precision,
            device=str(device),
            progress=False,
            output_dir=f"{tmp}/run",
            seed=0,
        )
        trainer.fit()
        synchronize(device)
        run_s = time.perf_counter() - started
    return {"img_s": window.images_per_second, "cpu_img_s": window.images_per_cpu_second, "run_s": run_s}


def _paired_repeat(
    i: int, case: ModelCase, bundle: fk.DataBundle, device: torch.device, sizes: dict[str, Any]
) -> dict[str, Any]:
    """Repeat ``i``: both loops, hand first on even repeats and Trainer first on odd ones."""
    order = ("hand", "trainer") if i % 2 == 0 else ("trainer", "hand")
    got = {}
    for loop in order:
        measure = measure_hand if loop == "hand" else measure_trainer
        got[loop] = measure(case, bundle, device, **sizes)
    hand, trainer = got["hand"], got["trainer"]
    row = {
        "repeat": i + 1,
        "hand_img_s": hand["img_s"],
        "trainer_img_s": trainer["img_s"],
        "step_ratio": trainer["img_s"] / hand["img_s"],
        "cpu_step_ratio": trainer["cpu_img_s"] / hand["cpu_img_s"],
        "hand_run_s": hand["run_s"],
        "trainer_run_s": trainer["run_s"],
        "run_ratio": hand["run_s"] / trainer["run_s"],
    }
    print(
        f"  repeat {i + 1}: hand {row['hand_img_s']:,.0f} img/s, trainer {row['trainer_img_s']:,.0f} img/s",
        flush=True,
    )
    return row


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, auto")
    p.add_argument("--model", choices=list(MODEL_CASES), default="convnet_28")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--batches", type=int, default=10, help="timed steps per repeat")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--repeats", type=int, default=5, help="measurements of each loop")
    p.add_argument("--augment", action="store_true", help="crop and flip in both loops")
    p.add_argument("--precision", default="auto", help="auto (bf16-mixed on CUDA, else 32)")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1, see above; 0 keeps torch's own setting)",
    )
    p.add_argument("--json", default=None, help="also write the results here")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the comparison; print every repeat and the summary; return the results."""
    args = parse_args(argv)
    with torch_threads(args.threads):
        return _run(args)


def _run(args: argparse.Namespace) -> dict[str, Any]:
    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    case = MODEL_CASES[args.model]
    bundle = synthetic_bundle(case, args.batch_size * (args.warmup + args.batches))
    env = environment(device)
    print(describe(env))
    print(
        f"# {args.model}, batch {args.batch_size}, {args.warmup} + {args.batches} steps, "
        f"precision {precision}, augment {args.augment}, {args.repeats} repeats",
        flush=True,
    )
    sizes = dict(
        batch_size=args.batch_size,
        warmup=args.warmup,
        batches=args.batches,
        precision=precision,
        augment=args.augment,
    )
    rows = [_paired_repeat(i, case, bundle, device, sizes) for i in range(args.repeats)]
    print()
    print(markdown_table(rows, list(rows[0])))
    summary = {key: summarize([r[key] for r in rows]) for key in rows[0] if key != "repeat"}
    step_overhead = 1 - summary["step_ratio"]["median"]
    cpu_overhead = 1 - summary["cpu_step_ratio"]["median"]
    run_overhead = 1 - summary["run_ratio"]["median"]
    print()
    print(
        markdown_table(
            [{"figure": k, **v} for k, v in summary.items()],
            ["figure", "median", "min", "max", "spread", "n"],
        )
    )
    print(
        f"\nTrainer overhead, steady-state steps: {step_overhead:+.1%} (median of "
        f"{args.repeats} paired repeats; goal <= 5%)"
    )
    print(f"Trainer overhead, steady-state steps in process CPU time: {cpu_overhead:+.1%}")
    print(f"Trainer overhead, whole run (set-up, run files, checkpoint): {run_overhead:+.1%}")
    result = {
        "benchmark": "trainer_overhead",
        "environment": env,
        "model": args.model,
        "sizes": sizes,
        "repeats": rows,
        "summary": summary,
        "step_overhead": step_overhead,
        "cpu_step_overhead": cpu_overhead,
        "run_overhead": run_overhead,
    }
    if args.json:
        write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
