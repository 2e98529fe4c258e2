"""The implementations a model's layers run: named by the config, or for 'auto' read from
this machine's cache (cache.py) or, where it lacks a layer, timed now (timing.py) and chosen
(choice.choose). Timing takes seconds, so it is a visible step: one line says what is being
timed and where it is kept; then one line per layer timed now (every candidate's time and
the winner), and one for those read from the cache, with the command that times them again.
"""
from __future__ import annotations

import dataclasses

from absl import logging
import jax

from cnn_jax import cache_dir
from cnn_jax import machine
from cnn_jax.layer_impls import cache
from cnn_jax.layer_impls import choice
from cnn_jax.layer_impls import implementations
from cnn_jax.layer_impls import timing
from cnn_jax.layer_impls.descriptors import ConvLayer
from cnn_jax.layer_impls.descriptors import PoolLayer

REMEASURE = 'python -m cnn_jax.time_layers --config=<experiment>'


@dataclasses.dataclass(frozen=True)
class Measurement:
  """One layer's timings as the cache holds them, and whether this process measured them."""
  name: str  # 'conv0', 'pool1'
  layer: ConvLayer | PoolLayer
  # {'version', 'rounds', 'measured', 'ms': {part: {candidate: fastest ms}}, 'median_ms': ...}
  entry: dict
  fresh: bool  # measured now, not read from the cache

  def chosen(self) -> dict[str, str]:
    """Each timed part's candidate: 'forward', 'input_grad', 'kernel_grad' or 'train'."""
    return {part: choice.choose(ms) for part, ms in self.entry['ms'].items()}

  def line(self) -> str:
    """'forward xla 2.46 im2col 1.53 shifted 0.35 -> shifted (medians 3.01 1.80 0.41); ...'"""
    chosen = self.chosen()
    return '; '.join(
        f'{part} ' + ' '.join(f'{name} {ms:.2f}' for name, ms in times.items())
        + f' -> {chosen[part]} (medians '
        + ' '.join(f'{ms:.2f}' for ms in self.entry['median_ms'][part].values()) + ')'
        for part, times in self.entry['ms'].items())

  def conv_impl(self) -> implementations.ConvImpl:
    chosen = self.chosen()
    # An input gradient nobody computes follows the forward (one implementation, no custom VJP).
    return implementations.ConvImpl(chosen['forward'],
                                    chosen.get('input_grad', chosen['forward']),
                                    chosen['kernel_grad'])


def resolve(named: dict[str, ConvLayer | PoolLayer], conv_impl: str, pool_impl: str,
            batch: int, members: int = 1, path: str | None = None,
            deterministic: bool = False) -> choice.LayerImpls:
  """The implementations a model runs. `named`: every convolution and pooling of the model
  in order, {'conv0': ConvLayer, 'pool0': PoolLayer, 'conv1': ...} (a conv layer without
  pooling has no 'pool<i>'); `conv_impl` / `pool_impl`: one implementation for every layer,
  or choice.AUTO to measure each. `batch` is the per-device batch; `members` the size of a
  vmapped group. `deterministic` (train.deterministic): max pools run as 'reshape', whose
  gradient compiles under XLA's deterministic ops (validation checks that each can)."""
  path = path or cache_dir.cache_dir(cache.MEASUREMENTS)
  auto = {name: layer for name, layer in named.items()
          if (conv_impl == choice.AUTO if isinstance(layer, ConvLayer)
              else pool_impl == choice.AUTO and not (deterministic and layer.kind == 'max'))}
  found = measure(auto, batch, members, path)
  log(found, batch, members, path)
  convs, pools = [], []
  for i in range(sum(isinstance(layer, ConvLayer) for layer in named.values())):
    convs.append(found[f'conv{i}'].conv_impl() if f'conv{i}' in found
                 else implementations.ConvImpl.everywhere(conv_impl))
    pool = named.get(f'pool{i}')
    if pool is None:
      pools.append(choice.XLA)
    elif deterministic and pool.kind == 'max':
      pools.append('reshape')
    else:
      pools.append(found[f'pool{i}'].chosen()['train'] if f'pool{i}' in found else pool_impl)
  chosen = choice.LayerImpls(tuple(convs), tuple(pools))
  logging.info('Layer implementations (%s): %s', jax.default_backend(), chosen.describe())
  return chosen


def measure(named: dict[str, ConvLayer | PoolLayer], batch: int, members: int, path: str,
            again: bool = False) -> dict[str, Measurement]:
  """Each layer's timings: read from the cache at `path` where it holds a current entry for
  this machine, else (or for all, `again`) measured now and written there."""
  key = machine.machine_key()
  wanted = {name: layer.key(batch, members) for name, layer in named.items()}
  mine = cache.read(path).get(key, {})
  if not again and all(cache.current(mine.get(k)) for k in wanted.values()):
    return {name: Measurement(name, named[name], mine[k], False) for name, k in wanted.items()}
  # One process measures at a time: sweep workers starting together would otherwise time
  # each other's measurements, and the last to write would overrule choices already made.
  with cache.locked(path):
    everything = cache.read(path)
    mine = everything.setdefault(key, {})
    fresh = {k: name for name, k in wanted.items() if again or not cache.current(mine.get(k))}
    if fresh:
      logging.info('Timing the implementations of %d layer%s for this machine (%s; cached in '
                   '%s): %s', len(fresh), 's' if len(fresh) > 1 else '',
                   'again' if again else 'once', path, ', '.join(fresh.values()))
    for k, name in fresh.items():
      mine[k] = cache.entry(timing.time_layer(named[name], batch, members))
    if fresh:
      cache.write(path, everything)
  return {name: Measurement(name, named[name], mine[k], k in fresh)
          for name, k in wanted.items()}


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

