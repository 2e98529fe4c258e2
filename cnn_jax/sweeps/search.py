"""A search declared in an experiment file (sweeps/hyper.py's h.search), checked before
anything runs and put in Optuna's terms.

The fields of h.search:
  space        {config path: h.uniform / h.loguniform / h.integer / h.choice}
  objective    '<split>/<metric>' of the last evaluation (default 'validation/error'); the
               split must be one the experiment evaluates, and never 'test': choosing on the
               test split leaks it into the result, so the test error of the best trial is
               reported apart instead
  direction    'minimize' or 'maximize' ('' : from the metric, engine/metrics.py)
  trials       configurations to try; seconds: the study's wall-clock budget (at least one)
  sampler      SAMPLERS; pruner: PRUNERS (checked at every evaluation, i.e. each epoch end)
  seeds        runs per configuration (they share a program); the objective is their mean
               (default: the config's own seed). Seeds trained together (a vmapped group)
               report their mean at each evaluation; seeds trained one after another report
               the first's value, and the later ones follow its pruning verdict
Every failure is one ConfigError line naming the field.
"""
from __future__ import annotations

import math
from typing import Any

from cnn_jax.engine import metrics
from cnn_jax.errors import ConfigError
from cnn_jax.sweeps import hyper
from cnn_jax.sweeps import trials as trials_lib

# Optuna's samplers that need no package beyond Optuna and SciPy (which JAX brings): the GP
# and CMA-ES samplers need PyTorch or cmaes.
SAMPLERS = ('tpe', 'random', 'grid', 'qmc')
PRUNERS = ('none', 'median', 'halving', 'hyperband')
DIRECTIONS = ('minimize', 'maximize')


def check(declared: hyper.Search, base, where: str) -> hyper.Search:
  """The search with its direction filled in, or a ConfigError naming what is wrong.
  `base`: the experiment's config (every trial starts from it)."""
  if not isinstance(declared.space, dict) or not declared.space:
    raise ConfigError(f'{where}: h.search needs a space: {{config path: distribution}}')
  for path, distribution in declared.space.items():
    check_distribution(path, distribution, where)
  if 'seed' in declared.space:
    raise ConfigError(f"{where}: 'seed' cannot be searched; give h.search(seeds=...) the "
                      'seeds every configuration runs with')
  direction = check_objective(declared.objective, declared.direction, base, where)
  _one_of(where, 'sampler', declared.sampler, SAMPLERS)
  _one_of(where, 'pruner', declared.pruner, PRUNERS)
  if declared.sampler == 'grid' and not all(isinstance(d, hyper.Choice)
                                            for d in declared.space.values()):
    raise ConfigError(f"{where}: sampler='grid' needs h.choice for every path of the space")
  for field in ('trials', 'pruner_startup_trials', 'sampler_startup_trials'):
    value = getattr(declared, field)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
      raise ConfigError(f'{where}: {field}={value!r} must be an integer >= 0')
  if not isinstance(declared.seconds, (int, float)) or declared.seconds < 0:
    raise ConfigError(f'{where}: seconds={declared.seconds!r} must be a number >= 0')
  if not declared.trials and not declared.seconds:
    raise ConfigError(f'{where}: a search needs a budget: trials=N and/or seconds=S')
  seeds = declared.seeds or (base.seed,)
  if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds) or len(
      set(seeds)) < len(seeds):
    raise ConfigError(f'{where}: seeds={declared.seeds!r} must be distinct integers >= 0')
  checked = hyper.Search(**{**declared.__dict__, 'direction': direction, 'seeds': tuple(seeds)})
  _check_values(checked, base, where)
  return checked


