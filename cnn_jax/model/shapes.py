"""Convolution and pooling arithmetic, and the layer-by-layer shapes of a model config.

The same formulas decide whether a config can work at all (a layer whose output would be
empty is rejected before any training) and are checked against the real Flax layers in the
tests, so the numbers a researcher reads here are the ones the model runs with.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence, Union

from cnn_jax.errors import ConfigError

Padding = Union[str, int]


def parse_padding(padding: Padding, field: str) -> Padding:
  """Returns 'SAME', 'VALID' or a non-negative int; raises ConfigError naming `field`."""
  if isinstance(padding, bool):  # bool is an int subclass; True is surely a mistake
    raise ConfigError(f'{field}={padding!r}: allowed values are "SAME", "VALID" or an integer >= 0')
  if isinstance(padding, int):
    if padding < 0:
      raise ConfigError(f'{field}={padding}: explicit zero padding must be >= 0')
    return padding
  if isinstance(padding, str):
    upper = padding.strip().upper()
    if upper in ('SAME', 'VALID'):
      return upper
    if upper.isdigit():
      return int(upper)
  raise ConfigError(
      f'{field}={padding!r}: allowed values are "SAME", "VALID" or an integer >= 0')


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


@dataclasses.dataclass(frozen=True)
class LayerShape:
  name: str    # the Flax module / summary name, e.g. 'conv0', 'pool1', 'dense0'
  kind: str    # 'conv', 'max_pool', 'avg_pool', 'dropout', 'flatten', 'global_avg_pool', ...
  output_shape: tuple  # without the batch axis


def infer_layer_shapes(model_cfg, input_shape: Sequence[int] = (28, 28, 1)) -> list[LayerShape]:
  """Walks the layers of a (name-validated) model config and returns each output shape.

  Raises ConfigError naming the layer, its input size and its window/stride/padding when a
  layer would produce an empty output.
  """
  height, width, channels = input_shape
  layers: list[LayerShape] = []

  def shrink(name, what, size_h, size_w, window, stride, padding):
    out_h = output_size(size_h, window, stride, padding)
    out_w = output_size(size_w, window, stride, padding)
    if out_h < 1 or out_w < 1:
      raise ConfigError(
          f'model: layer {name} ({what} window {window}, stride {stride}, padding {padding}) '
          f'gets a {size_h}x{size_w} input and would output nothing '
          f'({max(out_h, 0)}x{max(out_w, 0)}); use a smaller window or stride, '
          f'"SAME" padding, or fewer down-sampling layers before it')
    return out_h, out_w

  for i, features in enumerate(model_cfg.conv_features):
    name = f'conv{i}'
    height, width = shrink(name, 'conv', height, width, model_cfg.conv_kernel_size[i],
                           model_cfg.conv_strides[i],
                           parse_padding(model_cfg.conv_padding[i], f'model.conv_padding[{i}]'))
    channels = features
    layers.append(LayerShape(name, 'conv', (height, width, channels)))
    pool = model_cfg.pool_type[i]
    if pool != 'none':
      name = f'pool{i}'
      height, width = shrink(name, f'{pool} pool', height, width, model_cfg.pool_window[i],
                             model_cfg.pool_strides[i],
                             parse_padding(model_cfg.pool_padding[i], f'model.pool_padding[{i}]'))
      layers.append(LayerShape(name, f'{pool}_pool', (height, width, channels)))

  if model_cfg.conv_dropout > 0 and model_cfg.conv_features:
    layers.append(LayerShape('conv_dropout', 'dropout', (height, width, channels)))
  if model_cfg.global_pool != 'none':
    layers.append(LayerShape('global_pool', f'global_{model_cfg.global_pool}_pool', (channels,)))
    flat = channels
  else:
    flat = height * width * channels
    layers.append(LayerShape('flatten', 'flatten', (flat,)))
  for i, width_i in enumerate(model_cfg.hidden_dims):
    layers.append(LayerShape(f'dense{i}', 'dense', (width_i,)))
    if model_cfg.dense_dropout > 0:
      layers.append(LayerShape(f'dense_dropout{i}', 'dropout', (width_i,)))
  layers.append(LayerShape('logits', 'dense', (model_cfg.num_classes,)))
  return layers


def count_params(model_cfg, input_shape: Sequence[int] = (28, 28, 1)) -> int:
  """The number of parameters, from the shapes alone (no arrays): what validation needs to
  tell a model that cannot fit in memory before building it. Tests check it against the
  real parameters of every tutorial model."""
  height, width, channels = input_shape
  total = 0
  for layer in infer_layer_shapes(model_cfg, input_shape):
    if layer.kind == 'conv':
      k = model_cfg.conv_kernel_size[int(layer.name[len('conv'):])]
      total += k * k * channels * layer.output_shape[-1] + layer.output_shape[-1]
    elif layer.kind == 'dense':
      total += channels * layer.output_shape[-1] + layer.output_shape[-1]
    channels = layer.output_shape[-1]
  return total
