"""Declaring hyperparameter sweeps: a grid (a list of trials, each a {config path: value}
dict) or a search (a distribution per config path, explored by Optuna).

An experiment file defines `get_sweep(h, arg=None)`; `h` is this module. A grid:

    def get_sweep(h, arg=None):
      return h.product([
          h.sweep('model.activation', ['relu', 'sigmoid']),
          h.sweep('seed', [0, 1]),
      ])

A search (sweeps/search.py checks it and turns it into Optuna's terms):

    def get_sweep(h, arg=None):
      return h.search({
          'optimizer.learning_rate': h.loguniform(0.01, 1.0),
          'optimizer.momentum': h.uniform(0.0, 0.95),
          'train.batch_size': h.choice([32, 64, 128]),
          'model.conv_features': h.choice([(4, 8), (8, 16), (16, 32)]),
      }, trials=32, sampler='tpe', pruner='median')

The keys are config paths; before any trial runs, each grid trial and each value a search's
space can give (sweeps/search.py) is checked as a single run's config is.
"""
from __future__ import annotations

import builtins
import dataclasses
import itertools
from typing import Any, Iterable, Sequence

from cnn_jax.errors import ConfigError

Trial = dict[str, Any]


# ---- search spaces ----

@dataclasses.dataclass(frozen=True)
class Float:
  """A float in [low, high]: on a log scale with log=True, on a grid of `step` otherwise."""
  low: float
  high: float
  log: bool = False
  step: float | None = None


@dataclasses.dataclass(frozen=True)
class Int:
  """An integer in [low, high] (both included), every `step`, or on a log scale."""
  low: int
  high: int
  step: int = 1
  log: bool = False


@dataclasses.dataclass(frozen=True)
class Choice:
  """One of the values (numbers, strings, booleans or tuples such as model.pool_type's)."""
  values: tuple


def uniform(low: float, high: float, step: float | None = None) -> Float:
  return Float(low, high, step=step)


def loguniform(low: float, high: float) -> Float:
  return Float(low, high, log=True)


def integer(low: int, high: int, step: int = 1, log: bool = False) -> Int:
  return Int(low, high, step, log)


def choice(values: Iterable[Any]) -> Choice:
  if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
    raise ConfigError(f'h.choice({values!r}) needs a list of values, e.g. h.choice(["relu", '
                      '"tanh"])')
  return Choice(tuple(values))


@dataclasses.dataclass(frozen=True)
class Search:
  """A search: its space, what it optimises, how long, and how (sweeps/search.py documents
  each field and checks them)."""
  space: dict[str, Float | Int | Choice]
  objective: str = 'validation/error'
  direction: str = ''          # '' -> from the metric: minimize a loss or error, maximize accuracy
  trials: int = 0              # configurations to try (0: no limit, then `seconds` must be set)
  seconds: float = 0.0         # wall-clock budget of the whole study (0: none)
  sampler: str = 'tpe'
  pruner: str = 'none'
  seeds: tuple = ()            # runs per configuration, the objective their mean ((): the
                               # config's own seed)
  pruner_startup_trials: int = 4  # the median pruner's: trials it lets finish before pruning
  sampler_startup_trials: int = 8  # TPE's random start


def search(space: dict[str, Float | Int | Choice], **fields) -> Search:
  """A search over `space` ({config path: uniform/loguniform/integer/choice}); `fields` are
  Search's (objective, direction, trials, seconds, sampler, pruner, seeds, ...)."""
  _check_declared('h.search', Search, space, fields)
  if 'seeds' in fields:
    seeds = fields['seeds']
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Iterable):
      raise ConfigError(f'h.search(seeds={seeds!r}) needs a list of seeds, e.g. seeds=[0, 1]')
    fields['seeds'] = tuple(seeds)
  return Search(dict(space), **fields)


@dataclasses.dataclass(frozen=True)
class PBT:
  """Population-based training: a population trained together that, every interval, ranks
  its members and lets the bottom quantile copy a top member's state and perturb its traced
  numbers (sweeps/pbt.py documents each field and checks them)."""
  space: dict[str, Float]
  population: int = 8
  interval_steps: int = 0      # one of these two: how often the population is ranked
  interval_epochs: float = 0.0
  objective: str = 'validation/error'
  direction: str = ''          # '' -> from the metric
  quantile: float = 0.25       # the bottom quantile copies from the top quantile
  factors: tuple = (0.8, 1.2)  # explore: multiply by one of these ...
  resample_probability: float = 0.25  # ... or, with this chance, draw from the space again
  seed: int = 0                # the initial draws and every selection


def pbt(space: dict[str, Float], **fields) -> PBT:
  """Population-based training over `space` ({traced config path: uniform/loguniform});
  `fields` are PBT's (population, interval_steps or interval_epochs, objective, quantile,
  factors, resample_probability, seed)."""
  _check_declared('h.pbt', PBT, space, fields)
  if 'factors' in fields and isinstance(fields['factors'], Iterable) and not isinstance(
      fields['factors'], (str, bytes)):
    fields['factors'] = tuple(fields['factors'])
  return PBT(dict(space), **fields)


def _check_declared(name: str, declaration, space, fields: dict) -> None:
  """The space is a dict and every field one of `declaration`'s (a dataclass whose first
  field is the space)."""
  unknown = set(fields) - {f.name for f in dataclasses.fields(declaration)}
  if unknown:
    raise ConfigError(f'{name} got unknown fields {sorted(unknown)}; allowed: '
                      f'{", ".join(f.name for f in dataclasses.fields(declaration)[1:])}')
  if not isinstance(space, dict):
    raise ConfigError(f'{name} needs a space {{config path: distribution}}, not '
                      f'{type(space).__name__}')


# ---- grids ----


def sweep(key: str, values: Iterable[Any]) -> list[Trial]:
  """One trial per value of one config path."""
  values = list(values)
  if not values:
    raise ConfigError(f'sweep over {key!r} has no values')
  return [{key: value} for value in values]


def product(sweeps: Sequence[list[Trial]]) -> list[Trial]:
  """Every combination of the given sweeps (the first varies slowest)."""
  return [_merge(combination) for combination in itertools.product(*sweeps)]


def zip(sweeps: Sequence[list[Trial]]) -> list[Trial]:  # pylint: disable=redefined-builtin
  """Trials taken side by side: the i-th of each sweep together (equal lengths)."""
  lengths = {len(s) for s in sweeps}
  if len(lengths) > 1:
    raise ConfigError(f'h.zip needs sweeps of equal length, got lengths {sorted(lengths)}')
  return [_merge(group) for group in builtins.zip(*sweeps)]


def chain(sweeps: Sequence[list[Trial]]) -> list[Trial]:
  """One sweep after another."""
  return [dict(trial) for s in sweeps for trial in s]


def fixed(key: str, value: Any) -> list[Trial]:
  """A single value, to combine with others in product/zip."""
  return [{key: value}]


def _merge(trials: Iterable[Trial]) -> Trial:
  merged: Trial = {}
  for trial in trials:
    clash = set(merged) & set(trial)
    if clash:
      raise ConfigError(f'the same key is swept twice in one trial: {sorted(clash)}')
    merged.update(trial)
  return merged
