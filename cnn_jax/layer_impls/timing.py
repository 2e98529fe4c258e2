"""Times every implementation of a layer (descriptors.py) on this machine, so that a busy
machine does not flip the choice.

Every candidate is compiled and called once, then ROUNDS rounds call each candidate once,
each round starting one candidate further along, so a burst of load from another process
falls on all of them, not on one; a candidate far behind after the first rounds is dropped
(HOPELESS). Each candidate's fastest call is its time, its median is recorded too. The
fastest call estimates what the machine can do, which is what the cache is keyed by; the
median, the load of the moment. Noise only ever adds time, so a slow outlier never moves the
fastest call. The measurements behind these choices are in docs/LAYER_COSTS.md ("Timing the
choice").

A layer is timed as it runs: at the per-device batch, and under jax.vmap when it runs in a
group of `members`, since a vmapped layer is a different program.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from cnn_jax.layer_impls import implementations
from cnn_jax.layer_impls.descriptors import ConvLayer
from cnn_jax.layer_impls.descriptors import PoolLayer

# {part: ({candidate: fastest ms}, {candidate: median ms}, rounds)}; a part is 'forward',
# 'input_grad' or 'kernel_grad' of a convolution, 'train' of a pooling.
Timed = dict[str, tuple[dict[str, float], dict[str, float], int]]

# Where more rounds stop making the choice steadier on a busy machine.
ROUNDS = 21
# A part whose warm calls of all candidates together take longer than this gets SLOW_ROUNDS
# rounds: a call that long is barely moved by a burst of load, and more rounds of it would
# cost seconds per layer.
SLOW_ROUND_SECONDS = 0.25
SLOW_ROUNDS = 5
# After SLOW_ROUNDS rounds a candidate whose fastest call is 3x the fastest candidate's is
# timed no further (what it has is kept): only a fall of its time by more than 3x could make
# it win, more than a change of load has been seen to move a time.
HOPELESS = 3.0


def time_layer(layer: ConvLayer | PoolLayer, batch: int, members: int) -> Timed:
  return (time_conv if isinstance(layer, ConvLayer) else time_pool)(layer, batch, members)


def time_conv(conv: ConvLayer, batch: int, members: int) -> Timed:
  rng = np.random.default_rng(0)
  x = rng.random((members, batch, *conv.in_shape), np.float32)
  kernel = rng.standard_normal(
      (members, conv.window, conv.window, conv.in_shape[-1], conv.features), np.float32)
  out_shape = jax.eval_shape(
      lambda x, k: implementations.conv_xla(x, k, conv.stride, conv.padding),
      x[0], kernel[0]).shape
  g = rng.standard_normal((members, *out_shape), np.float32)
  parts = {'forward': {}, 'input_grad': {}, 'kernel_grad': {}}
  for name, impl in implementations.CONV_IMPLS.items():
    # Every part takes (x, kernel, g), so that one set of device arrays serves them all.
    layer = lambda x, k, g, impl=impl: impl(x, k, conv.stride, conv.padding)
    # The convolution is linear in each argument, so the gradient of <layer, g> with respect
    # to one argument runs only that gradient's computation: XLA drops the forward pass.
    grad = lambda argnum, layer=layer: jax.grad(lambda x, k, g: jnp.sum(layer(x, k, g) * g),
                                                argnums=argnum)
    parts['forward'][name] = layer
    parts['kernel_grad'][name] = grad(1)
    if conv.input_grad:
      parts['input_grad'][name] = grad(0)
  return {part: timings(candidates, (x, kernel, g), members)
          for part, candidates in parts.items() if candidates}


def time_pool(pool: PoolLayer, batch: int, members: int) -> Timed:
  rng = np.random.default_rng(0)
  x = rng.standard_normal((members, batch, *pool.in_shape), np.float32)
  out_shape = jax.eval_shape(
      lambda x: implementations.pool_xla(x, pool.kind, pool.window, pool.stride,
                                         pool.padding), x[0]).shape
  g = rng.standard_normal((members, *out_shape), np.float32)
  train = {}
  for name in implementations.pool_impls_for(pool.window, pool.stride):
    impl = implementations.POOL_IMPLS[name]
    layer = lambda x, impl=impl: impl(x, pool.kind, pool.window, pool.stride, pool.padding)
    train[name] = jax.grad(lambda x, g, layer=layer: jnp.sum(layer(x) * g))
  return {'train': timings(train, (x, g), members)}


def timings(candidates: dict[str, Callable], args: Sequence[np.ndarray],
            members: int) -> tuple[dict[str, float], dict[str, float], int]:
  """({candidate: fastest ms}, {candidate: median ms}, rounds): each compiled, called once,
  then timed over interleaved rounds; under jax.vmap when the layer runs in a group."""
  args = [jnp.asarray(a) for a in args]
  compiled = {}
  for name, function in candidates.items():
    if members > 1:
      compiled[name] = jax.jit(jax.vmap(function))
    else:
      compiled[name] = jax.jit(lambda *a, function=function: function(*(arg[0] for arg in a)))
    jax.block_until_ready(compiled[name](*args))  # compiles
  calls = {name: (lambda c=c: c(*args)) for name, c in compiled.items()}
  warm = interleaved(calls, 1)
  rounds = (SLOW_ROUNDS if sum(s[0] for s in warm.values()) > SLOW_ROUND_SECONDS
            else ROUNDS)
  samples = interleaved(calls, SLOW_ROUNDS)
  if rounds > SLOW_ROUNDS:
    fastest = min(min(s) for s in samples.values())
    hopeful = {name: call for name, call in calls.items()
               if min(samples[name]) < HOPELESS * fastest}
    for name, more in interleaved(hopeful, rounds - SLOW_ROUNDS).items():
      samples[name] += more
  return ({name: 1e3 * min(s) for name, s in samples.items()},
          {name: 1e3 * statistics.median(s) for name, s in samples.items()}, rounds)


def interleaved(calls: dict[str, Callable[[], object]], rounds: int,
                clock: Callable[[], float] = time.perf_counter) -> dict[str, list[float]]:
  """Seconds of each candidate's call in each of `rounds` rounds. Round r calls every
  candidate once, starting with the r-th, so none always runs first (after other work) or
  last, and a burst of load lasting about a round slows every candidate once rather than one
  candidate in every sample."""
  names = list(calls)
  samples = {name: [] for name in names}
  for r in range(rounds):
    start_at = r % len(names)
    for name in names[start_at:] + names[:start_at]:
      start = clock()
      jax.block_until_ready(calls[name]())
      samples[name].append(clock() - start)
  return samples
