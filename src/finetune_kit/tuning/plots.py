"""The study's figures, drawn by ``optuna.visualization.matplotlib`` into ``STUDY_DIR/plots/``.

* ``optimization_history.png``: each trial's value and the best so far;
* ``param_importances.png``: how much each searched key explains the value (PED-ANOVA);
* ``parallel_coordinate.png``: every complete trial as a line through its values.

A figure is drawn only when there are enough complete trials for it (one for the history, two
for the others); :func:`write_plots` returns what it drew and why it left the rest out.

Example:
    >>> PLOTS[0]
    'optimization_history'
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from finetune_kit.storage import atomic_write_bytes
from finetune_kit.tuning.extra import require_optuna

__all__ = ["PLOTS", "write_plots"]

PLOTS = ("optimization_history", "param_importances", "parallel_coordinate")
_NEEDS = {"optimization_history": 1, "param_importances": 2, "parallel_coordinate": 2}


def write_plots(study: Any, folder: Path) -> tuple[list[Path], list[str]]:
    """Draw the figures of ``study`` as PNG files in ``folder``.

    Args:
        study: the ``optuna.Study``.
        folder: where the files go (created).

    Returns:
        The files written, and one reason per figure left out (too few complete trials,
        matplotlib not installed).
    """
    optuna = require_optuna()
    try:
        import matplotlib.pyplot as plt
        from optuna.visualization import matplotlib as figures
    except ImportError:
        return [], ['plots need matplotlib: pip install "finetune-kit[plots]"']
    complete = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    written, skipped = [], []
    folder.mkdir(parents=True, exist_ok=True)
    for name in PLOTS:
        if complete < _NEEDS[name]:
            skipped.append(f"{name} needs {_NEEDS[name]} complete trial(s), the study has {complete}")
            continue
        with warnings.catch_warnings():  # experimental-API and small-sample notes, not errors
            warnings.simplefilter("ignore")
            axes = getattr(figures, f"plot_{name}")(study)
        figure = axes.figure
        figure.set_size_inches(8, 5)
        figure.tight_layout()
        path = folder / f"{name}.png"
        # Atomic, with a temp file of its own: workers sharing the directory draw at once.
        atomic_write_bytes(path, lambda handle, figure=figure: figure.savefig(handle, format="png", dpi=100))
        plt.close(figure)
        written.append(path)
    return written, skipped
