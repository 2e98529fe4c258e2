"""Running a sweep: `<sweep dir>/<index>-<name>/` per trial, then the tables.

    trials (trials.py) -> plan (planning.py) -> execute (executors.py) -> tables (tables.py)

Each trial directory is exactly what a single run writes (events, hparams, checkpoint,
results.json), so re-running a sweep skips finished trials and resumes an interrupted one
from its checkpoint.
"""
from __future__ import annotations

import os
from typing import Any

from absl import logging
import ml_collections

from cnn_jax import console
from cnn_jax.config import validation
from cnn_jax.engine import checkpoint
from cnn_jax.engine import results
from cnn_jax.errors import ConfigError
from cnn_jax.sweeps import executors
from cnn_jax.sweeps import planning
from cnn_jax.sweeps import process_pool
from cnn_jax.sweeps import tables
from cnn_jax.sweeps import trials as trials_lib


def run(experiment: str, workdir: str, trial_index: int | None = None,
        base: ml_collections.ConfigDict | None = None) -> list[dict[str, Any]]:
  """Runs the sweep's unfinished trials (or only `trial_index`); returns the table rows.
  Called from plain Python, it prints its progress to stderr (console.py)."""
  with console.progress_visible():
    return _run(experiment, workdir, trial_index, base)


def _run(experiment, workdir, trial_index, base) -> list[dict[str, Any]]:
  import jax  # pylint: disable=g-import-not-at-top  (JAX only after the allocator)
  trials = trials_lib.load_trials(experiment, base)
  if trial_index is not None and not 0 <= trial_index < len(trials):
    raise ConfigError(f'--trial={trial_index}: the sweep has trials 0 to {len(trials) - 1}')
  for trial in trials:
    validation.validate_sweep(trial.config.sweep)
  os.makedirs(workdir, exist_ok=True)
  tables.write_hparams_config(workdir, trials)
  pending = []
  for trial in trials:
    if trial_index is not None and trial.index != trial_index:
      continue
    done = results.read(executors.run_dir(workdir, trial))
    if done and done['status'] in executors.FINISHED:
      logging.info('trial %s: %s already', trial.name, done['status'])
    else:
      pending.append(trial)
  valid, invalid = [], []
  for trial in pending:  # invalid ones run alone, which records what is wrong
    try:
      validation.validate(trial.config)
      valid.append(trial)
    except ConfigError:
      invalid.append(trial)
  backend = jax.default_backend()
  plan = planning.plan(
      [t.config for t in valid],
      [checkpoint.saved_step(executors.run_dir(workdir, t)) for t in valid], backend,
      len(process_pool.available_cores()), planning.read_measurement(backend))
  alone, in_processes = list(invalid), []
  for strategy, positions in plan:
    members = [valid[p] for p in positions]
    if strategy == 'vmap':
      executors.run_group(members, [executors.run_dir(workdir, t) for t in members])
    elif strategy == 'processes':
      in_processes += members
    else:
      alone += members
  if in_processes:
    executors.run_in_processes(in_processes,
                               [executors.run_dir(workdir, t) for t in in_processes],
                               in_processes[0].config.sweep.processes)
  for trial in sorted(alone, key=lambda t: t.index):
    executors.run_alone(trial, executors.run_dir(workdir, trial))
  rows = tables.table_rows(workdir, trials)
  tables.write_tables(workdir, trials, rows)
  return rows
