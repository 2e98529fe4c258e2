"""Hyperparameter sweeps: trials from an experiment's `get_sweep`, run into
`<sweep dir>/<index>-<name>/`, summarised in sweep.csv / sweep.md and TensorBoard's HParams.

Each trial directory is exactly what a single run writes (events, hparams, checkpoint,
results.json), so re-running a sweep skips finished trials and resumes an interrupted one
from its checkpoint. Trials that differ only in seed, optimizer numbers, dropout rates or
initializer scales can train as one vmapped group (groups.py, group_train.py); the strategy
is config.sweep.strategy, by default the measured best on the backend.
"""
from __future__ import annotations

import copy
import csv
import fcntl
import dataclasses
import inspect
import os
import re
from typing import Any

from absl import logging
import ml_collections

from cnn_jax import checkpoint
from cnn_jax import experiment_files
from cnn_jax import groups
from cnn_jax import hyper
from cnn_jax import models
from cnn_jax import optim
from cnn_jax import process_pool
from cnn_jax import results
from cnn_jax import tensorboard_writer

FINISHED = ('ok', 'diverged', 'invalid')  # statuses a re-run does not repeat


@dataclasses.dataclass(frozen=True)
class Trial:
  index: int
  overrides: dict[str, Any]
  config: ml_collections.ConfigDict

  @property
  def name(self) -> str:
    """'<index>-<short readable name>', safe as a directory name."""
    parts = [f'{key.split(".")[-1]}={_short(value)}' for key, value in self.overrides.items()]
    readable = re.sub(r'[^A-Za-z0-9=.,_-]+', '', ','.join(parts))[:80] or 'base'
    return f'{self.index:03d}-{readable}'


def load_trials(experiment: str,
                base: ml_collections.ConfigDict | None = None) -> list[Trial]:
  """'experiments/pool.py:sweep=arch' -> its trials, each with a checked full config.

  `base` (default: the file's get_config) is the config every trial starts from; launch.py
  passes the one with the command-line overrides. Raises ValueError before anything runs if
  a key is not a config field or a value has the wrong type for it.
  """
  path, _, arg = experiment.partition(':')
  module = experiment_files.load_module(path)
  if not hasattr(module, 'get_sweep'):
    raise ValueError(f'{path} defines no get_sweep(h, arg=None); nothing to sweep')
  accepts_arg = len(inspect.signature(module.get_sweep).parameters) > 1
  specs = module.get_sweep(hyper, arg or None) if accepts_arg else module.get_sweep(hyper)
  if base is None:
    base = module.get_config(arg) if arg else module.get_config()
  if not specs:
    raise ValueError(f'{experiment}: get_sweep returned no trials')
  return [Trial(i, dict(overrides), apply_overrides(base, overrides, f'{experiment} trial {i}'))
          for i, overrides in enumerate(specs)]


def apply_overrides(base: ml_collections.ConfigDict, overrides: dict[str, Any],
                    where: str) -> ml_collections.ConfigDict:
  """A copy of `base` with `overrides` ({'model.activation': 'tanh'}) applied and checked."""
  config = copy.deepcopy(base)
  for key, value in overrides.items():
    *parents, leaf = key.split('.')
    node = config
    for depth, part in enumerate(parents):
      if part not in node or not isinstance(node[part], ml_collections.ConfigDict):
        raise ValueError(f'{where}: {key!r} is not a config field '
                         f'({".".join(parents[:depth + 1])!r} is not a section)')
      node = node[part]
    if leaf not in node:
      raise ValueError(f'{where}: {key!r} is not a config field; fields there: '
                       f'{", ".join(sorted(node.keys()))}')
    node[leaf] = _checked_value(node[leaf], value, f'{where}: {key}')
  return config


