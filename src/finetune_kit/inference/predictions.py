"""The result of a prediction: :class:`Predictions`, with its top-k lists and text table.

It holds PyTorch tensors when the model ran in PyTorch and numpy arrays when it ran in
onnxruntime; :meth:`Predictions.top` and :meth:`Predictions.table` read both the same way
(with numpy), so both paths print the same table for the same probabilities. This module does
not import PyTorch.

Example:
    >>> import numpy as np
    >>> p = Predictions(np.zeros((1, 3)), np.array([[0.2, 0.5, 0.3]]), np.array([1]),
    ...                 ["a", "b", "c"], ["x.png"], top_k=2)
    >>> print(p.table())
    image  top-1       top-2
    x.png  b (0.5000)  c (0.3000)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from finetune_kit.errors import ConfigError

if TYPE_CHECKING:
    import torch

    Array = torch.Tensor | np.ndarray
else:
    Array = Any

__all__ = ["Predictions"]


@dataclass(frozen=True, eq=False)
class Predictions:
    """Class predictions for ``N`` images (tensors on the CPU, or numpy arrays from ONNX).

    Attributes:
        logits: ``(N, C)`` float32 model outputs.
        probabilities: ``(N, C)`` softmax of the logits; each row sums to 1.
        indices: ``(N,)`` predicted class index (argmax).
        class_names: the ``C`` class names in label order.
        sources: ``N`` labels of the inputs: file paths, ``tensor[i]``, ``array[i]`` or
            ``dataset[i]``.
        targets: ``(N,)`` true labels when the input was a dataset, else None.
        top_k: how many classes :meth:`top` and :meth:`table` show by default.

    Example:
        >>> import torch
        >>> p = Predictions(torch.tensor([[2.0, 0.0]]), torch.tensor([[0.88, 0.12]]),
        ...                 torch.tensor([0]), ["cat", "dog"], ["a.png"])
        >>> p.names, p.top(1)
        (['cat'], [[('cat', 0.8799999952316284)]])
    """

    logits: Array
    probabilities: Array
    indices: Array
    class_names: list[str]
    sources: list[str]
    targets: Array | None = None
    top_k: int = 5

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    @property
    def names(self) -> list[str]:
        """The predicted class name of each image."""
        return [self.class_names[int(i)] for i in self.indices]

    def _k(self, k: int | None) -> int:
        k = self.top_k if k is None else k
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ConfigError(f"top k must be an integer >= 1, got {k!r}.")
        return min(k, len(self.class_names))

    def top(self, k: int | None = None) -> list[list[tuple[str, float]]]:
        """The ``k`` most probable classes of each image as ``(name, probability)``, best first.

        Equal probabilities are listed in class order.

        Args:
            k: how many (default ``top_k``; at most the number of classes).

        Returns:
            One list per image.

        Raises:
            ConfigError: ``k`` < 1.

        Example:
            >>> import numpy as np
            >>> p = Predictions(np.zeros((1, 3)), np.array([[0.2, 0.5, 0.3]]),
            ...                 np.array([1]), ["a", "b", "c"], ["x"])
            >>> [name for name, _ in p.top(2)[0]]
            ['b', 'c']
        """
        k = self._k(k)
        probabilities = np.asarray(self.probabilities)
        order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
        return [
            [(self.class_names[int(i)], float(row[i])) for i in ids]
            for row, ids in zip(probabilities, order, strict=True)
        ]

    def table(self, k: int | None = None) -> str:
        """A text table: one row per image, its ``k`` most probable classes with probabilities.

        Args:
            k: classes per image (default ``top_k``).

        Returns:
            The table (no trailing newline).

        Example:
            >>> import torch
            >>> p = Predictions(torch.zeros(1, 2), torch.tensor([[0.25, 0.75]]),
            ...                 torch.tensor([1]), ["cat", "dog"], ["a.png"])
            >>> print(p.table())
            image  top-1         top-2
            a.png  dog (0.7500)  cat (0.2500)
        """
        top = self.top(k)
        header = ["image"] + [f"top-{i + 1}" for i in range(len(top[0]) if top else 0)]
        rows = [
            [src] + [f"{name} ({p:.4f})" for name, p in classes]
            for src, classes in zip(self.sources, top, strict=True)
        ]
        widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]
        lines = [
            "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
            for r in [header, *rows]
        ]
        return "\n".join(lines)
