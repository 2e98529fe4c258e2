"""The model's layers, in the order they run, read from a `model` config: the one walk over
conv{i}, conv{i}_bn, pool{i}, dropout, flatten or global pooling, dense{i}, dense{i}_bn and
logits that the module (cnn.py), the shapes and parameter counts (shapes.py), the layer
implementations' timing (timed_layers.py) and the summary all read.

Each entry names its module (the parameters' key and the sown output's name) and carries
what its computation needs. `activation` says the entry's output is taken after the model's
activation: a conv or hidden dense layer's, or, with batch normalization before the
activation, its batch norm's.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from cnn_jax import member_view

BATCH_NORM = ('none', 'before', 'after')  # where model.batch_norm puts it: the activation's


@dataclasses.dataclass(frozen=True)
class Layer:
  name: str            # 'conv0', 'conv0_bn', 'pool0', 'conv_dropout', 'flatten', 'dense0', ...
  kind: str            # 'conv', 'batch_norm', 'max_pool', 'avg_pool', 'dropout', 'flatten',
                       # 'global_max_pool', 'global_avg_pool', 'dense'
  index: int = 0       # the conv or dense layer the entry belongs to
  features: int = 0    # conv and dense: output features
  window: int = 0      # conv and pooling
  stride: int = 0
  padding: Any = None  # conv and pooling, as the config gives it (shapes.parse_padding)
  rate: str = ''       # dropout: the model field that holds its rate
  activation: bool = False


def layers(model_cfg) -> tuple[Layer, ...]:
  """The layers of a (name-validated) model config, or of a member's view of it, in order.
  Dropout is an entry when its rate is on (> 0 in the config: a vmapped group traces only
  rates that are > 0 in every member)."""
  model_cfg = member_view.section(model_cfg)
  bn = getattr(model_cfg, 'batch_norm', 'none')  # configs written before it have none
  found = []

  def block(name, kind, index, **settings):
    found.append(Layer(name, kind, index, activation=bn != 'before', **settings))
    if bn != 'none':
      found.append(Layer(f'{name}_bn', 'batch_norm', index, activation=bn == 'before'))

  for i, features in enumerate(model_cfg.conv_features):
    block(f'conv{i}', 'conv', i, features=features, window=model_cfg.conv_kernel_size[i],
          stride=model_cfg.conv_strides[i], padding=model_cfg.conv_padding[i])
    if model_cfg.pool_type[i] != 'none':
      found.append(Layer(f'pool{i}', f'{model_cfg.pool_type[i]}_pool', i,
                         window=model_cfg.pool_window[i], stride=model_cfg.pool_strides[i],
                         padding=model_cfg.pool_padding[i]))
  if model_cfg.is_on('conv_dropout') and model_cfg.conv_features:
    found.append(Layer('conv_dropout', 'dropout', rate='conv_dropout'))
  if model_cfg.global_pool != 'none':
    found.append(Layer('global_pool', f'global_{model_cfg.global_pool}_pool'))
  else:
    found.append(Layer('flatten', 'flatten'))
  for i, width in enumerate(model_cfg.hidden_dims):
    block(f'dense{i}', 'dense', i, features=width)
    if model_cfg.is_on('dense_dropout'):
      found.append(Layer(f'dense_dropout{i}', 'dropout', i, rate='dense_dropout'))
  found.append(Layer('logits', 'dense', len(model_cfg.hidden_dims),
                     features=model_cfg.num_classes))
  return tuple(found)