def _checked_value(current, value, what):
  if isinstance(current, tuple):
    if not isinstance(value, (tuple, list)):
      raise ValueError(f'{what}={value!r} must be a tuple like {current!r}')
    return tuple(value)
  if isinstance(current, bool) or isinstance(value, bool):
    if not (isinstance(current, bool) and isinstance(value, bool)):
      raise ValueError(f'{what}={value!r} must be of type {type(current).__name__}')
    return value
  if isinstance(current, float) and isinstance(value, int):
    return float(value)
  if not isinstance(value, type(current)):
    raise ValueError(f'{what}={value!r} must be of type {type(current).__name__} '
                     f'(the config holds {current!r})')
  return value


def run(experiment: str, workdir: str, trial_index: int | None = None,
        base: ml_collections.ConfigDict | None = None) -> list[dict[str, Any]]:
  """Runs the sweep's unfinished trials (or only `trial_index`); returns the table rows.

  Unfinished trials that can share a program are grouped as `sweep.strategy` says
  (groups.py); the others, and any trial whose config fails its checks, run alone.
  """
  # pylint: disable=g-import-not-at-top  (JAX only after launch.py chose the allocator)
  import jax
  from cnn_jax import group_train
  trials = load_trials(experiment, base)
  if trial_index is not None and not 0 <= trial_index < len(trials):
    raise ValueError(f'--trial={trial_index}: the sweep has trials 0 to {len(trials) - 1}')
  for trial in trials:
    groups.validate_sweep_config(trial.config.sweep)
  os.makedirs(workdir, exist_ok=True)
  write_hparams_config(workdir, trials)
  pending = []
  for trial in trials:
    if trial_index is not None and trial.index != trial_index:
      continue
    done = results.read(os.path.join(workdir, trial.name))
    if done and done['status'] in FINISHED:
      logging.info('trial %s: %s already', trial.name, done['status'])
    else:
      pending.append(trial)
  groupable = [t for t in pending if _passes_checks(t.config)]
  alone = [t for t in pending if t not in groupable]  # to be recorded as invalid
  plan = groups.plan([t.config for t in groupable],
                     [checkpoint.saved_step(os.path.join(workdir, t.name)) for t in groupable],
                     jax.default_backend(), len(process_pool.available_cores()))
  in_processes = []
  for strategy, positions in plan:
    members = [groupable[p] for p in positions]
    if strategy == 'processes':
      in_processes += members
      continue
    if strategy == 'calibrate':
      faster = group_train.vmap_is_faster([t.config for t in members])
      strategy = 'vmap' if faster else 'sequential'
    if strategy == 'vmap':
      logging.info('trials %s: one vmapped group', ', '.join(t.name for t in members))
      try:
        group_train.train_group([t.config for t in members],
                                [os.path.join(workdir, t.name) for t in members])
        continue
      except ValueError as error:  # run them alone, which records what is wrong with each
        logging.error('the group could not train together (%s); running its trials alone',
                      error)
    alone += members
  if in_processes:
    process_pool.run_trials(in_processes, [os.path.join(workdir, t.name) for t in in_processes],
                            in_processes[0].config.sweep.processes)
  for trial in sorted(alone, key=lambda t: t.index):
    run_alone(trial, os.path.join(workdir, trial.name))
  rows = table_rows(workdir, trials)
  write_tables(workdir, trials, rows)
  return rows


def _passes_checks(config) -> bool:
  try:
    models.validate_model_config(config.model)
    optim.validate_optimizer_config(config.optimizer)
  except ValueError:
    return False
  return True


