"""Which implementation (model/layers.py) each convolution and pooling of a model runs.

`model.conv_impl` / `model.pool_impl` name one implementation for every layer, or 'auto': then
each layer takes, on this backend, the candidate measured fastest for its own shape, batch and
member count. A convolution's forward pass, input gradient and kernel gradient are timed and
chosen apart (layers.ConvImpl); a pooling's forward and backward together, since its backward
needs its own forward. The first layer's input gradient is never computed (its input is data)
and is not timed.

Measurements are cached per machine (backend, processor or device, cores) in
$CNN_JAX_CACHE/layer_choices.json, so a layer shape is timed once per machine (a fraction of a
second for MNIST's layers) and every later run on that machine makes the same choice: the same
config and seed give the same numbers, run after run. Another machine may choose otherwise;
the implementations agree to float tolerance, not bit for bit. results.json records the choice.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Callable, Sequence

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from cnn_jax import cache_dir
from cnn_jax import machine
from cnn_jax.errors import ConfigError
from cnn_jax.model import layers
from cnn_jax.model import shapes

AUTO = 'auto'
CONV_CHOICES = (AUTO, *layers.CONV_IMPLS)
POOL_CHOICES = (AUTO, *layers.POOL_IMPLS)
MEASUREMENTS = 'layer_choices.json'
_REPEATS = 5  # timed calls per candidate; the minimum is kept (noise only ever adds time)


@dataclasses.dataclass(frozen=True)
class LayerImpls:
  """Per conv layer: its convolution's implementation and its pooling's ('xla' where the
  layer does not pool)."""
  conv: tuple[layers.ConvImpl, ...] = ()
  pool: tuple[str, ...] = ()

  def describe(self) -> dict[str, str]:
    described = {f'conv{i}': str(impl) for i, impl in enumerate(self.conv)}
    described.update({f'pool{i}': impl for i, impl in enumerate(self.pool)})
    return described

  @classmethod
  def from_description(cls, described: dict[str, str]) -> 'LayerImpls':
    """The inverse of describe, for running a model as results.json's executor.layers says
    it ran: {'conv0': 'shifted/xla/xla', 'pool0': 'reshape', ...}."""
    count = sum(key.startswith('conv') for key in described)
    expected = [f'{kind}{i}' for kind in ('conv', 'pool') for i in range(count)]
    if sorted(described) != sorted(expected):
      raise ConfigError(f'executor.layers={described!r} must name each conv layer and its '
                        f'pooling once: {", ".join(expected) or "nothing"}')
    for i in range(count):
      if described[f'pool{i}'] not in layers.POOL_IMPLS:
        raise ConfigError(f'executor.layers pool{i}={described[f"pool{i}"]!r} is not known; '
                          f'allowed: {", ".join(layers.POOL_IMPLS)}')
    return cls(tuple(layers.ConvImpl.parse(described[f'conv{i}'], f'executor.layers conv{i}')
                     for i in range(count)),
               tuple(described[f'pool{i}'] for i in range(count)))


@dataclasses.dataclass(frozen=True)
class _Conv:
  """A convolution layer as the measurement sees it."""
  in_shape: tuple  # (H, W, C)
  features: int
  window: int
  stride: int
  padding: object
  input_grad: bool  # False for the first layer: its input is data

  def key(self, batch: int, members: int) -> str:
    return json.dumps(['conv', batch, members, *self.in_shape, self.features, self.window,
                       self.stride, self.padding, self.input_grad])


@dataclasses.dataclass(frozen=True)
class _Pool:
  in_shape: tuple
  kind: str
  window: int
  stride: int
  padding: object

  def key(self, batch: int, members: int) -> str:
    return json.dumps(['pool', batch, members, *self.in_shape, self.kind, self.window,
                       self.stride, self.padding])


def conv_and_pool_layers(model_cfg, image_shape) -> list[tuple[_Conv, _Pool | None]]:
  """Each conv layer of a validated model config and the pooling after it, with input shapes."""
  by_name = {layer.name: layer for layer in shapes.infer_layer_shapes(model_cfg, image_shape)}
  in_shape, found = tuple(image_shape), []
  for i, features in enumerate(model_cfg.conv_features):
    conv = _Conv(in_shape, features, model_cfg.conv_kernel_size[i], model_cfg.conv_strides[i],
                 shapes.parse_padding(model_cfg.conv_padding[i], 'padding'), input_grad=i > 0)
    in_shape = tuple(by_name[f'conv{i}'].output_shape)
    pool = None
    if model_cfg.pool_type[i] != 'none':
      pool = _Pool(in_shape, model_cfg.pool_type[i], model_cfg.pool_window[i],
                   model_cfg.pool_strides[i],
                   shapes.parse_padding(model_cfg.pool_padding[i], 'padding'))
      in_shape = tuple(by_name[f'pool{i}'].output_shape)
    found.append((conv, pool))
  return found


def resolve(model_cfg, image_shape, batch: int, members: int = 1,
            path: str | None = None) -> LayerImpls:
  """The implementations a model runs: forced by the config, or measured (see the module
  docstring). `batch` is the per-device batch; `members` the size of a vmapped group."""
  path = path or cache_dir.cache_dir(MEASUREMENTS)
  found = conv_and_pool_layers(model_cfg, image_shape)
  measured = _read(path)
  mine = measured.setdefault(machine.machine_key(), {})
  before = len(mine)
  convs, pools = [], []
  for conv, pool in found:
    if model_cfg.conv_impl != AUTO:
      convs.append(layers.ConvImpl.everywhere(model_cfg.conv_impl))
    else:
      key = conv.key(batch, members)
      if key not in mine:
        mine[key] = _time_conv(conv, batch, members)
      convs.append(_fastest_conv(mine[key], conv.input_grad))
    if pool is None:
      pools.append('xla')
    elif model_cfg.pool_impl != AUTO:
      pools.append(model_cfg.pool_impl)
    else:
      key = pool.key(batch, members)
      if key not in mine:
        mine[key] = _time_pool(pool, batch, members)
      pools.append(min(mine[key]['train'], key=mine[key]['train'].get))
  if len(mine) > before:
    _write(path, measured)
  chosen = LayerImpls(tuple(convs), tuple(pools))
  logging.info('Layer implementations (%s): %s', jax.default_backend(), chosen.describe())
  return chosen


def _fastest_conv(times: dict, input_grad: bool) -> layers.ConvImpl:
  forward = min(times['forward'], key=times['forward'].get)
  kernel_grad = min(times['kernel_grad'], key=times['kernel_grad'].get)
  # An input gradient nobody computes follows the forward (one implementation, no custom VJP).
  input_grad_impl = (min(times['input_grad'], key=times['input_grad'].get) if input_grad
                     else forward)
  return layers.ConvImpl(forward, input_grad_impl, kernel_grad)


def _time_conv(conv: _Conv, batch: int, members: int) -> dict:
  rng = np.random.default_rng(0)
  x = rng.random((members, batch, *conv.in_shape), np.float32)
  kernel = rng.standard_normal(
      (members, conv.window, conv.window, conv.in_shape[-1], conv.features), np.float32)
  out_shape = jax.eval_shape(
      lambda x, k: layers.conv_xla(x, k, conv.stride, conv.padding), x[0], kernel[0]).shape
  g = rng.standard_normal((members, *out_shape), np.float32)
  times = {'forward': {}, 'input_grad': {}, 'kernel_grad': {}}
  for name, impl in layers.CONV_IMPLS.items():
    layer = lambda x, k, impl=impl: impl(x, k, conv.stride, conv.padding)
    # The convolution is linear in each argument, so the gradient of <layer, g> with respect
    # to one argument runs only that gradient's computation: XLA drops the forward pass.
    grad = lambda argnum, layer=layer: jax.grad(lambda x, k, g: jnp.sum(layer(x, k) * g),
                                                argnums=argnum)
    times['forward'][name] = _best_time(layer, (x, kernel), members)
    times['kernel_grad'][name] = _best_time(grad(1), (x, kernel, g), members)
    if conv.input_grad:
      times['input_grad'][name] = _best_time(grad(0), (x, kernel, g), members)
  return times


def _time_pool(pool: _Pool, batch: int, members: int) -> dict:
  rng = np.random.default_rng(0)
  x = rng.standard_normal((members, batch, *pool.in_shape), np.float32)
  out_shape = jax.eval_shape(
      lambda x: layers.pool_xla(x, pool.kind, pool.window, pool.stride, pool.padding),
      x[0]).shape
  g = rng.standard_normal((members, *out_shape), np.float32)
  train = {}
  for name in layers.pool_impls_for(pool.window, pool.stride):
    impl = layers.POOL_IMPLS[name]
    layer = lambda x, impl=impl: impl(x, pool.kind, pool.window, pool.stride, pool.padding)
    train[name] = _best_time(jax.grad(lambda x, g, layer=layer: jnp.sum(layer(x) * g)),
                             (x, g), members)
  return {'train': train}


def _best_time(function: Callable, args: Sequence[np.ndarray], members: int) -> float:
  """Seconds of the fastest of _REPEATS calls, after a compiling call; under jax.vmap when
  the layer runs in a group, since a vmapped layer is a different program."""
  if members > 1:
    compiled = jax.jit(jax.vmap(function))
  else:
    compiled = jax.jit(lambda *a: function(*(arg[0] for arg in a)))
  args = [jnp.asarray(a) for a in args]
  jax.block_until_ready(compiled(*args))
  best = float('inf')
  for _ in range(_REPEATS):
    start = time.perf_counter()
    jax.block_until_ready(compiled(*args))
    best = min(best, time.perf_counter() - start)
  return best


def _read(path: str) -> dict:
  if not os.path.exists(path):
    return {}
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):  # a damaged cache is re-measured, not fatal
    return {}


def _write(path: str, measured: dict) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = f'{path}.{os.getpid()}.tmp'
  with open(tmp, 'w') as f:
    json.dump(measured, f, indent=1, sort_keys=True)
  os.replace(tmp, path)  # concurrent sweep workers never read half a file
