"""Population-based training declared in an experiment file (sweeps/hyper.py's h.pbt), checked
before anything runs, and its exploit-and-explore rule (engine/population.py).

    def get_sweep(h, arg=None):
      return h.pbt({'optimizer.learning_rate': h.loguniform(0.01, 0.5),
                    'model.dense_dropout': h.uniform(0.1, 0.6)},
                   population=8, interval_epochs=1, quantile=0.25)

The fields of h.pbt:
  space        {config path: h.uniform / h.loguniform}: traced fields only (config/fields.py's
               `traced` role, the seed aside), the numbers a member's program takes as inputs;
               a path that changes the program is refused. An off-at-zero field's range must
               stay above 0 (at 0 its computation would leave the program)
  population   members, 2 or more, trained as vmapped groups
  interval_steps / interval_epochs   exactly one: how often the population is ranked
  objective    '<split>/<metric>' evaluated at each interval, on a validation split (never
               the test split, as for searches); direction '' takes it from the metric
  quantile     in (0, 0.5]: the bottom quantile copies a member drawn from the top quantile
  factors      what an explored number is multiplied by (one drawn per member), each > 0
  resample_probability   in [0, 1]: the chance it is drawn from its space instead
  seed         the initial draws and every selection
Every failure is one ConfigError line naming the field.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from cnn_jax.config import fields
from cnn_jax.engine import population
from cnn_jax.errors import ConfigError
from cnn_jax.sweeps import hyper
from cnn_jax.sweeps import search as search_lib
from cnn_jax.sweeps import trials as trials_lib


def check(declared: hyper.PBT, base, where: str) -> hyper.PBT:
  """The declaration with its direction filled in, or a ConfigError naming what is wrong.
  `base`: the experiment's config (every member starts from it)."""
  where = f'{where}: h.pbt'
  if not isinstance(declared.space, dict) or not declared.space:
    raise ConfigError(f'{where} needs a space: {{traced config path: h.uniform or '
                      'h.loguniform}}')
  for path, distribution in declared.space.items():
    _check_path(path, distribution, where)
  _integer(where, 'population', declared.population, 2)
  steps, epochs = declared.interval_steps, declared.interval_epochs
  if bool(steps) == bool(epochs):
    raise ConfigError(f'{where}: give exactly one of interval_steps (an integer >= 1) and '
                      f'interval_epochs (a number > 0), got {steps!r} and {epochs!r}')
  if steps:
    _integer(where, 'interval_steps', steps, 1)
  elif not search_lib.finite_number(epochs) or epochs <= 0:
    raise ConfigError(f'{where}: interval_epochs={epochs!r} must be a number > 0')
  direction = search_lib.check_objective(declared.objective, declared.direction, base, where)
  if not search_lib.finite_number(declared.quantile) or not 0 < declared.quantile <= 0.5:
    raise ConfigError(f'{where}: quantile={declared.quantile!r} must lie in (0, 0.5]')
  factors = declared.factors
  if not isinstance(factors, tuple) or not factors or not all(
      search_lib.finite_number(f) and f > 0 for f in factors):
    raise ConfigError(f'{where}: factors={factors!r} must be a list of numbers > 0, e.g. '
                      '[0.8, 1.2]')
  chance = declared.resample_probability
  if not search_lib.finite_number(chance) or not 0 <= chance <= 1:
    raise ConfigError(f'{where}: resample_probability={chance!r} must lie in [0, 1]')
  _integer(where, 'seed', declared.seed, 0)
  for path, distribution in declared.space.items():
    for value, role in search_lib.corner_values(distribution):
      trials_lib.checked_config(base, {path: value}, f"{where}'s {path} ({role})")
  return dataclasses.replace(declared, direction=direction)


def rule(checked: hyper.PBT) -> population.Rule:
  """The on-device exploit-and-explore rule of a checked declaration."""
  return population.Rule(
      bounds=tuple(population.Bounds(*path.split('.', 1), float(d.low), float(d.high), d.log)
                   for path, d in checked.space.items()),
      quantile=float(checked.quantile), factors=tuple(float(f) for f in checked.factors),
      resample_probability=float(checked.resample_probability),
      maximize=checked.direction == 'maximize')


def initial_configs(checked: hyper.PBT, base) -> list:
  """The population's members at the start: member k is `base` with seed base.seed + k (its
  own initial parameters, data order and dropout) and each path of the space drawn from it
  (log-uniformly on a log scale) by a generator seeded with the declaration's seed. Their
  draws differ, so every path of the space is a traced value of the group's program."""
  rng = np.random.default_rng(checked.seed)
  draws = {path: (np.exp(rng.uniform(np.log(d.low), np.log(d.high), checked.population))
                  if d.log else rng.uniform(d.low, d.high, checked.population))
           for path, d in checked.space.items()}
  return [trials_lib.apply_overrides(
      base, {'seed': base.seed + k, **{path: float(v[k]) for path, v in draws.items()}},
      f'h.pbt member {k}') for k in range(checked.population)]


def _check_path(path: str, distribution, where: str) -> None:
  if path not in fields.TRACED_NUMBERS:
    role = fields.BY_PATH[path].role if path in fields.BY_PATH else None
    why = ('is not a config field' if role is None else
           'only seeds a member' if path == 'seed' else
           f'is a {role} field: it changes the program, which a population shares')
    raise ConfigError(f"{where}: space path '{path}' {why}; PBT explores traced numbers: "
                      f'{", ".join(fields.TRACED_NUMBERS)}')
  if not isinstance(distribution, hyper.Float) or distribution.step is not None:
    raise ConfigError(f"{where}: space path '{path}' needs h.uniform(low, high) or "
                      f'h.loguniform(low, high), not {distribution!r}')
  search_lib.check_distribution(path, distribution, where)
  if fields.BY_PATH[path].off_at_zero and distribution.low <= 0:
    raise ConfigError(f"{where}: space path '{path}' needs low > 0 (got {distribution.low}): "
                      'at 0 its computation leaves the program, which a population shares')


def _integer(where: str, name: str, value, low: int) -> None:
  if not isinstance(value, int) or isinstance(value, bool) or value < low:
    raise ConfigError(f'{where}: {name}={value!r} must be an integer >= {low}')
