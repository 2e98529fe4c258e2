"""Which implementation (model/layers.py) each convolution and pooling of a model runs.

`model.conv_impl` / `model.pool_impl` name one implementation for every layer, or 'auto': then
each layer takes, on this backend, the candidate measured fastest for its own shape, batch and
member count. A convolution's forward pass, input gradient and kernel gradient are timed and
chosen apart (layers.ConvImpl); a pooling's forward and backward together, since its backward
needs its own forward. The first layer's input gradient is never computed (its input is data)
and is not timed.

How a layer is timed, so that a busy machine does not flip the choice: every candidate is
compiled and called once, then ROUNDS rounds call each candidate once, each round starting
one candidate further along, so a burst of load from another process falls on all of them,
not on one (a candidate far behind after the first rounds is dropped, HOPELESS). Each
candidate's fastest call is its time (its median is recorded too). XLA's own
implementation is kept unless another beats its time by MARGIN (choose()). A one-shot timing
(the minimum of 5 calls, cache entries before VERSION 2) chose T2's conv1 and pool0
differently in two runs on the same busy machine; those entries are measured again, not read.

Why the fastest call and not the median: on 2 shared cores a call runs at one of a few
speeds (both cores free, one, or descheduled part way), and which one dominates changes from
one fraction of a second to the next and differs between candidates (XLA's multi-threaded
convolution suffers most). T2's conv1 input gradient, timed in 50 windows of 21 rounds at a
load average of 8-10: the median chose im2col in 27 windows, XLA in 17 and shifted in 6; the
fastest call chose im2col in 47 (docs/LAYER_COSTS.md, "Timing the choice"). The fastest call
estimates what the machine can do, which is what the cache is keyed by; the median estimates
the load of the moment. Noise only ever adds time, so a slow outlier never moves it.

Measurements are cached per machine (backend, processor or device, cores) in
$CNN_JAX_CACHE/layer_choices.json, so a layer shape is timed once per machine and every later
run on that machine makes the same choice: the same config and seed give the same numbers,
run after run. Another machine may choose otherwise; the implementations agree to float
tolerance, not bit for bit. results.json records the choice; the log says, per layer, whether
it was measured now (with every candidate's time) or read from the cache. To measure a
config's layers again on this machine and see the timings:

    python -m cnn_jax.layer_choice --config=experiments/pool.py [--config.train.batch_size=128]
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import statistics
import time
from typing import Callable, Sequence

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from cnn_jax import atomic_files
from cnn_jax import cache_dir
from cnn_jax import machine
from cnn_jax.errors import ConfigError
from cnn_jax.model import layers
from cnn_jax.model import shapes

AUTO = 'auto'
XLA = 'xla'
CONV_CHOICES = (AUTO, *layers.CONV_IMPLS)
POOL_CHOICES = (AUTO, *layers.POOL_IMPLS)
MEASUREMENTS = 'layer_choices.json'
REMEASURE = 'python -m cnn_jax.layer_choice --config=<experiment>'
# Entries of another version are measured again: version 1 (no 'version' field) kept the
# minimum of 5 one-shot calls per candidate, which noise on a shared machine flipped.
VERSION = 2
# In the measurement of the module docstring, the fastest of 9 rounds chose alike in 104
# windows of 118, of 15 in 65 of 70, of 21 in 47 of 50, of 27 in 36 of 38: 21 is where more
# rounds stop paying.
ROUNDS = 21
# A part whose warm calls of all candidates together take longer than this gets SLOW_ROUNDS
# rounds: T3's second convolution (about a second per round) then costs what the one-shot
# timing did, and a call that long is barely moved by a burst of load.
SLOW_ROUND_SECONDS = 0.25
SLOW_ROUNDS = 5
# After SLOW_ROUNDS rounds a candidate whose fastest call is 3x the fastest candidate's is
# timed no further (what it has is kept): only a fall of its time by more than 3x could make it
# win, and the largest moves seen are 2x (XLA's convolution with one core free or two). It
# halves the rounds' cost for T2, whose slowest candidates are 3-10x slower than the fastest.
HOPELESS = 3.0
# A candidate replaces XLA's own only if its time beats XLA's by 10%. Between windows of that
# measurement the fastest call of one candidate moved by 9-14% (XLA's conv1 kernel gradient
# 1.09-1.19 ms, its pool1 0.85-0.97), so a smaller gain could flip on the next measurement;
# and XLA's own is computed once per step, with no custom VJP, where shifted slices are
# recomputed in each fusion that reads them (layers.conv_shifted), so a standalone gain that
# small may not survive in the train step.
MARGIN = 0.10


def choose(ms: dict[str, float], margin: float = MARGIN) -> str:
  """The candidate a layer part runs, from each candidate's median ms: XLA's own unless
  another beats it by `margin`; of those that do, the first (in the order of `ms`, which is
  layers.CONV_IMPLS' or POOL_IMPLS') within `margin` of the fastest, so that a near-tie
  between two of them cannot flip either."""
  fastest = min(ms.values())
  near_fastest = lambda name: ms[name] * (1 - margin) <= fastest
  if XLA in ms and near_fastest(XLA):
    return XLA
  beats_xla = lambda name: XLA not in ms or ms[name] < ms[XLA] * (1 - margin)
  return next(name for name in ms if name != XLA and near_fastest(name) and beats_xla(name))


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

  def describe(self) -> str:
    return (f'{"x".join(map(str, self.in_shape))} -> {self.features}, '
            f'{self.window}x{self.window}/{self.stride} {self.padding}')

  def measure(self, batch: int, members: int) -> dict:
    return _time_conv(self, batch, members)


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

  def describe(self) -> str:
    return (f'{"x".join(map(str, self.in_shape))}, {self.kind} {self.window}/{self.stride} '
            f'{self.padding}')

  def measure(self, batch: int, members: int) -> dict:
    return _time_pool(self, batch, members)


@dataclasses.dataclass(frozen=True)
class Measurement:
  """One layer's timings as the cache holds them, and whether this process measured them."""
  name: str  # 'conv0', 'pool1'
  layer: _Conv | _Pool
  # {'version', 'rounds', 'measured', 'ms': {part: {candidate: fastest ms}}, 'median_ms': ...}
  entry: dict
  fresh: bool  # measured now, not read from the cache

  def chosen(self) -> dict[str, str]:
    """Each timed part's candidate: 'forward', 'input_grad', 'kernel_grad' or 'train'."""
    return {part: choose(ms) for part, ms in self.entry['ms'].items()}

  def line(self) -> str:
    """'forward xla 2.46 im2col 1.53 shifted 0.35 -> shifted (medians 3.01 1.80 0.41); ...'"""
    chosen = self.chosen()
    return '; '.join(
        f'{part} ' + ' '.join(f'{name} {ms:.2f}' for name, ms in times.items())
        + f' -> {chosen[part]} (medians '
        + ' '.join(f'{ms:.2f}' for ms in self.entry['median_ms'][part].values()) + ')'
        for part, times in self.entry['ms'].items())

  def conv_impl(self) -> layers.ConvImpl:
    chosen = self.chosen()
    # An input gradient nobody computes follows the forward (one implementation, no custom VJP).
    return layers.ConvImpl(chosen['forward'], chosen.get('input_grad', chosen['forward']),
                           chosen['kernel_grad'])


