"""Which trials a worker takes from the study, how many at once, and how it gives them back.

A worker takes queued trials first (a grid's, and retries of trials whose worker stopped:
those whose runs this sweep directory holds at once, the others after HANDOVER heartbeat
periods, for the machine that holds their checkpoints), then, for a search with budget left,
new ones from the sampler; several at once only when its runs would train as one vmapped
group (`group_size`). A worker that stops on an exception hands its trials back
(`hand_back`) rather than leave them to go stale. The study's own side of claiming (a
trial moved from waiting to running for one caller, the heartbeat) is study.py's.
"""
from __future__ import annotations

import glob
import os
import socket
import time
from typing import Sequence

from absl import logging
import optuna

from cnn_jax.sweeps import declaration
from cnn_jax.sweeps import planning
from cnn_jax.sweeps import study as study_lib
from cnn_jax.sweeps import study_storage
from cnn_jax.sweeps import trials as trials_lib


def runs_of(sweep: declaration.Sweep, trial: optuna.Trial) -> list[trials_lib.Trial]:
  """The runs that answer a claimed trial (its parameters suggested now): a grid trial as
  declared, a search configuration once per seed."""
  params = {path: study_lib.suggest(trial, path, d)
            for path, d in declaration.distributions(sweep, trial).items()}
  if sweep.grid is not None:
    return [sweep.grid[trial.user_attrs[study_lib.GRID_INDEX_ATTR]]]
  return declaration.runs_of(sweep, study_lib.run_number(trial), params)


def claim(sweep: declaration.Sweep, study: optuna.Study, count: int,
          heartbeat: study_lib.Heartbeat, workdir: str) -> list[optuna.Trial]:
  """Up to `count` trials: queued ones first (a grid's, retries: those this sweep directory
  holds the runs of at once, the others after HANDOVER heartbeat periods), then (a search
  with budget left) new ones from the sampler. Each beats at once (Optuna never fails a
  running trial that has no heartbeat yet) and records where it trains."""
  here = f'{socket.gethostname()}:{os.path.abspath(workdir)}'
  taken = study_lib.claim_waiting(
      study, count, heartbeat.hold, lambda trial: holds_runs(workdir, here, trial),
      HANDOVER * sweep.base.sweep.heartbeat_seconds)
  while sweep.search is not None and len(taken) < count and budget_left(sweep.search, study):
    taken.append(study_lib.ask(study))
    heartbeat.hold([taken[-1]._trial_id])  # pylint: disable=protected-access
  for trial in taken:
    trial.set_user_attr(TRAINED_IN_ATTR, here)
  return taken


# Heartbeat periods a retry waits for the machine that holds its runs: as long as that
# machine's trial took to go stale, time for a command started again there to come up.
HANDOVER = 3
TRAINED_IN_ATTR = 'trained_in'  # 'host:sweep directory' of the worker that claimed it last


def holds_runs(workdir: str, here: str, trial: optuna.trial.FrozenTrial) -> bool:
  """Whether this sweep directory holds what the trial's runs saved: it was trained here
  (or nobody recorded where), or its run directories are here (a filesystem shared with the
  machine that trained it; a retry inherits its original's grid index or run number, which
  name them)."""
  if trial.user_attrs.get(TRAINED_IN_ATTR, here) == here:
    return True
  number = trial.user_attrs.get(study_lib.GRID_INDEX_ATTR,
                                trial.user_attrs.get(study_lib.RUN_NUMBER_ATTR))
  return number is not None and bool(
      glob.glob(os.path.join(glob.escape(workdir), f'{number:03d}-*', '')))


def budget_left(declared, study: optuna.Study) -> bool:
  trials = [t for t in study.get_trials(deepcopy=False) if not study_lib.superseded(t)]
  if declared.trials and len(trials) >= declared.trials:
    return False
  started = study.user_attrs.get('started', time.time())
  return not declared.seconds or time.time() - started < declared.seconds


def others_hold_trials(study: optuna.Study) -> bool:
  return any(t.state in (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING)
             for t in study.get_trials(deepcopy=False))


def group_size(sweep: declaration.Sweep, backend: str) -> int:
  """How many trials to take at once: enough for one vmapped group when groups are planned,
  else one."""
  base = sweep.base
  strategy = planning.resolve(base.sweep.strategy, backend, base.sweep.max_group_size,
                              planning.read_measurement(backend))
  if strategy == 'sequential':
    return 1
  seeds = len(sweep.search.seeds) if sweep.search else 1
  return max(1, base.sweep.max_group_size // seeds)


def hand_back(study: optuna.Study, trials: Sequence[optuna.Trial]) -> None:
  """Queues again the trials of a worker that stops on an exception (a signal, an error), as
  the heartbeat would once they went stale, so the next worker resumes them at once. (A
  SIGKILL ends the process without this: the heartbeat takes over.)"""
  storage = study._storage  # pylint: disable=protected-access
  retry = study_storage.retry_callback()
  for trial in trials:
    try:
      if storage.set_trial_state_values(trial._trial_id,  # pylint: disable=protected-access
                                        state=optuna.trial.TrialState.FAIL):
        retry(study, storage.get_trial(trial._trial_id))  # pylint: disable=protected-access
        logging.info('trial %d handed back to the study', trial.number)
    except Exception as error:  # pylint: disable=broad-except  (the storage may be gone)
      logging.warning('trial %d not handed back (%s); it is retried once its heartbeat is '
                      'stale', trial.number, study_storage.first_line(error))
