"""One Optuna study per sweep directory: its identity, the states of its trials, how a worker
claims its queued trials, and the heartbeat that keeps a dead worker's trial from being lost.

The study is stored where study_storage.py says (`<sweep dir>/study.db`, or a database that
workers on several machines share). Each worker records a heartbeat for every trial it holds,
every `sweep.heartbeat_seconds` (`Heartbeat`); a trial whose heartbeat is older than three of
those is failed by the next worker that looks, and Optuna's RetryHeartbeatStaleTrialCallback
queues a copy of it, which the next free worker takes and resumes from the original's run
directory (its checkpoint). The study is named after the sweep directory and remembers the
experiment and the config it was started with; a command that differs is refused rather than
mixed in.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import threading
import time
import warnings
from typing import Callable, Iterable

from absl import logging
import ml_collections
import optuna
import sqlalchemy

from cnn_jax import interrupts
from cnn_jax.errors import ConfigError
from cnn_jax.sweeps import study_storage

# Our verdict on a settled trial (user attr 'status'); Optuna's own states cannot say
# 'diverged' or 'invalid', which it stores as FAIL.
STATUS_ATTR = 'status'
GRID_INDEX_ATTR = 'grid_index'
RUN_NUMBER_ATTR = 'run_number'
IDENTITY_WAIT_SECONDS = 30  # for a study's identity that another command is writing


def study_name(workdir: str) -> str:
  return os.path.basename(os.path.normpath(os.path.abspath(workdir)))


def sweep_digest(config: ml_collections.ConfigDict, declared: str) -> str:
  """What identifies a sweep: its base config and its declaration (`declared`: the grid's
  trials or the search, as text), less what may differ between the machines of one study
  (engine/program.py's execution fields, and how a worker groups its trials); the
  heartbeat's period stays in, as every worker judges the others' by its own."""
  from cnn_jax.config import paths  # pylint: disable=g-import-not-at-top
  from cnn_jax.engine import grouping  # pylint: disable=g-import-not-at-top
  flat = paths.flatten(json.loads(config.to_json()))
  for path in (*grouping.EXECUTION_PATHS, 'sweep.strategy', 'sweep.max_group_size'):
    flat.pop(path, None)
  text = json.dumps(flat, sort_keys=True, default=str) + declared
  return hashlib.sha1(text.encode()).hexdigest()[:12]


def open_study(workdir: str, url: str, *, experiment: str, base, declared: str, kind: str,
               direction: str, objective: str, sampler=None, pruner=None,
               create: bool = True) -> optuna.Study:
  """The sweep directory's study, created on first use, its objective ('validation/error')
  named; a study started by another experiment or config is refused."""
  storage = study_storage.open_storage(url, base.sweep.heartbeat_seconds)
  name = study_name(workdir)
  try:
    if create:
      study = optuna.create_study(storage=storage, study_name=name, direction=direction,
                                  sampler=sampler, pruner=pruner, load_if_exists=True)
    else:
      study = optuna.load_study(storage=storage, study_name=name, sampler=sampler,
                                pruner=pruner)
    mine = {'experiment': experiment, 'config': sweep_digest(base, declared), 'kind': kind}
    found = study.user_attrs
    if not found.get('experiment'):
      _name_objective(study, objective)
      # 'started' last: it says the identity is whole (one attribute per write).
      for key, value in {**mine, 'started': time.time()}.items():
        study.set_user_attr(key, value)
      return study
    deadline = time.time() + IDENTITY_WAIT_SECONDS
    while 'started' not in found and time.time() < deadline:
      time.sleep(0.2)  # another command that started the study is writing its identity now
      found = study.user_attrs
    differing = [k for k, v in mine.items() if found.get(k) != v]
    if differing:
      raise ConfigError(
          f'the study {name!r} in {study_storage.masked(url)} was started by another sweep '
          f'(its experiment {found.get("experiment")!r}, config and declaration '
          f'{found.get("config")}, kind {found.get("kind")}; this command: {experiment!r}, '
          f'{mine["config"]}, {kind}); use another --workdir, or the same experiment, '
          'get_sweep and command-line overrides')
    _name_objective(study, objective)  # a study started before studies named it
  except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as error:
    raise study_storage.StorageError(f'--storage={study_storage.masked(url)}: '
                                     f'{study_storage.trouble(error, url)}') from None
  except KeyError:  # load_study of a study never started
    raise study_storage.StorageError(f'{study_storage.masked(url)} holds no study {name!r}: '
                                     'run the sweep (--sweep) once to start it') from None
  return study


def _name_objective(study: optuna.Study, objective: str) -> None:
  """Names the study's objective ('validation/error') as Optuna's metric name, which its
  dashboard and plots show (else 'Objective 0', 'Objective Value'). The name is part of the
  sweep's identity (its declaration or config), so a study's name never changes: it is
  written once."""
  if study.metric_names is None:
    with warnings.catch_warnings():
      warnings.simplefilter('ignore', optuna.exceptions.ExperimentalWarning)
      study.set_metric_names([objective])


def state_of(trial: optuna.trial.FrozenTrial) -> str:
  """'waiting', 'running', 'complete', 'pruned', 'failed', 'diverged' or 'invalid'."""
  verdict = trial.user_attrs.get(STATUS_ATTR)
  if trial.state == optuna.trial.TrialState.FAIL:
    return verdict if verdict in ('diverged', 'invalid') else 'failed'
  return trial.state.name.lower()


def run_number(trial) -> int:
  """The number that names the trial's run directories: its own, or for a retry (which
  inherits the user attrs) the original's, so the retry resumes the original's checkpoints.
  Set when a worker first claims the trial."""
  if RUN_NUMBER_ATTR not in trial.user_attrs and isinstance(trial, optuna.Trial):
    trial.set_user_attr(RUN_NUMBER_ATTR, trial.number)
  return trial.user_attrs.get(RUN_NUMBER_ATTR, trial.number)


def superseded(trial: optuna.trial.FrozenTrial) -> bool:
  """A trial failed by its heartbeat: a retry of it stands for it (or none, after
  study_storage.RETRIES)."""
  return (trial.state == optuna.trial.TrialState.FAIL
          and STATUS_ATTR not in trial.user_attrs)


def claim_waiting(study: optuna.Study, count: int, hold: Callable[[list[int]], None],
                  holds_runs: Callable[[optuna.trial.FrozenTrial], bool] = lambda _: True,
                  handover_seconds: float = 0.0) -> list[optuna.Trial]:
  """Up to `count` of the study's queued trials (a grid's, retries), taken for this worker
  (Optuna's storage moves a trial from WAITING to RUNNING for one caller only: on SQLite
  because open_storage makes every transaction take the write lock first), each held by
  `hold([trial id])` (its first heartbeat) the moment it is taken.

  Retries come first, as their runs have checkpoints to resume; but without a shared
  filesystem only the machine that trained a run holds its checkpoint, and another would
  start it again from step 0. So a retry whose checkpoint this worker does not hold
  (`holds_runs`) is left for `handover_seconds` after it was queued, for that machine's
  workers to take; then anyone takes it (its machine is gone or busy)."""
  storage = study._storage  # pylint: disable=protected-access  (the storage API is public)
  study_id = storage.get_study_id_from_name(study.study_name)
  claimed = []
  waiting = storage.get_all_trials(study_id, deepcopy=False,
                                   states=(optuna.trial.TrialState.WAITING,))
  waiting = sorted(waiting, key=lambda t: t.number)
  retries = [t for t in waiting if 'failed_trial' in t.system_attrs]
  mine = [t for t in retries if holds_runs(t)]
  handed_over = [t for t in retries if t not in mine
                 and _queued_for(storage, study_id, t) >= handover_seconds]
  others = [t for t in waiting if 'failed_trial' not in t.system_attrs]
  for frozen in [*mine, *handed_over, *others]:
    if len(claimed) == count:
      break
    try:
      if storage.set_trial_state_values(frozen._trial_id,  # pylint: disable=protected-access
                                        state=optuna.trial.TrialState.RUNNING):
        hold([frozen._trial_id])  # pylint: disable=protected-access
        claimed.append(optuna.Trial(study, frozen._trial_id))  # pylint: disable=protected-access
    except optuna.exceptions.UpdateFinishedTrialError:
      continue  # another worker finished it meanwhile
  return claimed


def _queued_for(storage, study_id: int, retry: optuna.trial.FrozenTrial) -> float:
  """Seconds since a retry was queued: since its original was failed as stale (or handed
  back). (Optuna's naive local times: machines in other time zones hand over at once.)"""
  failed = storage.get_trial(storage.get_trial_id_from_study_id_trial_number(
      study_id, retry.system_attrs['failed_trial']))
  if failed.datetime_complete is None:
    return float('inf')
  return (datetime.datetime.now() - failed.datetime_complete).total_seconds()


def suggest(trial: optuna.Trial, path: str, distribution):
  """The trial's value for `path` (a queued trial's fixed value, else the sampler's)."""
  d = distribution
  if isinstance(d, optuna.distributions.CategoricalDistribution):
    return trial.suggest_categorical(path, d.choices)
  if isinstance(d, optuna.distributions.IntDistribution):
    return trial.suggest_int(path, d.low, d.high, step=d.step, log=d.log)
  return trial.suggest_float(path, d.low, d.high, step=d.step, log=d.log)


def ask(study: optuna.Study) -> optuna.Trial:
  with warnings.catch_warnings():  # we run the heartbeat ourselves (Heartbeat below)
    warnings.simplefilter('ignore')
    return study.ask()


def fail_stale(study: optuna.Study) -> None:
  with warnings.catch_warnings():
    warnings.simplefilter('ignore', optuna.exceptions.ExperimentalWarning)
    optuna.storages.fail_stale_trials(study)


class Heartbeat:
  """Records a heartbeat for each trial this worker holds, from a thread (training releases
  the interpreter, so the thread runs while XLA computes). Storage that fails for two
  heartbeat periods (or any storage call of the trials' observers) is lost: `lost` holds the
  error and the worker is asked to stop at its next step, with a checkpoint there
  (interrupts.request_stop), before other workers take its trials as stale (three periods)."""

  def __init__(self, storage, interval: float):
    self._storage, self._interval = storage, interval
    self._trial_ids: set[int] = set()
    self._lock = threading.Lock()
    self._stop = threading.Event()
    self.lost: BaseException | None = None
    self._last_success = time.monotonic()
    self._thread = threading.Thread(target=self._beat, name='heartbeat', daemon=True)
    self._thread.start()

  def hold(self, trial_ids: Iterable[int]) -> None:
    trial_ids = set(trial_ids)
    for trial_id in trial_ids:
      self._storage.record_heartbeat(trial_id)  # at once: it is stale-checked from now on
    with self._lock:
      self._trial_ids |= trial_ids

  def release(self, trial_ids: Iterable[int]) -> None:
    with self._lock:
      self._trial_ids -= set(trial_ids)

  def lose(self, error: BaseException) -> None:
    """The storage is gone: the worker stops at its next step."""
    if self.lost is None:
      self.lost = error
      logging.error('the study\'s storage failed (%s): stopping at the next step',
                    study_storage.first_line(error))
      interrupts.request_stop()

  def _beat(self) -> None:
    while not self._stop.wait(self._interval):
      with self._lock:
        held = list(self._trial_ids)
      try:
        for trial_id in held:
          self._storage.record_heartbeat(trial_id)
        self._last_success = time.monotonic()
      except Exception as error:  # pylint: disable=broad-except  (the worker reports it)
        logging.warning('heartbeat not recorded: %s', study_storage.first_line(error))
        if time.monotonic() - self._last_success >= 2 * self._interval:
          self.lose(error)
          return

  def stop(self) -> None:
    self._stop.set()
    self._thread.join()
