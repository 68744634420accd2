"""im2col, col2im and the vectorised conv2d against PyTorch (F.unfold, F.fold, F.conv2d)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import example, given, settings

from finetune_kit.errors import ShapeError
from finetune_kit.scratch import col2im, conv2d, conv2d_naive, im2col, tf32_disabled

from .helpers import REL_TOL, ConvCase, assert_rel_close, conv_cases

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same'")


def test_im2col_hand_example():
    # Each column is one 2x2 window of x = [[1,2,3],[4,5,6],[7,8,9]], read row by row:
    # windows at (0,0) (0,1) (1,0) (1,1) = [1,2,4,5] [2,3,5,6] [4,5,7,8] [5,6,8,9].
    x = torch.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    expected = torch.tensor(
        [[1.0, 2.0, 4.0, 5.0], [2.0, 3.0, 5.0, 6.0], [4.0, 5.0, 7.0, 8.0], [5.0, 6.0, 8.0, 9.0]]
    )
    assert torch.equal(im2col(x, 2), expected)


@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "dilation"),
    [(3, 1, 1, 1), ((2, 3), (2, 1), (1, 0), (1, 2)), (1, 3, 0, 1), (3, 2, 2, 2)],
)
def test_im2col_and_col2im_match_unfold_and_fold(kernel, stride, padding, dilation):
    x = torch.randn(2, 3, 7, 8, dtype=torch.float64)
    args = {"stride": stride, "padding": padding, "dilation": dilation}
    cols = im2col(x, kernel, **args)
    # F.unfold lays out (N, C*kh*kw, L); ours is (C*kh*kw, N*L): columns grouped by image.
    unfolded = F.unfold(x, kernel, **args)
    assert torch.equal(cols, unfolded.transpose(0, 1).reshape(cols.shape))
    grads = torch.randn_like(cols)
    folded = F.fold(grads.view(cols.shape[0], 2, -1).transpose(0, 1), (7, 8), kernel, **args)
    assert_rel_close(col2im(grads, x.shape, kernel, **args), folded, 1e-12, "col2im")


def test_col2im_rejects_wrong_shape():
    with pytest.raises(ShapeError, match=r"cols must have shape \(9, 18\)"):
        col2im(torch.zeros(9, 10), (2, 1, 5, 5), 3)


@settings(max_examples=60, deadline=None)
@given(case=conv_cases())
@example(case=ConvCase(1, 2, 4, (6, 5), (1, 1), 3, 0, 1, 2, True))  # 1x1, stride > kernel
@example(case=ConvCase(2, 3, 3, (5, 7), (3, 3), 1, 1, 1, 3, False))  # depthwise
def test_im2col_conv_matches_pytorch_and_naive_float64(case):
    x, w, b = case.tensors()
    ref = F.conv2d(x, w, b, **case.args)
    scale = _magnitude(case, x, w, b)
    out = conv2d(x, w, b, **case.args)
    assert out.is_contiguous()
    assert_rel_close(out, ref, REL_TOL[torch.float64], "im2col vs PyTorch", scale)
    naive = conv2d_naive(x, w, b, **case.args)
    assert_rel_close(naive, ref, REL_TOL[torch.float64], "naive vs PyTorch", scale)


@settings(max_examples=40, deadline=None)
@given(case=conv_cases())
def test_im2col_conv_float32_within_1e5_with_tf32_off(case):
    x, w, b = case.tensors()
    ref = F.conv2d(x, w, b, **case.args)
    scale = _magnitude(case, x, w, b)
    low = [t.float() if t is not None else None for t in (x, w, b)]
    with tf32_disabled():
        out = conv2d(*low, **case.args)
        torch_out = F.conv2d(*low, **case.args)
    assert out.dtype == torch.float32
    assert_rel_close(out, ref, REL_TOL[torch.float32], "im2col float32", scale)
    assert_rel_close(torch_out, ref, REL_TOL[torch.float32], "PyTorch float32", scale)


def _magnitude(case, x, w, b):
    # The sum of |terms| of every output: the scale that bounds rounding errors.
    return F.conv2d(x.abs(), w.abs(), b.abs() if b is not None else None, **case.args)
