"""The padding arithmetic of a window sliding over one axis, as XLA applies it: what the
implementations pad by hand to compute XLA's function, and what model/shapes.py checks a
config's layer sizes with, so that both read one rule."""
from __future__ import annotations

from typing import Union

Padding = Union[str, int]  # 'SAME', 'VALID' or zeros on each side


def output_size(size: int, window: int, stride: int, padding: Padding) -> int:
  """Spatial output size of a convolution or pooling window sliding over `size` inputs.

  SAME pads so that the output is ceil(size / stride) (XLA's and TensorFlow's rule);
  VALID uses no padding: floor((size - window) / stride) + 1; an integer p pads p zeros on
  each side: floor((size + 2p - window) / stride) + 1. A result below 1 means the window
  does not fit.
  """
  if padding == 'SAME':
    return -(-size // stride)
  pad = 0 if padding == 'VALID' else int(padding)
  if size + 2 * pad < window:
    return 0
  return (size + 2 * pad - window) // stride + 1


def same_padding(size: int, window: int, stride: int) -> tuple[int, int]:
  """The zeros SAME adds (before, after) along one axis: XLA's and TensorFlow's rule, the
  odd one after. What another framework needs to reproduce a SAME layer exactly."""
  total = max((output_size(size, window, stride, 'SAME') - 1) * stride + window - size, 0)
  return total // 2, total - total // 2


def explicit_pads(size: int, window: int, stride: int, padding: Padding) -> tuple[int, int]:
  """The padding (before, after) of one axis that XLA applies for `padding`."""
  if padding == 'SAME':
    return same_padding(size, window, stride)
  if padding == 'VALID':
    return 0, 0
  return int(padding), int(padding)