def check_objective(objective, direction: str, base, where: str) -> str:
  """The direction of `objective` ('<split>/<metric>' of an evaluation, never the test
  split; a search's or a population's), filled in from the metric when '', or a ConfigError
  naming what is wrong."""
  if not isinstance(objective, str):
    raise ConfigError(f'{where}: objective={objective!r} must be a string such as '
                      "'validation/error'")
  split, _, name = objective.partition('/')
  evaluated = ('validation', 'test') if base.data.validation != 'none' else ('test',)
  if split not in ('validation', 'test') or name not in metrics.BY_NAME or not (
      metrics.EVAL in metrics.BY_NAME[name].phases and metrics.BY_NAME[name].scalar):
    scalars = [m.name for m in metrics.METRICS if metrics.EVAL in m.phases and m.scalar]
    raise ConfigError(f'{where}: objective={objective!r} is not a metric of an '
                      f'evaluation; allowed: validation/<{"|".join(scalars)}>')
  if split == 'test':
    raise ConfigError(f'{where}: objective={objective!r} selects on the test split, '
                      'which leaks it into the result; search on a validation split '
                      "(data.validation='train_random' and data.num_validation) and read "
                      "the best trial's test error apart")
  if split not in evaluated:
    raise ConfigError(f"{where}: objective={objective!r} needs a validation split, "
                      "and the experiment has data.validation='none'; set "
                      "data.validation='train_random' and data.num_validation")
  direction = direction or ('maximize' if metrics.BY_NAME[name].higher_is_better else 'minimize')
  _one_of(where, 'direction', direction, DIRECTIONS)
  return direction


def _check_values(declared: hyper.Search, base, where: str) -> None:
  """Every value the space can give a path, as config validation checks a single run
  (trials.checked_config): each choice, each range's ends. A value is checked with the
  other paths at their first value, so that every config checked is one the search can
  sample; a value that is wrong only beside another path's is still found when that trial
  runs (recorded 'invalid')."""
  corners = {path: corner_values(d) for path, d in declared.space.items()}
  first = {path: values[0][0] for path, values in corners.items()}
  trials_lib.checked_config(base, first, f'{where}: the search with each path at its first '
                            f'value {first}')
  for path, values in corners.items():
    for value, role in values:
      trials_lib.checked_config(base, {**first, path: value},
                                f"{where}: the search's {path} ({role})")
  for seed in declared.seeds:
    trials_lib.checked_config(base, {**first, 'seed': seed},
                              f'{where}: h.search(seeds={list(declared.seeds)})')


def _one_of(where, field, value, allowed):
  if value not in allowed:
    raise ConfigError(f'{where}: {field}={value!r} is not supported; allowed: '
                      f'{", ".join(allowed)}')


def finite_number(value) -> bool:
  """A finite int or float (not a bool): what a declaration's numbers must be."""
  return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_distribution(path: str, distribution, where: str) -> None:
  what = f'{where}: {path}'
  if isinstance(distribution, hyper.Choice):
    if not distribution.values:
      raise ConfigError(f'{what}: h.choice needs at least one value')
    try:
      distinct = len({encode(v) for v in distribution.values})
    except TypeError:
      raise ConfigError(f'{what}: h.choice{distribution.values!r}: values must be numbers, '
                        'strings, booleans or tuples of them') from None
    if distinct < len(distribution.values):
      raise ConfigError(f'{what}: h.choice{distribution.values!r} holds a value twice')
    return
  if isinstance(distribution, hyper.Float):
    numbers = (distribution.low, distribution.high) + (
        (distribution.step,) if distribution.step is not None else ())
  elif isinstance(distribution, hyper.Int):
    numbers = (distribution.low, distribution.high, distribution.step)
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in numbers):
      raise ConfigError(f'{what}: h.integer needs integer bounds and step, got {numbers}')
  else:
    raise ConfigError(f'{what}: {distribution!r} is not a distribution; use h.uniform, '
                      'h.loguniform, h.integer or h.choice')
  if not all(finite_number(n) for n in numbers):
    raise ConfigError(f'{what}: bounds must be finite numbers, got {numbers}')
  if not distribution.low < distribution.high:
    raise ConfigError(f'{what}: low={distribution.low} must be below high={distribution.high}')
  if distribution.log and distribution.low <= 0:
    raise ConfigError(f'{what}: a log scale needs low > 0, got low={distribution.low}')
  step = distribution.step
  if step is not None and step <= 0:
    raise ConfigError(f'{what}: step={step} must be > 0')
  if distribution.log and step not in (None, 1):
    raise ConfigError(f'{what}: a log scale takes no step')


