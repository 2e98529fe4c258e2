"""A sweep's trials: read from an experiment file's `get_sweep(h, arg=None)` (built with
sweeps/hyper.py), each a {config path: value} dict applied to the base config. A grid's
trials are known at once, and each is validated whole before anything runs (checked_config);
a search's (sweeps/search.py) come from its study one by one, its space's values checked
before (search.check).
"""
from __future__ import annotations

import copy
import dataclasses
import inspect
import re
from typing import Any

import ml_collections

from cnn_jax.config import files
from cnn_jax.config import validation
from cnn_jax.errors import ConfigError
from cnn_jax.sweeps import hyper


@dataclasses.dataclass(frozen=True)
class Trial:
  index: int
  overrides: dict[str, Any]
  config: ml_collections.ConfigDict

  @property
  def name(self) -> str:
    """'<index>-<short readable name>', safe as a directory name."""
    parts = [f'{key.split(".")[-1]}={short(value)}' for key, value in self.overrides.items()]
    readable = re.sub(r'[^A-Za-z0-9=.,_-]+', '', ','.join(parts))[:80] or 'base'
    return f'{self.index:03d}-{readable}'


def read_declaration(experiment: str, base: ml_collections.ConfigDict | None = None):
  """(what get_sweep returned: a list of overrides or an h.search, the base config)."""
  path, _, arg = experiment.partition(':')
  module = files.load_module(path)
  if not hasattr(module, 'get_sweep'):
    raise ConfigError(f'{path} defines no get_sweep(h, arg=None); nothing to sweep')
  accepts_arg = len(inspect.signature(module.get_sweep).parameters) > 1
  declared = module.get_sweep(hyper, arg or None) if accepts_arg else module.get_sweep(hyper)
  if base is None:
    base = module.get_config(arg) if arg else module.get_config()
  if not declared:
    raise ConfigError(f'{experiment}: get_sweep returned no trials')
  return declared, base


def grid_trials(experiment: str, specs, base) -> list[Trial]:
  """The grid's trials, each config checked as a single run's is before any of them runs."""
  return [Trial(i, dict(overrides), checked_config(base, overrides,
                                                   f'{experiment} trial {i} {overrides}'))
          for i, overrides in enumerate(specs)]


def checked_config(base: ml_collections.ConfigDict, overrides: dict[str, Any],
                   where: str) -> ml_collections.ConfigDict:
  """`base` with `overrides` applied and validated by the one validation of a config
  (config/validation.validate, the field table's checks): a grid's trial or a value of a
  search's space, before anything runs. A ConfigError names `where`, then the field and
  its allowed values."""
  config = apply_overrides(base, overrides, where)
  try:
    validation.validate(config)
  except ConfigError as error:
    raise ConfigError(f'{where}: {error}') from None
  return config


def apply_overrides(base: ml_collections.ConfigDict, overrides: dict[str, Any],
                    where: str) -> ml_collections.ConfigDict:
  """A copy of `base` with `overrides` ({'model.activation': 'tanh'}) applied and checked."""
  config = copy.deepcopy(base)
  for key, value in overrides.items():
    *parents, leaf = key.split('.')
    node = config
    for depth, part in enumerate(parents):
      if part not in node or not isinstance(node[part], ml_collections.ConfigDict):
        raise ConfigError(f'{where}: {key!r} is not a config field '
                         f'({".".join(parents[:depth + 1])!r} is not a section)')
      node = node[part]
    if leaf not in node:
      raise ConfigError(f'{where}: {key!r} is not a config field; fields there: '
                       f'{", ".join(sorted(node.keys()))}')
    node[leaf] = _checked_value(node[leaf], value, f'{where}: {key}')
  return config


def _checked_value(current, value, what):
  if isinstance(current, tuple):
    if not isinstance(value, (tuple, list)):
      raise ConfigError(f'{what}={value!r} must be a tuple like {current!r}')
    return tuple(value)
  if isinstance(current, bool) or isinstance(value, bool):
    if not (isinstance(current, bool) and isinstance(value, bool)):
      raise ConfigError(f'{what}={value!r} must be of type {type(current).__name__}')
    return value
  if isinstance(current, float) and isinstance(value, int):
    return float(value)
  if not isinstance(value, type(current)):
    raise ConfigError(f'{what}={value!r} must be of type {type(current).__name__} '
                     f'(the config holds {current!r})')
  return value


def short(value) -> str:
  """A swept value as a short name or table cell: tuples joined with '-'; a float with more
  digits than a person types (a search's samples) to 4 significant ones, others as written
  (a grid's directory names stay what they were)."""
  if isinstance(value, (tuple, list)):
    return '-'.join(short(v) for v in value)
  if isinstance(value, float) and len(str(value)) > 8:
    return f'{value:.4g}'
  return str(value)
