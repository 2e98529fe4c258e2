"""The configurable CNN: conv blocks (conv -> activation -> optional pooling, with optional
batch normalization before or after the activation), optional dropout, flatten or global
pooling, hidden dense layers (each optionally batch-normalized), and a linear output layer,
in the order model/layer_list.py walks them.

Every tutorial model is this module with different field values (see `architectures.py`),
so each sweep axis (filters, stride, pooling type, activation, ...) is a single config field.
The model returns logits; softmax lives in the loss.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnn_jax import member_view
from cnn_jax.layer_impls import implementations
from cnn_jax.layer_impls.implementations import ConvImpl
from cnn_jax.model import layer_list
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
  """The layers of layer_list.layers(config), run in order. Field meanings match the `model`
  config; `layers` is that list, built once by build_model."""
  layers: Sequence[layer_list.Layer] = ()
  conv_dropout: float = 0.0
  dense_dropout: float = 0.0
  activation: str = 'relu'
  num_classes: int = 10
  kernel_init: str = 'glorot_uniform'
  kernel_init_std: float = 0.1
  kernel_init_value: float = 0.0
  bias_init: str = 'zeros'
  bias_init_std: float = 0.1
  bias_init_value: float = 0.0
  batch_norm_momentum: float = 0.9
  batch_norm_epsilon: float = 1e-5
  compute_dtype: str = 'float32'
  # Per conv layer, the implementation of its convolution and of its pooling
  # (layer_impls/implementations.py; resolved from model.conv_impl / pool_impl by
  # layer_impls/resolution.py). Empty: XLA's own.
  conv_impls: Sequence[ConvImpl] = ()
  pool_impls: Sequence[str] = ()

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    act = ACTIVATIONS[self.activation]
    kernel_init = make_initializer(self.kernel_init, self.kernel_init_std, self.kernel_init_value)
    bias_init = make_initializer(self.bias_init, self.bias_init_std, self.bias_init_value)
    # Parameters and batch statistics stay float32; activations and matmuls run in the
    # compute dtype (the step computes the loss in float32).
    dtype = jnp.dtype(self.compute_dtype)
    x = x.astype(dtype)
    for layer in self.layers:
      i = layer.index
      if layer.kind == 'conv':
        x = Conv(layer.features, layer.window, layer.stride,
                 shapes.parse_padding(layer.padding, 'padding'),
                 self.conv_impls[i] if self.conv_impls else ConvImpl(),
                 kernel_init, bias_init, dtype, name=layer.name)(x)
      elif layer.kind == 'dense':
        x = nn.Dense(layer.features, kernel_init=kernel_init, bias_init=bias_init,
                     dtype=dtype, param_dtype=jnp.float32, name=layer.name)(x)
      elif layer.kind == 'batch_norm':
        # Batch statistics in training (over the whole batch: in a data-parallel run XLA
        # reduces them across devices), the running averages in evaluation.
        x = nn.BatchNorm(use_running_average=not train, momentum=self.batch_norm_momentum,
                         epsilon=self.batch_norm_epsilon, dtype=dtype,
                         param_dtype=jnp.float32, name=layer.name)(x)
      elif layer.kind in ('max_pool', 'avg_pool'):
        x = pool(x, layer.kind[:3], layer.window, layer.stride, layer.padding,
                 self.pool_impls[i] if self.pool_impls else 'xla')
      elif layer.kind == 'dropout':
        x = Dropout(getattr(self, layer.rate), name=layer.name)(x, train=train)
      elif layer.kind == 'global_max_pool':
        x = jnp.max(x, axis=(1, 2))
      elif layer.kind == 'global_avg_pool':
        x = jnp.mean(x, axis=(1, 2))
      else:  # flatten
        x = x.reshape((x.shape[0], -1))
      if layer.activation:
        x = act(x)
      # Intermediate outputs are sown so that the summary, the activation-map pictures and
      # the shape tests read the real tensors; sow is a no-op unless asked for. A sown value
      # may not share its name with a submodule, hence the suffix.
      self.sow('intermediates', layer.name + OUTPUT_SUFFIX, x)
    return x


class Conv(nn.Module):
  """nn.Conv's parameters (names, shapes, initialisation) with a chosen implementation, so a
  checkpoint or an init does not depend on which implementation runs."""
  features: int
  kernel_size: int
  stride: int
  padding: Any
  impl: ConvImpl
  kernel_init: Callable
  bias_init: Callable
  dtype: Any = jnp.float32  # the computation's; the parameters stay float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k = self.kernel_size
    kernel = self.param('kernel', self.kernel_init, (k, k, x.shape[-1], self.features),
                        jnp.float32)
    bias = self.param('bias', self.bias_init, (self.features,), jnp.float32)
    return (implementations.conv(x.astype(self.dtype), kernel.astype(self.dtype), self.stride,
                                 self.padding, self.impl) + bias.astype(self.dtype))


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


def pool(x, pool_type, window, stride, padding, impl='xla'):
  padding = shapes.parse_padding(padding, 'padding')
  return implementations.POOL_IMPLS[impl](x, pool_type, window, stride, padding)


COMPUTE_DTYPES = ('float32', 'bfloat16')


def build_model(model_cfg, impls=None) -> CNN:
  """The (stateless) Flax module of a validated `model` config (config/validation.py), or of
  that section as one member of a vmapped group reads it (a member_view.Section, whose traced
  fields are traced arrays).

  impls: the layer_impls.choice.LayerImpls to run; None runs XLA's own convolutions and
  poolings (the parameters are the same either way).
  """
  model_cfg = member_view.section(model_cfg)
  fields = {name: model_cfg[name] for name in CNN.__dataclass_fields__
            if name not in ('parent', 'name', 'layers') and name in model_cfg}
  fields['layers'] = layer_list.layers(model_cfg)
  if impls is not None:
    fields.update(conv_impls=impls.conv, pool_impls=impls.pool)
  return CNN(**fields)


def count_params(params) -> int:
  return sum(int(p.size) for p in jax.tree_util.tree_leaves(params))

