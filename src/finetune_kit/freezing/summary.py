"""The trainable summary: what trains, stage by stage, printed at the start of a run.

:meth:`FreezePlan.summary <finetune_kit.freezing.FreezePlan.summary>` builds a
:class:`TrainableSummary` with one :class:`StageRow` per stage; the Trainer prints its table at
the start of a run and writes it into the run directory as ``trainable.txt``.

Example:
    >>> rows = (StageRow("body", 100, 0, "eval", ()), StageRow("head", 10, 10, "-", (1.0,)))
    >>> print(TrainableSummary("linear_probe()", "eval", rows).table())
    strategy: linear_probe()   BatchNorm policy of frozen layers: eval
    stage  params  trainable  BatchNorm  lr mult
    body      100          0  eval       -
    head       10         10  -          1
    total     110         10
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["StageRow", "TrainableSummary"]


@dataclass(frozen=True)
class StageRow:
    """One row of the trainable summary.

    Attributes:
        stage: stage name.
        params: number of scalar parameters.
        trainable: how many of them train.
        batchnorm: what its BatchNorm layers do: ``"eval"`` (kept in eval mode, statistics
            fixed), ``"train"`` (frozen, statistics update), ``"follows model"`` (trainable) or
            ``"-"`` (none); several values are joined with ``", "``.
        lr_mult: the distinct learning-rate multipliers of its trainable parameters.

    Example:
        >>> StageRow("head", 10, 10, "-", (1.0,)).lr_text
        '1'
    """

    stage: str
    params: int
    trainable: int
    batchnorm: str
    lr_mult: tuple[float, ...]

    @property
    def lr_text(self) -> str:
        """The multipliers as text: ``"-"`` (frozen), ``"0.5"`` or ``"0.25-1"``."""
        if not self.lr_mult:
            return "-"
        low, high = min(self.lr_mult), max(self.lr_mult)
        return f"{low:g}" if low == high else f"{low:g}-{high:g}"


@dataclass(frozen=True)
class TrainableSummary:
    """What trains, stage by stage: printed at the start of a run and saved with it.

    Attributes:
        strategy: the strategy with its options, e.g. ``"freeze_first(n=2)"``.
        bn_policy: the BatchNorm policy of frozen layers.
        rows: one :class:`StageRow` per stage, input side first.

    Example:
        >>> s = TrainableSummary("full()", "eval", (StageRow("head", 10, 10, "-", (1.0,)),))
        >>> s.trainable_params, s.to_dict()["stages"][0]["lr_mult"]
        (10, [1.0])
    """

    strategy: str
    bn_policy: str
    rows: tuple[StageRow, ...] = field(default_factory=tuple)

    @property
    def total_params(self) -> int:
        """All scalar parameters of the model."""
        return sum(r.params for r in self.rows)

    @property
    def trainable_params(self) -> int:
        """The scalar parameters that train."""
        return sum(r.trainable for r in self.rows)

    def table(self) -> str:
        """The summary as a fixed-width text table with a total row."""
        header = ("stage", "params", "trainable", "BatchNorm", "lr mult")
        body = [(r.stage, f"{r.params:,}", f"{r.trainable:,}", r.batchnorm, r.lr_text) for r in self.rows]
        total = ("total", f"{self.total_params:,}", f"{self.trainable_params:,}", "", "")
        lines = [header, *body, total]
        widths = [max(len(line[i]) for line in lines) for i in range(5)]

        def fmt(line: Sequence[str]) -> str:
            cells = [
                line[0].ljust(widths[0]),
                line[1].rjust(widths[1]),
                line[2].rjust(widths[2]),
                line[3].ljust(widths[3]),
                line[4],
            ]
            return "  ".join(cells).rstrip()

        title = f"strategy: {self.strategy}   BatchNorm policy of frozen layers: {self.bn_policy}"
        return "\n".join([title, *(fmt(line) for line in lines)])

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON: strategy, bn_policy, totals and one dict per stage."""
        return {
            "strategy": self.strategy,
            "bn_policy": self.bn_policy,
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "stages": [
                {
                    "stage": r.stage,
                    "params": r.params,
                    "trainable": r.trainable,
                    "batchnorm": r.batchnorm,
                    "lr_mult": list(r.lr_mult),
                }
                for r in self.rows
            ],
        }

    def save(self, directory: str | Path) -> list[Path]:
        """Write ``trainable.txt`` (the table) and ``trainable.json`` into ``directory``."""
        directory = Path(directory)
        text, js = directory / "trainable.txt", directory / "trainable.json"
        text.write_text(self.table() + "\n", encoding="utf-8")
        js.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return [text, js]

    def __str__(self) -> str:
        return self.table()
