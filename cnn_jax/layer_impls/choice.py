"""Which implementation a layer runs, from its candidates' timings (choose), and the choice
of a whole model as a value (LayerImpls) that results.json records and a run reads back.

`model.conv_impl` / `model.pool_impl` name one implementation for every layer, or 'auto':
then each layer takes, on this backend, the candidate measured fastest for its own shape,
batch and member count (resolution.py). A convolution's forward pass, input gradient and
kernel gradient are chosen apart (implementations.ConvImpl); a pooling's forward and backward
together, since its backward needs its own forward.
"""
from __future__ import annotations

import dataclasses

from cnn_jax.errors import ConfigError
from cnn_jax.layer_impls import implementations

AUTO = 'auto'
XLA = 'xla'
CONV_CHOICES = (AUTO, *implementations.CONV_IMPLS)
POOL_CHOICES = (AUTO, *implementations.POOL_IMPLS)
# A candidate replaces XLA's own only if its time beats XLA's by 10%: a smaller gain is
# within how far one candidate's time moves between measurements on a busy machine, so it
# could flip on the next one (docs/LAYER_COSTS.md, "Timing the choice"); and XLA's own is
# computed once per step, with no custom VJP, where shifted slices are recomputed in each
# fusion that reads them (implementations.conv_shifted), so a standalone gain that small may
# not survive in the train step.
MARGIN = 0.10


def choose(ms: dict[str, float], margin: float = MARGIN) -> str:
  """The candidate a layer part runs, from each candidate's time in ms: XLA's own unless
  another beats it by `margin`; of those that do, the first (in the order of `ms`, which is
  CONV_IMPLS' or POOL_IMPLS') within `margin` of the fastest, so that a near-tie between two
  of them cannot flip either."""
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
  conv: tuple[implementations.ConvImpl, ...] = ()
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
    pool_impls = implementations.POOL_IMPLS
    for i in range(count):
      if described[f'pool{i}'] not in pool_impls:
        raise ConfigError(f'executor.layers pool{i}={described[f"pool{i}"]!r} is not known; '
                          f'allowed: {", ".join(pool_impls)}')
    return cls(tuple(implementations.ConvImpl.parse(described[f'conv{i}'],
                                                    f'executor.layers conv{i}')
                     for i in range(count)),
               tuple(described[f'pool{i}'] for i in range(count)))
