"""Per-layer cost of a model's convolutions and poolings: each candidate implementation
against XLA's own and PyTorch's, forward and forward+backward, on this backend.

    python benchmarks/layers.py --config=experiments/pool.py            # T2, its batch
    python benchmarks/layers.py --config=experiments/keras_cnn.py --repeats=5

Candidates: cnn_jax/layer_impls/implementations.py's CONV_IMPLS and POOL_IMPLS, each checked
against XLA's result first (the max difference is printed). This prints the whole picture per
layer; layer_impls/timing.py times the same candidates, forward and each gradient apart, to
choose (the fastest call of 21 interleaved rounds; `python -m cnn_jax.time_layers
--config=FILE` prints those timings and the choice). Times here are medians over --repeats
calls of --calls each, after a compiling call. Backward is the gradient with respect to the
layer's input and weights of sum(output * g).
"""
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# pylint: disable=g-import-not-at-top,wrong-import-position
from cnn_jax import allocator

allocator.use_tcmalloc_if_available()

from cnn_jax import cli  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags
import jax
import jax.numpy as jnp
from ml_collections import config_flags
import numpy as np

from cnn_jax.layer_impls import implementations
from cnn_jax.layer_impls.padding import same_padding
from cnn_jax.model import shapes

config_flags.DEFINE_config_file('config', 'experiments/pool.py', 'Experiment whose layers to time.',
                                lock_config=True)
flags.DEFINE_integer('repeats', 7, 'Timed repeats (median).')
flags.DEFINE_integer('calls', 10, 'Calls per repeat.')
FLAGS = flags.FLAGS


def timed(fn, *args):
  jax.block_until_ready(fn(*args))  # compiles
  samples = []
  for _ in range(FLAGS.repeats):
    start = time.perf_counter()
    for _ in range(FLAGS.calls):
      out = fn(*args)
    jax.block_until_ready(out)
    samples.append((time.perf_counter() - start) / FLAGS.calls)
  return statistics.median(samples) * 1e3


def forward_and_backward(layer, argnums=(0, 1)):
  def loss(x, w, g):
    return jnp.sum(layer(x, w) * g)
  return jax.jit(layer), jax.jit(jax.grad(loss, argnums=argnums))


def torch_times(kind, x, w, s, padding, pool=None):
  try:
    import torch
    import torch.nn.functional as F
  except ImportError:
    return None, None
  xt = torch.from_numpy(np.array(x)).permute(0, 3, 1, 2).contiguous().requires_grad_()
  if kind == 'conv':
    wt = torch.from_numpy(np.array(w)).permute(3, 2, 0, 1).contiguous().requires_grad_()
    k = w.shape[0]
    pads = same_padding(x.shape[1], k, s) if padding == 'SAME' else (0, 0)
    layer = lambda: F.conv2d(F.pad(xt, (pads[0], pads[1], pads[0], pads[1])) if sum(pads) else xt,
                             wt, stride=s)
  else:
    k = pool
    layer = lambda: (F.max_pool2d if kind == 'max' else F.avg_pool2d)(xt, k, s)
  def run(backward):
    samples = []
    for i in range(FLAGS.repeats + 1):
      start = time.perf_counter()
      for _ in range(FLAGS.calls):
        out = layer()
        if backward:
          out.backward(torch.ones_like(out))
      if i:
        samples.append((time.perf_counter() - start) / FLAGS.calls)
    return statistics.median(samples) * 1e3
  return run(False), run(True)


def main(_):
  cfg = FLAGS.config
  model, batch = cfg.model, cfg.train.batch_size
  rng = np.random.default_rng(0)
  size, channels = 28, 1
  print(f'{model.name}, batch {batch}, backend {jax.default_backend()}, jax {jax.__version__}; '
        f'ms per call (forward | forward+backward)')
  print('| layer | shape | candidate | max diff vs xla | forward ms | fwd+bwd ms |')
  print('| --- | --- | --- | --- | --- | --- |')
  for i, features in enumerate(model.conv_features):
    k, s, padding = model.conv_kernel_size[i], model.conv_strides[i], model.conv_padding[i]
    x = jnp.asarray(rng.random((batch, size, size, channels), np.float32))
    w = jnp.asarray(rng.standard_normal((k, k, channels, features), np.float32) * 0.1)
    padding = shapes.parse_padding(padding, 'padding')
    reference = implementations.conv_xla(x, w, s, padding)
    g = jnp.asarray(rng.standard_normal(reference.shape, np.float32))
    shape = f'{size}x{size}x{channels} -> {reference.shape[1]}x{reference.shape[2]}x{features}, {k}x{k}/{s} {padding}'
    for name, impl in implementations.CONV_IMPLS.items():
      layer = lambda x, w, impl=impl: impl(x, w, s, padding)
      forward, backward = forward_and_backward(layer)
      diff = float(jnp.max(jnp.abs(forward(x, w) - reference)))
      print(f'| conv{i} | {shape} | {name} | {diff:.1e} | {timed(forward, x, w):.2f} | '
            f'{timed(backward, x, w, g):.2f} |')
    fwd, both = torch_times('conv', x, w, s, padding)
    if fwd is not None:
      print(f'| conv{i} | {shape} | PyTorch | - | {fwd:.2f} | {both:.2f} |')
    size, channels = reference.shape[1], features
    kind = model.pool_type[i]
    if kind == 'none':
      continue
    pk, ps, pp = model.pool_window[i], model.pool_strides[i], model.pool_padding[i]
    x = jnp.asarray(rng.standard_normal((batch, size, size, channels), np.float32))
    pp = shapes.parse_padding(pp, 'padding')
    reference = implementations.pool_xla(x, kind, pk, ps, pp)
    g = jnp.asarray(rng.standard_normal(reference.shape, np.float32))
    shape = f'{size}x{size}x{channels} -> {reference.shape[1]}x{reference.shape[2]}, {kind} {pk}/{ps} {pp}'
    for name in implementations.pool_impls_for(pk, ps):
      impl = implementations.POOL_IMPLS[name]
      layer = lambda x, w, impl=impl: impl(x, kind, pk, ps, pp)
      forward, backward = forward_and_backward(layer, argnums=0)
      diff = float(jnp.max(jnp.abs(forward(x, None) - reference)))
      print(f'| pool{i} | {shape} | {name} | {diff:.1e} | {timed(forward, x, None):.2f} | '
            f'{timed(lambda x, g: backward(x, None, g), x, g):.2f} |')
    fwd, both = torch_times(kind, x, None, ps, pp, pool=pk)
    if fwd is not None:
      print(f'| pool{i} | {shape} | PyTorch | - | {fwd:.2f} | {both:.2f} |')
    size = reference.shape[1]


if __name__ == '__main__':
  cli.run(main)
