"""Forward+backward time of the scratch im2col convolution against PyTorch's, ResNet-18 shapes.

For every distinct convolution of a torchvision ResNet-18 at the given image size, times one
forward and one backward pass (gradients of the input and the weight, as in training; the stem
sees the image, which needs no gradient) of

* PyTorch: ``torch.nn.functional.conv2d`` with autograd (cuDNN on the GPU, oneDNN on the CPU);
* scratch: ``finetune_kit.scratch.Conv2dFunction`` (im2col + one matmul per group forward,
  the hand-written col2im backward),

in float32 with TF32 off, and prints the best milliseconds, their ratio, and a total over the
whole network (each shape weighted by how often ResNet-18 uses it).

Usage:
    python benchmarks/conv_benchmark.py --device cuda               # batch 128, the size to compare at
    python benchmarks/conv_benchmark.py --device cpu --batch 8 --repeats 5  # a small CPU
"""

from __future__ import annotations

import argparse
import platform
import time
from collections import Counter
from collections.abc import Callable

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from finetune_kit.scratch import Conv2dFunction, tf32_disabled

Shape = tuple[int, int, int, int, int, int, int]  # C_in, C_out, k, stride, padding, H, W


def resnet18_conv_shapes(image_size: int) -> Counter[Shape]:
    """Each distinct conv of ResNet-18 at ``image_size`` and how many times it occurs."""
    model = torchvision.models.resnet18(weights=None).eval()  # eval: BatchNorm takes a 1x1 map
    shapes: Counter[Shape] = Counter()

    def record(module: nn.Conv2d, inputs: tuple[torch.Tensor, ...], _output: torch.Tensor) -> None:
        _, _, h, w = inputs[0].shape
        shapes[
            (
                module.in_channels,
                module.out_channels,
                module.kernel_size[0],
                module.stride[0],
                module.padding[0],
                h,
                w,
            )
        ] += 1

    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            module.register_forward_hook(record)
    with torch.no_grad():
        model(torch.zeros(1, 3, image_size, image_size))
    return shapes


def time_fwd_bwd(
    convs: dict[str, Callable[..., torch.Tensor]],
    x: torch.Tensor,
    w: torch.Tensor,
    stride: int,
    padding: int,
    repeats: int,
    warmup: int,
) -> dict[str, float]:
    """Best milliseconds of one forward + backward of each ``conv(x, w, None, stride, padding)``.

    The implementations take turns within each repeat, so that a busy machine slows them alike;
    the best of the repeats is the least disturbed one (as ``timeit`` advises).
    """
    times: dict[str, list[float]] = {name: [] for name in convs}
    for i in range(warmup + repeats):
        for name, conv in convs.items():
            x.grad = w.grad = None
            _sync(x.device)
            start = time.perf_counter()
            out = conv(x, w, None, stride, padding, 1, 1)
            out.backward(torch.ones_like(out))
            _sync(x.device)
            if i >= warmup:
                times[name].append((time.perf_counter() - start) * 1e3)
    return {name: min(values) for name, values in times.items()}


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(
    device: torch.device, batch: int, image_size: int, repeats: int, warmup: int
) -> list[dict[str, float | int | str]]:
    """Time every distinct ResNet-18 conv shape: one row per shape (``torch_ms``, ``scratch_ms``)."""
    rows: list[dict[str, float | int | str]] = []
    gen = torch.Generator().manual_seed(0)
    for (c_in, c_out, k, s, p, h, w), uses in resnet18_conv_shapes(image_size).items():
        x = torch.randn(batch, c_in, h, w, generator=gen).to(device)
        weight = torch.randn(c_out, c_in, k, k, generator=gen).mul_(0.05).to(device)
        x.requires_grad_(c_in != 3)  # the stem's input is the image: no gradient needed
        weight.requires_grad_()
        convs = {"torch": F.conv2d, "scratch": Conv2dFunction.apply}
        best = time_fwd_bwd(convs, x, weight, s, p, repeats, warmup)
        rows.append(
            {
                "conv": f"{c_in}->{c_out}",
                "k": k,
                "s": s,
                "hw": f"{h}x{w}",
                "uses": uses,
                "torch_ms": best["torch"],
                "scratch_ms": best["scratch"],
            }
        )
    return rows


def run(device: torch.device, batch: int, image_size: int, repeats: int, warmup: int) -> str:
    """Time every ResNet-18 conv shape; return the table as text."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()
    lines = [
        f"ResNet-18 convolutions at {image_size}x{image_size}, batch {batch}, float32, TF32 off, "
        f"{device} ({name}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} CPU threads, best of {repeats} (after {warmup} warm-up)",
        "",
        f"{'C_in->C_out':>12} {'k':>2} {'s':>2} {'H x W':>9} {'uses':>4} "
        f"{'torch ms':>10} {'scratch ms':>10} {'ratio':>6}",
    ]
    rows = measure(device, batch, image_size, repeats, warmup)
    for r in rows:
        lines.append(
            f"{r['conv']:>12} {r['k']:>2} {r['s']:>2} {r['hw']:>9} {r['uses']:>4} "
            f"{r['torch_ms']:10.2f} {r['scratch_ms']:10.2f} {r['scratch_ms'] / r['torch_ms']:6.2f}"
        )
    total_torch, total_scratch = weighted_totals(rows)
    lines += [
        "",
        f"{'all 20 convs (weighted by uses)':>31} {total_torch:10.1f} "
        f"{total_scratch:10.1f} {total_scratch / total_torch:6.2f}",
    ]
    return "\n".join(lines)


def weighted_totals(rows: list[dict[str, float | int | str]]) -> tuple[float, float]:
    """Milliseconds of all of ResNet-18's convs (each shape times its uses): torch, scratch."""
    torch_ms = sum(r["uses"] * r["torch_ms"] for r in rows)
    scratch_ms = sum(r["uses"] * r["scratch_ms"] for r in rows)
    return torch_ms, scratch_ms


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, run the benchmark with TF32 off and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--batch", type=int, default=128, help="batch size (default 128)")
    parser.add_argument("--image-size", type=int, default=224, help="input size (default 224)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per shape (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first (default 1)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda was given but CUDA is not available")
    with tf32_disabled():
        print(run(device, args.batch, args.image_size, args.repeats, args.warmup))


if __name__ == "__main__":
    main()