def conv_and_pool_layers(model_cfg, image_shape) -> list[tuple[_Conv, _Pool | None]]:
  """Each conv layer of a validated model config and the pooling after it, with their input
  shapes, from the model's layer list (model/layer_list.py, via its shapes)."""
  found = []
  for shaped in shapes.infer_layer_shapes(model_cfg, image_shape):
    layer = shaped.layer
    padding = shapes.parse_padding(layer.padding, 'padding') if layer.padding is not None else None
    if layer.kind == 'conv':
      found.append((_Conv(tuple(shaped.input_shape), layer.features, layer.window, layer.stride,
                          padding, input_grad=layer.index > 0), None))
    elif layer.kind in ('max_pool', 'avg_pool'):
      found[layer.index] = (found[layer.index][0],
                            _Pool(tuple(shaped.input_shape), layer.kind[:3], layer.window,
                                  layer.stride, padding))
  return found


def named_layers(model_cfg, image_shape, only_auto: bool = True) -> dict[str, _Conv | _Pool]:
  """{'conv0': ..., 'pool0': ...} in model order: the layers whose implementation is measured
  (only_auto: those the config leaves to 'auto')."""
  named = {}
  for i, (conv, pool) in enumerate(conv_and_pool_layers(model_cfg, image_shape)):
    if not only_auto or model_cfg.conv_impl == AUTO:
      named[f'conv{i}'] = conv
    if pool is not None and (not only_auto or model_cfg.pool_impl == AUTO):
      named[f'pool{i}'] = pool
  return named


def resolve(model_cfg, image_shape, batch: int, members: int = 1,
            path: str | None = None, deterministic: bool = False) -> LayerImpls:
  """The implementations a model runs: forced by the config, or measured (see the module
  docstring). `batch` is the per-device batch; `members` the size of a vmapped group.
  `deterministic` (train.deterministic): max pools run as 'reshape', whose gradient compiles
  under XLA's deterministic ops (validation checks that each can)."""
  path = path or cache_dir.cache_dir(MEASUREMENTS)
  named = named_layers(model_cfg, image_shape)
  if deterministic:
    named = {name: layer for name, layer in named.items()
             if not (isinstance(layer, _Pool) and layer.kind == 'max')}
  found = measure(named, batch, members, path)
  log(found, batch, members, path)
  convs, pools = [], []
  for i, (_, pool) in enumerate(conv_and_pool_layers(model_cfg, image_shape)):
    convs.append(found[f'conv{i}'].conv_impl() if f'conv{i}' in found
                 else layers.ConvImpl.everywhere(model_cfg.conv_impl))
    if pool is None:
      pools.append(XLA)
    elif deterministic and pool.kind == 'max':
      pools.append('reshape')
    else:
      pools.append(found[f'pool{i}'].chosen()['train'] if f'pool{i}' in found
                   else model_cfg.pool_impl)
  chosen = LayerImpls(tuple(convs), tuple(pools))
  logging.info('Layer implementations (%s): %s', jax.default_backend(), chosen.describe())
  return chosen


