"""Convolution and pooling arithmetic, and the layer-by-layer shapes of a model config.

The same formulas decide whether a config can work at all (a layer whose output would be
empty is rejected before any training) and are checked against the real Flax layers in the
tests, so the numbers a researcher reads here are the ones the model runs with.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

from cnn_jax.errors import ConfigError
# The padding arithmetic is the implementations' (layer_impls/padding.py); read here as well.
from cnn_jax.layer_impls.padding import output_size
from cnn_jax.layer_impls.padding import Padding
from cnn_jax.model import layer_list

PADDING_ALLOWED = '"SAME", "VALID" or an integer >= 0'  # what parse_padding reads, in words


def parse_padding(padding: Padding, field: str) -> Padding:
  """Returns 'SAME', 'VALID' or a non-negative int; raises ConfigError naming `field`."""
  if isinstance(padding, bool):  # bool is an int subclass; True is surely a mistake
    raise ConfigError(f'{field}={padding!r}: allowed values are {PADDING_ALLOWED}')
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
      f'{field}={padding!r}: allowed values are {PADDING_ALLOWED}')


@dataclasses.dataclass(frozen=True)
class LayerShape:
  name: str    # the Flax module / summary name, e.g. 'conv0', 'pool1', 'dense0'
  kind: str    # layer_list.Layer.kind: 'conv', 'batch_norm', 'max_pool', 'dropout', ...
  output_shape: tuple  # without the batch axis
  input_shape: tuple = ()
  layer: layer_list.Layer | None = None


def infer_layer_shapes(model_cfg, input_shape: Sequence[int] = (28, 28, 1)) -> list[LayerShape]:
  """Walks the layers of a (name-validated) model config (layer_list.layers) and returns
  each one's input and output shape.

  Raises ConfigError naming the layer, its input size and its window/stride/padding when a
  layer would produce an empty output.
  """
  return layer_shapes(layer_list.layers(model_cfg), input_shape)


def layer_shapes(model_layers: Sequence[layer_list.Layer],
                 input_shape: Sequence[int]) -> list[LayerShape]:
  """infer_layer_shapes for a list of layers (a built model's `layers`)."""
  shape = tuple(input_shape)
  found: list[LayerShape] = []
  for layer in model_layers:
    if layer.kind == 'conv' or layer.kind.endswith('_pool') and not layer.kind.startswith('global'):
      what = 'conv' if layer.kind == 'conv' else layer.kind.replace('_', ' ')
      padding = parse_padding(layer.padding, f'model.{"conv" if layer.kind == "conv" else "pool"}'
                              f'_padding[{layer.index}]')
      height, width = shape[0], shape[1]
      out_h = output_size(height, layer.window, layer.stride, padding)
      out_w = output_size(width, layer.window, layer.stride, padding)
      if out_h < 1 or out_w < 1:
        raise ConfigError(
            f'model: layer {layer.name} ({what} window {layer.window}, stride {layer.stride}, '
            f'padding {padding}) gets a {height}x{width} input and would output nothing '
            f'({max(out_h, 0)}x{max(out_w, 0)}); use a smaller window or stride, '
            f'"SAME" padding, or fewer down-sampling layers before it')
      out = (out_h, out_w, layer.features if layer.kind == 'conv' else shape[-1])
    elif layer.kind.startswith('global'):
      out = (shape[-1],)
    elif layer.kind == 'flatten':
      out = (math.prod(shape),)
    elif layer.kind == 'dense':
      out = (layer.features,)
    else:  # batch norm and dropout keep the shape
      out = shape
    found.append(LayerShape(layer.name, layer.kind, out, shape, layer))
    shape = out
  return found


def count_params(model_cfg, input_shape: Sequence[int] = (28, 28, 1)) -> int:
  """The number of trainable parameters (param_counts)."""
  return param_counts(model_cfg, input_shape)[0]


def param_counts(model_cfg, input_shape: Sequence[int] = (28, 28, 1)) -> tuple[int, int]:
  """(trainable, non-trainable) parameter counts from the shapes alone (no arrays): what
  validation needs to tell a model that cannot fit in memory before building it. Batch
  normalization's scale and offset train; its running mean and variance do not (Keras counts
  them so). Tests check both against the real variables of every tutorial model."""
  trainable = frozen = 0
  for layer in infer_layer_shapes(model_cfg, input_shape):
    channels, out = layer.input_shape[-1], layer.output_shape[-1]
    if layer.kind == 'conv':
      trainable += layer.layer.window ** 2 * channels * out + out
    elif layer.kind == 'dense':
      trainable += channels * out + out
    elif layer.kind == 'batch_norm':
      trainable, frozen = trainable + 2 * out, frozen + 2 * out
  return trainable, frozen
