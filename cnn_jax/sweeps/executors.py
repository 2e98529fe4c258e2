"""Executing planned trials: alone, or as one vmapped group. Both train through
train.train_group, so a trial directory is the same whichever ran it. (Parallel trials are
the workers' business: sweeps/worker.py.)
"""
from __future__ import annotations

import os
from typing import Sequence

from absl import logging

from cnn_jax import console
from cnn_jax.engine import distributed
from cnn_jax.engine import results
from cnn_jax.engine import run_record
from cnn_jax.errors import ConfigError, WorkdirLockedError

FINISHED = ('ok', 'pruned', 'diverged', 'invalid')  # statuses a re-run does not repeat


def finished(run_dir: str) -> bool:
  """Whether the run directory holds a run a sweep does not repeat."""
  return (results.read(run_dir) or {}).get('status') in FINISHED


def run_alone(trial, run_dir: str, observers: Sequence = (), *, checked: bool = False) -> None:
  """Trains one trial into run_dir, or records it as invalid. Skips it when it finished, or
  when another process (a second sweep command, an array job) is training it. `observers`
  (engine/observers.py) watch the run; an invalid trial's are told of its record.
  `checked`: its config was validated already (by the worker, or the grid's declaration)."""
  from cnn_jax import train  # pylint: disable=g-import-not-at-top  (JAX after the allocator)
  if finished(run_dir):
    logging.info('trial %s: %s already', trial.name, results.read(run_dir)['status'])
    return
  logging.info('trial %s: %s', trial.name, trial.overrides)
  try:
    with console.progress_visible():
      train.train_group([trial.config], [run_dir], [list(observers)], checked=checked)
  except WorkdirLockedError as error:
    logging.warning('trial %s skipped: %s', trial.name, error)
  except ConfigError as error:  # the trial's config cannot work; the others may
    if distributed.is_writer():  # (process 0 of a distributed worker records it)
      record_invalid(trial, run_dir, observers, str(error))
    else:
      logging.error('trial %s is invalid: %s', trial.name, error)


def record_invalid(trial, run_dir: str, observers: Sequence, message: str) -> None:
  """Records a trial whose config cannot work ('invalid', and why) and tells its observers."""
  logging.error('trial %s is invalid: %s', trial.name, message)
  record = run_record.record_invalid(run_dir, trial.config, message)
  for observer in observers:
    observer.recorded(record)


def run_group(trials: Sequence, run_dirs: Sequence[str],
              observers: Sequence[Sequence] | None = None, *, checked: bool = False) -> None:
  """The trials as one vmapped group; alone (each recording what is wrong) if they cannot.
  `observers`: one list per trial; `checked`: as run_alone's, for the whole group."""
  observers = observers or [[] for _ in trials]
  from cnn_jax import train  # pylint: disable=g-import-not-at-top  (JAX after the allocator)
  logging.info('trials %s: one vmapped group', ', '.join(t.name for t in trials))
  try:
    train.train_group([t.config for t in trials], run_dirs, observers, checked=checked)
  except (ConfigError, WorkdirLockedError) as error:
    logging.error('the group could not train together (%s); running its trials alone', error)
    for trial, run_dir, watching in zip(trials, run_dirs, observers):
      run_alone(trial, run_dir, watching, checked=checked)


def run_dir(workdir: str, trial) -> str:
  return os.path.join(workdir, trial.name)
