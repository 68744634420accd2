"""The best trial's configuration: ``best.toml``, and retraining it on its own (``--final``).

``best.toml`` is the study's base config with the best trial's values, ready for
``finetune-kit train --config STUDY_DIR/best.toml``; its run directory is
``STUDY_DIR/final-trial-NNNN``. The final run trains exactly that config and reports on the
test set, which no trial ever looked at. It is resumable like the trials: run again, a final
run that was stopped continues from its ``last.ckpt``, and one that finished is reported as it is.

Example:
    >>> from pathlib import Path
    >>> final_dir(Path("runs/study"), 7).name
    'final-trial-0007'
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import tomli_w

from finetune_kit.config import RunConfig
from finetune_kit.metrics import ClassificationReport
from finetune_kit.storage import atomic_write_text
from finetune_kit.training import build_trainer
from finetune_kit.tuning.space import SearchSpace

__all__ = ["best_config", "final_dir", "retrain", "write_best_toml"]


def final_dir(study_dir: Path, number: int) -> Path:
    """The run directory of the final run of the best trial ``number``."""
    return study_dir / f"final-trial-{number:04d}"


def best_config(base: RunConfig, space: SearchSpace, trial: Any, study_dir: Path) -> RunConfig:
    """``base`` with the values of ``trial`` (a complete ``FrozenTrial``), run in its final dir."""
    config = space.apply(base, trial.params, source=f"trial {trial.number}")
    train = dataclasses.replace(config.train, output_dir=str(final_dir(study_dir, trial.number)))
    return dataclasses.replace(config, train=train)


def write_best_toml(config: RunConfig, path: Path, *, study: str, trial: Any, metric: str) -> None:
    """Write ``config`` as TOML with a header naming the trial and its value (atomically)."""
    header = (
        f"# Best trial {trial.number} of study '{study}': {metric} = {trial.value:.6g}\n"
        f"# Values: {', '.join(f'{k} = {v!r}' for k, v in trial.params.items())}\n"
        f"# Train it: finetune-kit train --config {path}\n\n"
    )
    atomic_write_text(path, header + tomli_w.dumps(config.to_dict()))


def retrain(config: RunConfig) -> ClassificationReport | dict[str, Any]:
    """Train ``config`` in its run directory and test it (see the module docstring).

    Returns:
        The test report; a dict read from ``report.json`` when the final run had finished
        before.

    Raises:
        FinetuneKitError: as :meth:`~finetune_kit.Trainer.fit` (e.g. an interrupted retrain
            raises nothing but returns after saving; run again to continue it).
    """
    run_dir = Path(config.train.output_dir)
    report_file = run_dir / "report.json"
    if report_file.is_file():
        print(f"Final run already done: {run_dir}")
        return json.loads(report_file.read_text(encoding="utf-8"))
    resume = run_dir if (run_dir / "last.ckpt").is_file() else None
    trainer = build_trainer(config, resume=resume)
    history = trainer.fit(resume=resume)
    if history.interrupted:
        raise KeyboardInterrupt
    return trainer.test()