def corner_values(distribution) -> list[tuple[Any, str]]:
  """(value, what it is) for each value that stands for the distribution: its choices, or
  its range's ends. The field table's numeric ranges are intervals, so a range whose ends
  are allowed holds only allowed values; the exception is an integer sentinel next to 0
  (train.num_train_steps: -1 or >= 1), so an integer range crossing 0 is checked at -1, 0
  and 1 too. A float range samples floats even between integer bounds (so h.uniform(16,
  64) cannot set train.batch_size)."""
  d = distribution
  if isinstance(d, hyper.Choice):
    return [(v, f'value {i + 1} of h.choice{d.values!r}') for i, v in enumerate(d.values)]
  shown = f'{"h.loguniform" if d.log else "h.uniform"}({d.low}, {d.high})' if isinstance(
      d, hyper.Float) else f'h.integer({d.low}, {d.high})'
  kind = float if isinstance(d, hyper.Float) else int
  values = [(kind(d.low), f'the low end of {shown}'), (kind(d.high), f'the high end of {shown}')]
  if isinstance(d, hyper.Int):
    values += [(v, f'{v} in {shown}') for v in (-1, 0, 1)
               if v in range(d.low, d.high + 1, d.step) and v not in (d.low, d.high)]
  return values


# ---- Optuna's terms ----

def encode(value) -> Any:
  """A choice as Optuna stores it: tuples as their short names ('8-16'), others as they are
  (Optuna keeps only None, booleans, numbers and strings)."""
  return trials_lib.short(value) if isinstance(value, (tuple, list)) else value


def distributions(declared: hyper.Search) -> dict[str, Any]:
  """{path: optuna distribution} of the space."""
  import optuna  # pylint: disable=g-import-not-at-top  (only searches need it)
  found = {}
  for path, d in declared.space.items():
    if isinstance(d, hyper.Choice):
      found[path] = optuna.distributions.CategoricalDistribution(
          [encode(v) for v in d.values])
    elif isinstance(d, hyper.Float):
      found[path] = optuna.distributions.FloatDistribution(float(d.low), float(d.high),
                                                           log=d.log, step=d.step)
    else:
      found[path] = optuna.distributions.IntDistribution(d.low, d.high, log=d.log,
                                                         step=d.step)
  return found


def overrides_of(declared: hyper.Search, params: dict[str, Any]) -> dict[str, Any]:
  """A trial's Optuna params as config overrides (choices decoded back to their values)."""
  overrides = {}
  for path, d in declared.space.items():
    value = params[path]
    if isinstance(d, hyper.Choice):
      value = next(v for v in d.values if encode(v) == value)
    overrides[path] = value
  return overrides


def sampler(declared: hyper.Search, seed: int):
  """A new sampler of the declared kind. TPE is told of the trials other workers are running
  (constant liar), so that a batch of asks is not K copies of one point."""
  import warnings  # pylint: disable=g-import-not-at-top
  import optuna  # pylint: disable=g-import-not-at-top
  with warnings.catch_warnings():  # multivariate TPE and the constant liar are "experimental"
    warnings.simplefilter('ignore', optuna.exceptions.ExperimentalWarning)
    return _sampler(declared, seed)


def _sampler(declared: hyper.Search, seed: int):
  import optuna  # pylint: disable=g-import-not-at-top
  if declared.sampler == 'tpe':
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True, multivariate=True,
                                      n_startup_trials=declared.sampler_startup_trials)
  if declared.sampler == 'random':
    return optuna.samplers.RandomSampler(seed=seed)
  if declared.sampler == 'qmc':
    return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
  return optuna.samplers.GridSampler(
      {path: [encode(v) for v in d.values] for path, d in declared.space.items()}, seed=seed)


def pruner(declared: hyper.Search):
  """The declared pruner. Its resource is the evaluation count (epochs); Hyperband reads
  the largest from the first trial that finishes."""
  import optuna  # pylint: disable=g-import-not-at-top
  if declared.pruner == 'median':
    return optuna.pruners.MedianPruner(n_startup_trials=declared.pruner_startup_trials)
  if declared.pruner == 'halving':
    return optuna.pruners.SuccessiveHalvingPruner(min_resource=1)
  if declared.pruner == 'hyperband':
    return optuna.pruners.HyperbandPruner(min_resource=1, max_resource='auto')
  return optuna.pruners.NopPruner()
