"""The learning-rate range test with a run's own parts: ``Trainer.lr_find`` and ``optim.lr = "find"``.

The test (:func:`finetune_kit.lr_find`) runs on the run's training loader, with its loss, its
freezing strategy applied, and an optimizer built exactly as the run builds it (the same
parameter groups, weight decay and discriminative lr multipliers), so the suggested lr is the
base lr of *this* run. It is seeded with ``train.seed`` (dropout), so it gives the same
suggestion each time; the model, the optimizer state and the RNG are left as they were.

With ``optim.lr = "find"`` the Trainer runs it before the first step (once, on rank 0's
suggestion under DDP) and trains with the suggestion, which the run's ``config.toml`` records;
``lr_find.json`` and ``plots/lr_find.png`` in the run directory keep the curve.

Example:
    >>> import tempfile, finetune_kit as fk
    >>> data = fk.create_datasets("fake", num_classes=2, in_channels=1, image_size=16,
    ...                           train_size=64, test_size=8)
    >>> model = fk.create_model("lenet", num_classes=2, in_channels=1, input_size=16)
    >>> trainer = fk.Trainer(model, data, batch_size=16, verbosity=0, output_dir=tempfile.mkdtemp())
    >>> result = find_lr(trainer, num_steps=10)
    >>> len(result.lrs), result.suggested is not None
    (10, True)
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from finetune_kit.callbacks import plots_available
from finetune_kit.errors import OutputDirError, TrainingError
from finetune_kit.optim import LRFindResult, lr_find
from finetune_kit.runtime.distributed import all_gather_objects
from finetune_kit.storage.atomic import atomic_write_bytes
from finetune_kit.storage.run_dir import RunDir
from finetune_kit.training import setup

if TYPE_CHECKING:
    from finetune_kit.training.evaluator import Evaluator

__all__ = ["find_lr", "find_lr_for_run", "save_lr_search", "save_run_lr_search"]


def find_lr(
    trainer: Evaluator,
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 100,
    plot_path: str | Path | None = None,
) -> LRFindResult:
    """Run the lr range test with the run's loader, loss, freezing and optimizer groups.

    Args:
        trainer: the Trainer (its model, data and config).
        start_lr: first lr of the test.
        end_lr: last lr of the test.
        num_steps: steps (batches); the loader is cycled when it is shorter.
        plot_path: also write the curve to this PNG (needs matplotlib).

    Returns:
        The :class:`~finetune_kit.optim.LRFindResult`; ``suggested`` is a base lr for
        ``optim.lr`` (each parameter group trains at it times its multiplier).

    Raises:
        ConfigError: a bad argument, or ``plot_path`` without matplotlib.
    """
    cfg = trainer.config
    if trainer.loaders is None:
        trainer._prepare_model_and_loaders()
    plan = getattr(trainer, "plan", None) or setup.resolve_plan(trainer.model, cfg.finetune)
    optimizer = setup.build_optimizer(trainer.model, plan, dataclasses.replace(cfg.optim, lr=start_lr))
    cuda = [trainer.device.index or 0] if trainer.device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):  # seeded (dropout), and the caller's RNG untouched
        torch.manual_seed(cfg.train.seed)
        return lr_find(
            trainer.model,
            trainer.loaders.train,
            loss=setup.build_loss(cfg.optim, None),  # hard labels: the test runs without mixup
            optimizer=optimizer,
            start_lr=start_lr,
            end_lr=end_lr,
            num_steps=num_steps,
            device=trainer.device,
            plot_path=plot_path,
        )


def find_lr_for_run(trainer: Evaluator, saved: dict[str, Any] | None) -> LRFindResult | None:
    """Resolve ``optim.lr = "find"`` before a fit; sets ``trainer.config.optim.lr``.

    A resumed run takes the lr its checkpoint was trained with; a new run runs the test (every
    rank, then all use rank 0's suggestion).

    Args:
        trainer: the Trainer being set up (its freezing plan applied).
        saved: the checkpoint being resumed, or None.

    Returns:
        The test's result (None when nothing was searched).

    Raises:
        TrainingError: the test gave no suggestion (too few steps before the loss diverged).
    """
    optim = trainer.config.optim
    if optim.lr != "find":
        return None
    if saved is not None:
        _set_lr(trainer, float(saved["config"]["optim"]["lr"]))
        return None
    result = find_lr(trainer)
    suggested = all_gather_objects(result.suggested)[0]
    if suggested is None:
        raise TrainingError(
            f"optim.lr = 'find': the lr range test gave no suggestion (the loss diverged after "
            f"{len(result.lrs)} steps). Set optim.lr to a number, or run finetune-kit lr-find "
            "to look at the curve."
        )
    _set_lr(trainer, float(suggested))
    return result


def _set_lr(trainer: Evaluator, lr: float) -> None:
    """A new config with ``optim.lr`` set (the caller's RunConfig object is not changed)."""
    config = trainer.config
    trainer.config = dataclasses.replace(config, optim=dataclasses.replace(config.optim, lr=lr))


def save_lr_search(result: LRFindResult, json_path: Path, png_path: Path | None) -> None:
    """Write the curve and suggestions to ``json_path``, and the plot to ``png_path`` if given.

    Args:
        result: the range test's result.
        json_path: the JSON file (``suggested``, both suggestions, ``lrs``, ``losses`` ...).
        png_path: the PNG of the curve (needs matplotlib), or None.

    Raises:
        OutputDirError: a file cannot be written.
        ConfigError: ``png_path`` given without matplotlib.
    """
    data = {
        "suggested": result.suggested,
        "suggestion_valley": result.suggestion_valley,
        "suggestion_steepest": result.suggestion_steepest,
        "diverged": result.diverged,
        "lrs": result.lrs,
        "losses": result.losses,
        "raw_losses": result.raw_losses,
    }
    text = json.dumps(data, indent=1).encode()
    try:
        atomic_write_bytes(json_path, lambda f: f.write(text))
    except OSError as exc:
        raise OutputDirError(f"Could not write {json_path}: {exc.strerror or exc}.") from None
    if png_path is not None:
        result.plot(png_path)


def save_run_lr_search(result: LRFindResult, run_dir: RunDir, *, plots: bool | None) -> None:
    """``lr_find.json`` in the run directory and, when plots are on, ``plots/lr_find.png``."""
    draw = plots or (plots is None and plots_available())
    save_lr_search(result, run_dir.path("lr_find.json"), run_dir.path("plots/lr_find.png") if draw else None)
