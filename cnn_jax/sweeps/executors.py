"""Executing planned trials: alone in this process, as one vmapped group, or in pinned
worker processes. Every path trains through the engine (train.train_and_evaluate, or
train.train_group), so a trial directory is the same whichever ran it.
"""
from __future__ import annotations

import os
from typing import Sequence

from absl import logging

from cnn_jax.engine import results
from cnn_jax.engine import run_record
from cnn_jax.errors import ConfigError, WorkdirLockedError
from cnn_jax.sweeps import process_pool

FINISHED = ('ok', 'pruned', 'diverged', 'invalid')  # statuses a re-run does not repeat


def run_alone(trial, run_dir: str) -> None:
  """Trains one trial into run_dir, or records it as invalid. Skips it when it finished, or
  when another process (a second sweep command, an array job) is training it."""
  from cnn_jax import train  # pylint: disable=g-import-not-at-top  (JAX after the allocator)
  if (results.read(run_dir) or {}).get('status') in FINISHED:
    return
  logging.info('trial %s: %s', trial.name, trial.overrides)
  try:
    train.train_and_evaluate(trial.config, run_dir)
  except WorkdirLockedError as error:
    logging.warning('trial %s skipped: %s', trial.name, error)
  except ConfigError as error:  # the trial's config cannot work; the others may
    logging.error('trial %s is invalid: %s', trial.name, error)
    run_record.record_invalid(run_dir, trial.config, str(error))


def run_group(trials: Sequence, run_dirs: Sequence[str]) -> None:
  """The trials as one vmapped group; alone (each recording what is wrong) if they cannot."""
  from cnn_jax import train  # pylint: disable=g-import-not-at-top  (JAX after the allocator)
  logging.info('trials %s: one vmapped group', ', '.join(t.name for t in trials))
  try:
    train.train_group([t.config for t in trials], run_dirs)
  except (ConfigError, WorkdirLockedError) as error:
    logging.error('the group could not train together (%s); running its trials alone', error)
    for trial, run_dir in zip(trials, run_dirs):
      run_alone(trial, run_dir)


def run_in_processes(trials: Sequence, run_dirs: Sequence[str], count: int) -> None:
  process_pool.run_in_workers(run_alone, list(zip(trials, run_dirs)), count)


def run_dir(workdir: str, trial) -> str:
  return os.path.join(workdir, trial.name)
