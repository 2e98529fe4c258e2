"""Convolution and pooling, each written several exact ways, because on CPU the formulation
decides the speed (../shared/ENGINEERING.md: XLA's CPU convolution of a 1-channel 5x5 layer is
several times slower than the same arithmetic written as shifted slices).

Every implementation computes the same function as XLA's own (lax.conv_general_dilated,
lax.reduce_window) to float tolerance, forward and gradients; tests/test_layers.py checks it
over a grid of kernels, strides, paddings, channels and odd image sizes. Which one a model
runs is chosen per layer shape and backend by measurement (resolution.py).

Convolutions (NHWC input, HWIO kernel):
  xla      lax.conv_general_dilated, what flax's nn.Conv runs
  im2col   the k*k window slices concatenated on channels, then one matmul
  shifted  the sum over the k*k window offsets of slice @ kernel[offset]: no patch tensor,
           cheapest where there are few input channels
Pooling:
  xla      lax.reduce_window (flax's nn.max_pool / avg_pool)
  reshape  windows that tile the image (window == stride) reshaped to their own axes and
           reduced: no reduce_window, and none of the index-tracking reduce_window that JAX's
           max-pool gradient becomes (2.2 ms of a 16 ms T2 step on CPU)
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from cnn_jax.errors import ConfigError
from cnn_jax.layer_impls.padding import explicit_pads


def _pad(x: jax.Array, window: int, stride: int, padding, value: float) -> jax.Array:
  pads = [explicit_pads(x.shape[axis], window, stride, padding) for axis in (1, 2)]
  if not any(sum(p) for p in pads):
    return x
  return jnp.pad(x, ((0, 0), *pads, (0, 0)), constant_values=value)


def _window_slices(x: jax.Array, window: int, stride: int) -> list[jax.Array]:
  """The window*window strided slices of an already padded x, row-major over offsets: slice
  (dy, dx) holds every window's element at that offset, shape (N, H', W', C)."""
  out_h = (x.shape[1] - window) // stride + 1
  out_w = (x.shape[2] - window) // stride + 1
  return [x[:, dy:dy + (out_h - 1) * stride + 1:stride, dx:dx + (out_w - 1) * stride + 1:stride]
          for dy in range(window) for dx in range(window)]