def run_alone(trial: Trial, run_dir: str) -> None:
  """Trains one trial into run_dir, or records it as invalid. Skips it when finished, or
  when another process (a second sweep command, an array job) holds its lock."""
  from cnn_jax import train  # pylint: disable=g-import-not-at-top
  os.makedirs(run_dir, exist_ok=True)
  with open(os.path.join(run_dir, '.lock'), 'w') as lock:
    try:
      fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      logging.warning('trial %s: another process is running it; skipped', trial.name)
      return
    if (results.read(run_dir) or {}).get('status') in FINISHED:
      return
    logging.info('trial %s: %s', trial.name, trial.overrides)
    try:
      train.train_and_evaluate(trial.config, run_dir)
    except ValueError as error:  # the trial's config cannot work; the others may
      logging.error('trial %s is invalid: %s', trial.name, error)
      results.write(run_dir, {'status': 'invalid', 'message': str(error), 'test_error': None,
                              'val_error': None, 'params': None, 'steps': 0,
                              'wall_seconds': 0.0, 'config': trial.config.to_dict()})


def write_hparams_config(workdir: str, trials: list[Trial]) -> None:
  """The HParams dashboard's experiment: the swept keys as hparams, the errors as metrics.

  Written once per sweep directory; each trial's run writes its own values."""
  marker = os.path.join(workdir, 'hparams_config.written')
  if os.path.exists(marker):
    return
  domains: dict[str, set] = {}
  for trial in trials:
    for key, value in trial.overrides.items():
      domains.setdefault(key, set()).add(tensorboard_writer.hparam_value(value))
  metrics = ['eval/test/error', 'eval/validation/error', 'eval/test/loss', 'train/loss']
  writer = tensorboard_writer.MetricWriter(workdir)
  writer.write_hparams_config({k: sorted(v) for k, v in domains.items()}, metrics)
  writer.close()
  open(marker, 'w').close()


def table_rows(workdir: str, trials: list[Trial]) -> list[dict[str, Any]]:
  """One row per trial, best first: finished 'ok' trials by validation error (test error
  when there is no validation split), then the rest in trial order."""
  rows = []
  for trial in trials:
    done = results.read(os.path.join(workdir, trial.name)) or {}
    rows.append({'index': trial.index, 'trial': trial.name, **trial.overrides,
                 'status': done.get('status', 'pending'), 'val_error': done.get('val_error'),
                 'test_error': done.get('test_error'), 'params': done.get('params'),
                 'seconds': done.get('wall_seconds'), 'message': done.get('message', '')})
  def rank(row):
    if row['status'] != 'ok':
      return (1, 0.0, row['index'])
    error = row['val_error'] if row['val_error'] is not None else row['test_error']
    return (0, error, row['index'])
  return sorted(rows, key=rank)


def write_tables(workdir: str, trials: list[Trial], rows: list[dict[str, Any]]) -> None:
  keys = list(dict.fromkeys(k for t in trials for k in t.overrides))
  columns = ['index', 'trial', *keys, 'status', 'val_error', 'test_error', 'params', 'seconds',
             'message']
  with open(os.path.join(workdir, 'sweep.csv'), 'w', newline='') as f:
    writer = csv.DictWriter(f, columns, extrasaction='ignore')
    writer.writeheader()
    writer.writerows(rows)  # error rates as fractions, like results.json
  header = ['#', *keys, 'status', 'val error', 'test error', 'params', 'seconds']
  lines = ['| ' + ' | '.join(header) + ' |', '|' + ' --- |' * len(header)]
  for row in rows:
    cells = [str(row['index']), *(_short(row.get(k, '')) for k in keys), row['status'],
             results.percent(row['val_error']), results.percent(row['test_error']),
             f'{row["params"]:,}' if row['params'] else '-',
             f'{row["seconds"]:.0f}' if row['seconds'] else '-']
    lines.append('| ' + ' | '.join(cells) + ' |')
  invalid = [r for r in rows if r['status'] in ('invalid', 'diverged')]
  notes = [f'- trial {r["index"]} ({r["status"]}): {r["message"]}' for r in invalid]
  with open(os.path.join(workdir, 'sweep.md'), 'w') as f:
    f.write('\n'.join(lines + ([''] + notes if notes else [])) + '\n')


def _short(value) -> str:
  if isinstance(value, (tuple, list)):
    return '-'.join(str(v) for v in value)
  return str(value)
