"""Run by tests/tuning/test_distributed.py under torchrun: a study whose second trial is pruned.

Usage: ``torchrun --nproc_per_node=2 tests/tuning/ddp_study.py CONFIG STUDY_DIR``
"""

from __future__ import annotations

import sys

import finetune_kit as fk
from finetune_kit.tuning import load_tune_config, require_optuna


def main(config: str, study_dir: str) -> None:
    optuna = require_optuna()

    class PruneAfterTheFirstTrial(optuna.pruners.BasePruner):
        def prune(self, study, trial):
            return trial.number > 0

    base, space = load_tune_config(config)
    fk.tune(base, space, n_trials=2, pruner=PruneAfterTheFirstTrial(), output_dir=study_dir, final=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
