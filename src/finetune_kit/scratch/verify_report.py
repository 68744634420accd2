"""What :func:`~finetune_kit.scratch.verify_conv` reports, and how the comparison is made fair.

:class:`VerifyReport` holds one :class:`VerifyRow` per checked tensor and prints them as a
table; :func:`tf32_disabled` switches off the reduced-precision float32 modes (TF32) that would
make any float32 comparison against a float64 reference fail on a GPU.

Example:
    >>> row = VerifyRow("N1 C1->1 3x3 k2 s1 p0 d1 g1", "output", 1e-7, 2e-8, 3e-8, 1e-5)
    >>> row.passed, VerifyReport((row,), "cpu", torch.float32).passed
    (True, True)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

__all__ = ["TORCH_FACTOR", "VerifyReport", "VerifyRow", "tf32_disabled"]

TORCH_FACTOR = 10.0
"""How many times PyTorch's own error (against float64) a scratch result may be off and pass."""


@dataclass(frozen=True)
class VerifyRow:
    """The errors of one tensor (an output or a gradient) of one checked case.

    Attributes:
        case: the configuration's label or the model's name.
        quantity: ``"output"``, ``"grad_x"``, ``"grad_weight"``, ``"grad_bias"``, ...
        max_abs: ``max|scratch - reference|``.
        max_rel: ``max_abs`` divided by the tensor's scale: ``max`` of the same computation on
            absolute values for a layer, ``max|reference|`` for a model.
        torch_rel: the same relative error for PyTorch's own layer at the tested dtype.
        tolerance: the largest ``max_rel`` that passes on its own; a larger one passes when
            it is within :data:`TORCH_FACTOR` times PyTorch's own error (``torch_rel``): deep
            models in train mode amplify rounding so much that PyTorch's float32 result is
            itself far from the float64 reference, and the check asks to be as good as it.
        detail: a remark printed after the result (e.g. the worst parameter).
    """

    case: str
    quantity: str
    max_abs: float
    max_rel: float
    torch_rel: float
    tolerance: float
    detail: str = ""

    @property
    def passed(self) -> bool:
        """Whether ``max_rel <= max(tolerance, TORCH_FACTOR * torch_rel)`` (a NaN fails)."""
        return self.max_rel <= max(self.tolerance, TORCH_FACTOR * self.torch_rel)


@dataclass(frozen=True)
class VerifyReport:
    """The result of :func:`verify_conv`: one :class:`VerifyRow` per checked tensor."""

    rows: tuple[VerifyRow, ...]
    device: str
    dtype: torch.dtype
    notes: tuple[str, ...] = field(default=())

    @property
    def passed(self) -> bool:
        """Whether every row passed."""
        return all(row.passed for row in self.rows)

    def table(self) -> str:
        """The report as aligned text, one line per row, with a summary line at the end."""
        dtype = str(self.dtype).removeprefix("torch.")
        lines = [
            f"verify-conv: scratch (im2col + hand-written backward) and PyTorch, both {dtype}, "
            f"against PyTorch float64 on {self.device}; TF32 off",
            "rel = max|x - ref| / max(ref computed on |inputs|) for a layer, / max|ref| for a "
            "model; a row passes when the scratch rel <= tol",
            *self.notes,
            "",
            f"{'case':<38} {'quantity':<22} {'max abs':>9} {'rel':>9} {'torch rel':>9} {'tol':>7}  result",
        ]
        previous = None
        for row in self.rows:
            case = row.case if row.case != previous else ""
            previous = row.case
            lines.append(
                f"{case:<38} {row.quantity:<22} {row.max_abs:9.2e} {row.max_rel:9.2e} "
                f"{row.torch_rel:9.2e} {row.tolerance:7.0e}  {'pass' if row.passed else 'FAIL'}"
                f"{'  ' + row.detail if row.detail else ''}"
            )
        n_pass = sum(row.passed for row in self.rows)
        lines += [
            "",
            f"{n_pass} of {len(self.rows)} checks passed: {'PASS' if self.passed else 'FAIL'}",
        ]
        return "\n".join(lines)


@contextmanager
def tf32_disabled() -> Iterator[None]:
    """Switch TF32 (and any reduced-precision float32 matmul) off; restore the settings after.

    Sets ``torch.backends.cuda.matmul.allow_tf32``, ``torch.backends.cudnn.allow_tf32`` to
    ``False`` and the float32 matmul precision to ``"highest"``.

    Example:
        >>> with tf32_disabled():
        ...     torch.backends.cudnn.allow_tf32
        False
    """
    saved = (
        torch.get_float32_matmul_precision(),
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
    )
    torch.set_float32_matmul_precision("highest")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(saved[0])
        torch.backends.cuda.matmul.allow_tf32 = saved[1]
        torch.backends.cudnn.allow_tf32 = saved[2]