def conv_xla(x, kernel, stride: int, padding):
  pad = padding if isinstance(padding, str) else ((padding, padding),) * 2
  return jax.lax.conv_general_dilated(x, kernel, (stride, stride), pad,
                                      dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def conv_im2col(x, kernel, stride: int, padding):
  k, _, in_features, features = kernel.shape
  slices = _window_slices(_pad(x, k, stride, padding, 0.0), k, stride)
  patches = jnp.concatenate(slices, axis=-1)  # channel order (dy, dx, c), as HWIO flattens
  return patches @ kernel.reshape(k * k * in_features, features)


def conv_shifted(x, kernel, stride: int, padding):
  k = kernel.shape[0]
  slices = _window_slices(_pad(x, k, stride, padding, 0.0), k, stride)
  # XLA on CPU fuses this sum into each consumer of the result (the activation, the pooling's
  # gradient, the activation's gradient mask) and so computes it about three times per train
  # step; neither a reduction over stacked products (rewritten into adds) nor an
  # optimization_barrier (stripped before fusion) stops it. It still wins where it is chosen.
  out = slices[0] @ kernel[0, 0]
  for i, part in enumerate(slices[1:], start=1):
    out = out + part @ kernel[i // k, i % k]
  return out


CONV_IMPLS: dict[str, Callable] = {'xla': conv_xla, 'im2col': conv_im2col,
                                   'shifted': conv_shifted}


@dataclasses.dataclass(frozen=True)
class ConvImpl:
  """Which implementation computes a convolution's forward pass, its input gradient and its
  kernel gradient. The three are chosen apart because the fastest differs: on CPU, XLA's
  forward of a 1-channel 5x5 convolution is several times slower than shifted slices, while
  its kernel gradient is the fastest there is (benchmarks/layers.py)."""
  forward: str = 'xla'
  input_grad: str = 'xla'
  kernel_grad: str = 'xla'

  @classmethod
  def everywhere(cls, name: str) -> 'ConvImpl':
    return cls(name, name, name)

  def __str__(self) -> str:
    parts = {self.forward, self.input_grad, self.kernel_grad}
    if len(parts) == 1:
      return self.forward
    return f'{self.forward}/{self.input_grad}/{self.kernel_grad}'

  @classmethod
  def parse(cls, text: str, field: str = 'convolution implementation') -> 'ConvImpl':
    """The inverse of str(): 'shifted', or 'shifted/xla/im2col' (forward/input gradient/kernel
    gradient), as results.json records it; `field` names the value in the error."""
    names = text.split('/') if isinstance(text, str) else []
    if len(names) not in (1, 3) or not all(name in CONV_IMPLS for name in names):
      raise ConfigError(f'{field}={text!r} is not known; allowed: one of '
                        f'{", ".join(CONV_IMPLS)}, or three of them as '
                        'forward/input_grad/kernel_grad')
    return cls.everywhere(names[0]) if len(names) == 1 else cls(*names)


def conv(x, kernel, stride: int, padding, impl: ConvImpl = ConvImpl()):
  """The convolution, its forward pass and each gradient computed by `impl`'s choices."""
  if len({impl.forward, impl.input_grad, impl.kernel_grad}) == 1:
    return CONV_IMPLS[impl.forward](x, kernel, stride, padding)
  return _mixed_conv(x, kernel, stride, padding, impl)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _mixed_conv(x, kernel, stride, padding, impl):
  return CONV_IMPLS[impl.forward](x, kernel, stride, padding)


def _mixed_conv_forward(x, kernel, stride, padding, impl):
  return _mixed_conv(x, kernel, stride, padding, impl), (x, kernel)


def _mixed_conv_backward(stride, padding, impl, residuals, g):
  # Each gradient through its own implementation's VJP. A gradient nobody uses (the input
  # gradient of the first layer, whose input is data) is dead code that XLA drops.
  x, kernel = residuals
  _, input_vjp = jax.vjp(lambda x: CONV_IMPLS[impl.input_grad](x, kernel, stride, padding), x)
  _, kernel_vjp = jax.vjp(lambda k: CONV_IMPLS[impl.kernel_grad](x, k, stride, padding), kernel)
  return input_vjp(g)[0], kernel_vjp(g)[0]


_mixed_conv.defvjp(_mixed_conv_forward, _mixed_conv_backward)


def pool_xla(x, kind: str, window: int, stride: int, padding):
  pad = padding if isinstance(padding, str) else ((padding, padding),) * 2
  if kind == 'max':
    return nn.max_pool(x, (window, window), strides=(stride, stride), padding=pad)
  # Padded positions are left out of the average, as in TensorFlow/Keras and CNTK.
  return nn.avg_pool(x, (window, window), strides=(stride, stride), padding=pad,
                     count_include_pad=False)


def _valid_counts(size_h: int, size_w: int, window: int, stride: int, padding) -> np.ndarray:
  """How many real (unpadded) inputs each output window covers: the divisor of an average
  that leaves padding out. A constant of the layer's shape, computed once at trace time."""
  def axis_counts(size):
    lo, hi = explicit_pads(size, window, stride, padding)
    real = np.pad(np.ones(size), (lo, hi))
    out = (len(real) - window) // stride + 1
    return np.array([real[i * stride:i * stride + window].sum() for i in range(out)])
  return np.outer(axis_counts(size_h), axis_counts(size_w))[None, :, :, None]


def _pool_by(reduce_windows, x, kind: str, window: int, stride: int, padding):
  """Pads as XLA does (-inf for max, zeros for avg), reduces with `reduce_windows`, and for
  avg divides by the number of real inputs in each window."""
  padded = _pad(x, window, stride, padding, -jnp.inf if kind == 'max' else 0.0)
  out = reduce_windows(padded, kind)
  if kind == 'max':
    return out
  counts = _valid_counts(x.shape[1], x.shape[2], window, stride, padding)
  return out / jnp.asarray(counts, x.dtype)


def pool_reshape(x, kind: str, window: int, stride: int, padding):
  if window != stride:
    raise ValueError(f'reshape pooling needs window == stride, got {window} and {stride}')

  def reduce_windows(padded, kind):
    n, h, w, c = padded.shape
    out_h, out_w = h // window, w // window
    tiles = padded[:, :out_h * window, :out_w * window].reshape(
        n, out_h, window, out_w, window, c)
    return tiles.max(axis=(2, 4)) if kind == 'max' else tiles.sum(axis=(2, 4))
  return _pool_by(reduce_windows, x, kind, window, stride, padding)


# A third candidate, the max or sum of the k*k strided slices, was as fast as these alone but
# three times slower inside a train step (XLA fuses the slice chain into every consumer and
# recomputes it), so it is not offered.
POOL_IMPLS: dict[str, Callable] = {'xla': pool_xla, 'reshape': pool_reshape}


def pool_impls_for(window: int, stride: int) -> tuple[str, ...]:
  """The pooling implementations that compute this window exactly."""
  return tuple(name for name in POOL_IMPLS if name != 'reshape' or window == stride)
