"""Evaluate a saved run: rebuild its data split and model from a checkpoint, then test.

Example:
    >>> callable(evaluate_checkpoint)
    True
"""

from __future__ import annotations

from pathlib import Path

from finetune_kit.checkpoint import find_checkpoint, load_checkpoint
from finetune_kit.config import RunConfig
from finetune_kit.exporting import load_model
from finetune_kit.runner import build_datasets
from finetune_kit.trainer import Trainer

__all__ = ["evaluate_checkpoint"]


def evaluate_checkpoint(source: str | Path, *, device: str = "auto", print_report: bool = True):
    """Test the weights of a checkpoint on the test set of the run that wrote it.

    The dataset is rebuilt from the checkpoint's config (with the run's saved split) and the
    model from its stored architecture (its EMA weights when the run kept an EMA, as the
    Trainer evaluates); no pretrained weights are downloaded.

    Args:
        source: a ``.ckpt`` file or a run directory.
        device: where to evaluate.
        print_report: print the report.

    Returns:
        The :class:`~finetune_kit.report.ClassificationReport`.

    Raises:
        CheckpointError: missing, corrupted or unsafe checkpoint, or weights that do not fit.

    Example:
        >>> import tempfile
        >>> import finetune_kit as fk
        >>> cfg = fk.RunConfig.from_dict({"data": {"dataset": "fake", "options": {
        ...     "train_size": 24, "test_size": 8, "in_channels": 1, "image_size": 16}},
        ...     "model": {"name": "lenet", "options": {"input_size": 16}},
        ...     "train": {"epochs": 1, "progress": False, "output_dir": tempfile.mkdtemp() + "/r"}})
        >>> trainer = fk.build_trainer(cfg)
        >>> _ = trainer.fit()
        >>> report = evaluate_checkpoint(trainer.run_dir.root, device="cpu", print_report=False)
        >>> sum(map(sum, report.confusion))
        8
    """
    path = find_checkpoint(source)
    state = load_checkpoint(path)
    config = RunConfig.from_dict(state["config"], source=str(path))
    split = path.parent / "split.json"
    bundle = build_datasets(config, split_file=split if split.is_file() else None)
    loaded = load_model(path)  # rebuilds the architecture (LoRA included), EMA weights if any
    trainer = Trainer(loaded.model, bundle, config=config, device=device, progress=False)
    return trainer.test(save=False, print_report=print_report)