def measure(named: dict[str, _Conv | _Pool], batch: int, members: int, path: str,
            again: bool = False) -> dict[str, Measurement]:
  """Each layer's timings: read from the cache at `path` where it holds a current entry for
  this machine, else (or for all, `again`) measured now and written there."""
  key = machine.machine_key()
  wanted = {name: layer.key(batch, members) for name, layer in named.items()}
  mine = _read(path).get(key, {})
  if not again and all(_current(mine.get(k)) for k in wanted.values()):
    return {name: Measurement(name, named[name], mine[k], False) for name, k in wanted.items()}
  # One process measures at a time: sweep workers starting together would otherwise time
  # each other's measurements, and the last to write would overrule choices already made.
  with _locked(path):
    everything = _read(path)
    mine = everything.setdefault(key, {})
    fresh = {k: named[name] for name, k in wanted.items()
             if again or not _current(mine.get(k))}
    for k, layer in fresh.items():
      mine[k] = layer.measure(batch, members)
    if fresh:
      _write(path, everything)
  return {name: Measurement(name, named[name], mine[k], k in fresh)
          for name, k in wanted.items()}


def forget(path: str) -> int:
  """Drops every entry this machine has in the cache at `path`; returns how many."""
  with _locked(path):
    everything = _read(path)
    dropped = len(everything.pop(machine.machine_key(), {}))
    if dropped:
      _write(path, everything)
  return dropped


def log(found: dict[str, Measurement], batch: int, members: int, path: str) -> None:
  """One line per layer measured now (every candidate's time and median, and the winner), one
  line for all read from the cache."""
  where = f'batch {batch}, {members} member{"s" if members > 1 else ""}'
  for m in found.values():
    if m.fresh:
      logging.info('Layer %s (%s; %s) measured now, fastest ms of %d rounds: %s; cached in %s',
                   m.name, m.layer.describe(), where, m.entry['rounds'], m.line(), path)
  cached = [m for m in found.values() if not m.fresh]
  if cached:
    logging.info('Layers %s (%s) read from the cache %s (measured %s), not measured now; '
                 '`%s` measures them again', ', '.join(m.name for m in cached), where, path,
                 ', '.join(sorted({m.entry['measured'] for m in cached})), REMEASURE)


def _current(entry) -> bool:
  return (isinstance(entry, dict) and entry.get('version') == VERSION
          and {'ms', 'median_ms', 'rounds', 'measured'} <= set(entry))


def _entry(timed: dict[str, tuple[dict, dict, int]]) -> dict:
  """The cache entry of a layer from {part: (fastest ms, median ms, rounds)}."""
  return {'version': VERSION, 'rounds': min(rounds for _, _, rounds in timed.values()),
          'measured': time.strftime('%Y-%m-%d %H:%M'),
          'ms': {part: fastest for part, (fastest, _, _) in timed.items()},
          'median_ms': {part: median for part, (_, median, _) in timed.items()}}


def _time_conv(conv: _Conv, batch: int, members: int) -> dict:
  rng = np.random.default_rng(0)
  x = rng.random((members, batch, *conv.in_shape), np.float32)
  kernel = rng.standard_normal(
      (members, conv.window, conv.window, conv.in_shape[-1], conv.features), np.float32)
  out_shape = jax.eval_shape(
      lambda x, k: layers.conv_xla(x, k, conv.stride, conv.padding), x[0], kernel[0]).shape
  g = rng.standard_normal((members, *out_shape), np.float32)
  parts = {'forward': {}, 'input_grad': {}, 'kernel_grad': {}}
  for name, impl in layers.CONV_IMPLS.items():
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
  return _entry({part: _timings(candidates, (x, kernel, g), members)
                 for part, candidates in parts.items() if candidates})


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
    train[name] = jax.grad(lambda x, g, layer=layer: jnp.sum(layer(x) * g))
  return _entry({'train': _timings(train, (x, g), members)})


def _timings(candidates: dict[str, Callable], args: Sequence[np.ndarray],
             members: int) -> tuple[dict[str, float], dict[str, float], int]:
  """({candidate: fastest ms}, {candidate: median ms}, rounds): each compiled, called once,
  then timed over interleaved rounds; under jax.vmap when the layer runs in a group, since a
  vmapped layer is a different program."""
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


@contextlib.contextmanager
def _locked(path: str):
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  with open(f'{path}.lock', 'w') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(lock, fcntl.LOCK_UN)


def _read(path: str) -> dict:
  if not os.path.exists(path):
    return {}
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):  # a damaged cache is re-measured, not fatal
    return {}


def _write(path: str, measured: dict) -> None:
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  try:  # never half a file, for a process reading without the lock
    atomic_files.write_json(path, measured, indent=1, sort_keys=True)
  except atomic_files.DiskError as error:  # a cache: measured again next time
    logging.warning('%s', error)
