"""Declaring hyperparameter sweeps: lists of trials, each a {config path: value} dict.

An experiment file defines `get_sweep(h, arg=None)` and builds its trials with these:

    def get_sweep(h, arg=None):
      return h.product([
          h.sweep('model.activation', ['relu', 'sigmoid']),
          h.sweep('seed', [0, 1]),
      ])

`h` is this module. The keys are config paths; launch.py checks each against the config
before any trial runs.
"""
from __future__ import annotations

import builtins
import itertools
from typing import Any, Iterable, Sequence

Trial = dict[str, Any]


def sweep(key: str, values: Iterable[Any]) -> list[Trial]:
  """One trial per value of one config path."""
  values = list(values)
  if not values:
    raise ValueError(f'sweep over {key!r} has no values')
  return [{key: value} for value in values]


def product(sweeps: Sequence[list[Trial]]) -> list[Trial]:
  """Every combination of the given sweeps (the first varies slowest)."""
  return [_merge(combination) for combination in itertools.product(*sweeps)]


def zip(sweeps: Sequence[list[Trial]]) -> list[Trial]:  # pylint: disable=redefined-builtin
  """Trials taken side by side: the i-th of each sweep together (equal lengths)."""
  lengths = {len(s) for s in sweeps}
  if len(lengths) > 1:
    raise ValueError(f'h.zip needs sweeps of equal length, got lengths {sorted(lengths)}')
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
      raise ValueError(f'the same key is swept twice in one trial: {sorted(clash)}')
    merged.update(trial)
  return merged
