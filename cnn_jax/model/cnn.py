"""The configurable CNN: conv blocks (conv -> activation -> optional pooling), optional
dropout, flatten or global pooling, hidden dense layers, and a linear output layer.

Every tutorial model is this module with different field values (see `architectures.py`),
so each sweep axis (filters, stride, pooling type, activation, ...) is a single config field.
The model returns logits; softmax lives in the loss.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnn_jax.model import layers
from cnn_jax.model import shapes

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    'relu': nn.relu,
    'sigmoid': nn.sigmoid,
    'tanh': nn.tanh,
    'leaky_relu': nn.leaky_relu,  # slope 0.01, as CNTK's and PyTorch's default
    'elu': nn.elu,
    'gelu': nn.gelu,
    'linear': lambda x: x,  # for arithmetic checks and linear baselines
}
POOL_TYPES = ('max', 'avg', 'none')
GLOBAL_POOL_TYPES = ('none', 'max', 'avg')
KERNEL_INITIALIZERS = ('glorot_uniform', 'glorot_normal', 'he_normal', 'he_uniform',
                       'lecun_normal', 'normal', 'truncated_normal', 'zeros', 'constant')
BIAS_INITIALIZERS = ('zeros', 'constant', 'normal', 'truncated_normal')

OUTPUT_SUFFIX = '_out'  # sown intermediate outputs are named <layer name><suffix>

# Per-layer fields: one entry per conv layer, all tuples of the same length.
PER_CONV_LAYER_FIELDS = ('conv_kernel_size', 'conv_strides', 'conv_padding', 'pool_type',
                         'pool_window', 'pool_strides', 'pool_padding')


def make_initializer(name: str, std: float = 0.1, value: float = 0.0):
  """Maps an initializer name (and its scale) to a jax.nn initializer."""
  init = jax.nn.initializers
  table = {
      'glorot_uniform': lambda: init.glorot_uniform(),
      'glorot_normal': lambda: init.glorot_normal(),
      'he_normal': lambda: init.he_normal(),
      'he_uniform': lambda: init.he_uniform(),
      'lecun_normal': lambda: init.lecun_normal(),
      'normal': lambda: init.normal(stddev=std),
      # TF1's truncated_normal: std of the untruncated normal, cut at two std devs.
      'truncated_normal': lambda: init.truncated_normal(stddev=std, lower=-2.0, upper=2.0),
      'zeros': lambda: init.zeros,
      'constant': lambda: init.constant(value),
  }
  return table[name]()


class CNN(nn.Module):
  """Stack of conv blocks and dense layers. Field meanings match the `model` config."""
  conv_features: Sequence[int] = ()
  conv_kernel_size: Sequence[int] = ()
  conv_strides: Sequence[int] = ()
  conv_padding: Sequence[Any] = ()
  pool_type: Sequence[str] = ()
  pool_window: Sequence[int] = ()
  pool_strides: Sequence[int] = ()
  pool_padding: Sequence[Any] = ()
  global_pool: str = 'none'
  conv_dropout: float = 0.0
  hidden_dims: Sequence[int] = ()
  dense_dropout: float = 0.0
  activation: str = 'relu'
  num_classes: int = 10
  kernel_init: str = 'glorot_uniform'
  kernel_init_std: float = 0.1
  kernel_init_value: float = 0.0
  bias_init: str = 'zeros'
  bias_init_std: float = 0.1
  bias_init_value: float = 0.0
  # Per conv layer, the implementation of its convolution and of its pooling (model/layers.py;
  # resolved from model.conv_impl / pool_impl by model/layer_choice.py). Empty: XLA's own.
  conv_impls: Sequence[layers.ConvImpl] = ()
  pool_impls: Sequence[str] = ()

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    act = ACTIVATIONS[self.activation]
    kernel_init = make_initializer(self.kernel_init, self.kernel_init_std, self.kernel_init_value)
    bias_init = make_initializer(self.bias_init, self.bias_init_std, self.bias_init_value)
    # Intermediate outputs are sown so that the summary, the activation-map pictures and
    # the shape tests read the real tensors; sow is a no-op unless asked for.
    for i, features in enumerate(self.conv_features):
      x = layers.Conv(features, self.conv_kernel_size[i], self.conv_strides[i],
                      shapes.parse_padding(self.conv_padding[i], 'padding'),
                      self.conv_impls[i] if self.conv_impls else layers.ConvImpl(),
                      kernel_init, bias_init, name=f'conv{i}')(x)
      x = act(x)
      self._record(f'conv{i}', x)
      if self.pool_type[i] != 'none':
        x = pool(x, self.pool_type[i], self.pool_window[i], self.pool_strides[i],
                 self.pool_padding[i], self.pool_impls[i] if self.pool_impls else 'xla')
        self._record(f'pool{i}', x)
    if _is_on(self.conv_dropout) and self.conv_features:
      x = Dropout(self.conv_dropout, name='conv_dropout')(x, train=train)
      self._record('conv_dropout', x)
    if self.global_pool == 'max':
      x = jnp.max(x, axis=(1, 2))
      self._record('global_pool', x)
    elif self.global_pool == 'avg':
      x = jnp.mean(x, axis=(1, 2))
      self._record('global_pool', x)
    else:
      x = x.reshape((x.shape[0], -1))
      self._record('flatten', x)
    for i, width in enumerate(self.hidden_dims):
      x = act(nn.Dense(width, kernel_init=kernel_init, bias_init=bias_init, name=f'dense{i}')(x))
      self._record(f'dense{i}', x)
      if _is_on(self.dense_dropout):
        x = Dropout(self.dense_dropout, name=f'dense_dropout{i}')(x, train=train)
        self._record(f'dense_dropout{i}', x)
    x = nn.Dense(self.num_classes, kernel_init=kernel_init, bias_init=bias_init,
                 name='logits')(x)
    self._record('logits', x)
    return x

  def _record(self, layer_name: str, x: jax.Array) -> None:
    # A sown value may not share its name with a submodule, hence the suffix.
    self.sow('intermediates', layer_name + OUTPUT_SUFFIX, x)


class Dropout(nn.Module):
  """Inverted dropout, as flax's nn.Dropout computes it (same RNG stream, same mask), except
  that `rate` may be a traced value: a vmapped sweep group trains members with different
  dropout rates in one program (cnn_jax/engine/program.py)."""
  rate: Any

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    if not train:
      return x
    keep = 1.0 - self.rate
    mask = jax.random.bernoulli(self.make_rng('dropout'), p=keep, shape=x.shape)
    return jax.lax.select(mask, x / keep, jnp.zeros_like(x))


def _is_on(rate) -> bool:
  """A traced rate is on: a group only traces the rates that are > 0 in every member."""
  return isinstance(rate, jax.Array) or rate > 0


def pool(x, pool_type, window, stride, padding, impl='xla'):
  padding = shapes.parse_padding(padding, 'padding')
  return layers.POOL_IMPLS[impl](x, pool_type, window, stride, padding)


# Numeric fields that change no shape and no program: a vmapped sweep group may pass them as
# traced per-member values (see build_model's `traced`).
TRACEABLE_FIELDS = ('conv_dropout', 'dense_dropout', 'kernel_init_std', 'kernel_init_value',
                    'bias_init_std', 'bias_init_value')


def build_model(model_cfg, traced=None, impls=None) -> CNN:
  """The (stateless) Flax module of a validated `model` config (config/validation.py).

  traced: {field: value} for fields of TRACEABLE_FIELDS whose value is a traced array (one
  member of a vmapped group).
  impls: the layer_choice.LayerImpls to run; None runs XLA's own convolutions and poolings
  (the parameters are the same either way).
  """
  fields = {name: getattr(model_cfg, name) for name in CNN.__dataclass_fields__
            if name not in ('parent', 'name') and name in model_cfg}
  fields = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
  fields.update(traced or {})
  if impls is not None:
    fields.update(conv_impls=impls.conv, pool_impls=impls.pool)
  return CNN(**fields)


def count_params(params) -> int:
  return sum(int(p.size) for p in jax.tree_util.tree_leaves(params))

