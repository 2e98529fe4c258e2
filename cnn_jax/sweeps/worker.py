"""A sweep worker: takes trials from the study until none is left, trains them, settles them.

    claim (grid: the queued trials; search: Optuna's ask, its sampler choosing)
      -> runs (one per seed of a search configuration; a grid trial is one run)
      -> plan (planning.py: same-program runs as one vmapped group, or one by one)
      -> train (executors.py, with a TrialObserver per trial: reports every evaluation to the
         trial and stops its runs when the pruner says so)
      -> settle (tell the study: complete with the objective, pruned, or failed as diverged
         or invalid)

Any number of workers, in this process, in local processes, or on other machines, share one
study; a trial is trained by the one worker that claimed it. A worker asks for several trials
at once only when its runs would train as one vmapped group (sweep.strategy), and TPE's
constant liar keeps a batch from being K copies of one point. When no trial is left to take
but other workers still hold some, it waits: if one of them died, its trial's heartbeat goes
stale, the study queues a retry, and this worker resumes it from its checkpoint.
"""
from __future__ import annotations

import dataclasses
import glob
import os
import signal
import socket
import time
from typing import Sequence

from absl import logging
import optuna
import sqlalchemy

from cnn_jax import interrupts
from cnn_jax.engine import distributed
from cnn_jax.engine import metrics
from cnn_jax.engine import observers
from cnn_jax.engine import results
from cnn_jax.sweeps import declaration
from cnn_jax.sweeps import executors
from cnn_jax.sweeps import planning
from cnn_jax.sweeps import study as study_lib
from cnn_jax.sweeps import trials as trials_lib
from cnn_jax.errors import UserError


@dataclasses.dataclass
class Claimed:
  """A trial this worker holds and the runs that answer it."""
  trial: optuna.Trial
  runs: list[trials_lib.Trial]
  settled: bool = False


class TrialObserver(observers.Observer):
  """Shared by the runs of one trial: at each evaluation the mean objective of the runs
  evaluated at that step goes to the trial (the step is the evaluation's count: at epoch
  ends, runs of any batch size compare at the same epoch), and the pruner's verdict stops
  them all (runs trained one after another: the first reports, the others follow its
  verdicts)."""

  def __init__(self, claimed: Claimed, workdir: str, objective: str, prune: bool,
               heartbeat: study_lib.Heartbeat | None = None):
    self.claimed, self.workdir, self.objective, self.prune = claimed, workdir, objective, prune
    self.heartbeat = heartbeat
    self.split, _, self.metric = objective.partition('/')
    self._values: dict[int, list[float]] = {}
    self._verdicts: dict[int, str | None] = {}

  def epoch_end(self, event: observers.EpochEnd) -> None:
    value = event.evaluated.get(self.split, {}).get(self.metric)
    if value is not None:
      self._values.setdefault(len(event.history), []).append(value)

  def should_stop(self, event: observers.EpochEnd) -> str | None:
    evaluation = len(event.history)
    if evaluation not in self._verdicts and evaluation in self._values:
      value = sum(self._values[evaluation]) / len(self._values[evaluation])
      trial = self.claimed.trial
      self._verdicts[evaluation] = None
      try:
        trial.report(value, evaluation)
      except optuna.exceptions.UpdateFinishedTrialError:
        # Another worker failed the trial as stale (this one's heartbeat came too late):
        # the run trains on unpruned, and the retry finds it finished.
        logging.warning('trial %d was failed by another worker; not reporting to it',
                        trial.number)
        return None
      except STORAGE_ERRORS as error:
        # The storage is gone: the runs stop at the next step with a checkpoint (at their
        # last step they finish and record first, so that only the settling is left).
        if self.heartbeat is None:
          raise
        self.heartbeat.lose(error)
        return None
      if self.prune and trial.should_prune():
        self._verdicts[evaluation] = (
            f'pruned by the {trial.study.pruner.__class__.__name__} at evaluation '
            f'{evaluation} (step {event.step}): {self.split} {self.metric} '
            f'{metrics.show(self.metric, value)}')
    return self._verdicts.get(evaluation)

  def recorded(self, record: dict) -> None:
    del record
    if all(executors.finished(d) for d in run_dirs(self.workdir, self.claimed)):
      try:
        settle(self.claimed, self.workdir, self.objective)
      except STORAGE_ERRORS as error:
        # The other members of a group still record their results; the trial is settled
        # by the next command, which finds its runs finished.
        if self.heartbeat is None:
          raise
        self.heartbeat.lose(error)


def run_dirs(workdir: str, claimed: Claimed) -> list[str]:
  return [executors.run_dir(workdir, run) for run in claimed.runs]


def settle(claimed: Claimed, workdir: str, objective: str) -> None:
  """Tells the study how the trial ended, from its runs' results.json (once)."""
  if claimed.settled:
    return
  split, _, metric = objective.partition('/')
  records = [results.read(d) or {} for d in run_dirs(workdir, claimed)]
  statuses = [r.get('status') for r in records]
  trial = claimed.trial
  status = next((s for s in ('invalid', 'diverged', 'pruned') if s in statuses), 'ok')
  try:
    for column, (where, name) in (('val_error', ('validation', metrics.ERROR)),
                                  ('test_error', ('test', metrics.ERROR))):
      values = [results.final_metric(r, where, name) for r in records]
      if all(v is not None for v in values):
        trial.set_user_attr(column, sum(values) / len(values))
    trial.set_user_attr('runs', [os.path.basename(d) for d in run_dirs(workdir, claimed)])
    trial.set_user_attr(study_lib.STATUS_ATTR, status)
    if status == 'ok':
      values = [results.final_metric(r, split, metric) for r in records]
      trial.study.tell(trial, sum(values) / len(values))
    elif status == 'pruned':
      trial.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    else:
      trial.study.tell(trial, state=optuna.trial.TrialState.FAIL)
  except (optuna.exceptions.UpdateFinishedTrialError, ValueError):
    # (Optuna's tell raises ValueError for a finished trial.) Its heartbeat went stale while
    # it trained (a starved worker); its retry finds the runs finished and settles itself.
    logging.warning('trial %d was failed by another worker meanwhile; its retry records '
                    'it', trial.number)
  claimed.settled = True
  logging.info('trial %d: %s', trial.number, status)


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


def work(sweep: declaration.Sweep, workdir: str, url: str, worker: int = 0) -> int:
  """Takes, trains and settles trials until the study has none left; returns how many it
  trained. Raises study.StorageError when the storage is lost (the runs keep their
  checkpoints at their last epoch end). Over several processes (engine/distributed.py) they
  are one worker: process 0 takes and settles the trials (`_work`) and sends every order to
  the others (`follow`), so that all train the same groups at the same time."""
  import jax  # pylint: disable=g-import-not-at-top  (JAX only after the allocator)
  if not distributed.is_writer():
    return follow(sweep, workdir)
  try:
    return _work(sweep, workdir, url, worker, jax.default_backend())
  except STORAGE_ERRORS as error:
    raise lost_storage(worker, url, error, 'a finished run keeps its results, the others '
                       'their checkpoints at their last evaluation') from None


STORAGE_ERRORS = (sqlalchemy.exc.DBAPIError, optuna.exceptions.StorageInternalError)


def lost_storage(worker: int, url: str, error: BaseException,
                 kept: str) -> study_lib.StorageError:
  return study_lib.StorageError(
      f'worker {worker} lost the study\'s storage {study_lib.masked(url)}: '
      f'{study_lib.trouble(error, url)}; {kept}: run the command again to resume')


def _work(sweep, workdir, url, worker, backend) -> int:
  study = declaration.open_study(sweep, workdir, url, worker)
  heartbeat = study_lib.Heartbeat(study._storage,  # pylint: disable=protected-access
                                  sweep.base.sweep.heartbeat_seconds)
  try:
    return _work_with(sweep, workdir, study, heartbeat, backend)
  except interrupts.Interrupted as stopped:
    if heartbeat.lost is None:
      raise
    raise lost_storage(worker, url, heartbeat.lost, f'stopped {stopped.where}') from None
  finally:
    heartbeat.stop()


def _work_with(sweep, workdir, study, heartbeat, backend) -> int:
  size, trained = group_size(sweep, backend), 0
  while True:
    stop_if_signalled()
    try:
      study_lib.fail_stale(study)
      taken = claim(sweep, study, size, heartbeat, workdir)
    except BaseException as error:
      order_error(error)
      raise
    if not taken:
      if not others_hold_trials(study):
        order({'done': True})
        return trained
      order({'wait': sweep.base.sweep.heartbeat_seconds})
      time.sleep(sweep.base.sweep.heartbeat_seconds)  # a dead worker's trial goes stale
      continue
    claimed = [Claimed(t, []) for t in taken]
    try:
      try:
        for item in claimed:
          item.runs = runs_of(sweep, item.trial)
      except BaseException as error:
        order_error(error)
        raise
      trained += execute(sweep, workdir, claimed, backend, heartbeat)
    except BaseException:
      if heartbeat.lost is None:  # (a lost storage would only make the worker wait longer)
        hand_back(study, [c.trial for c in claimed if not c.settled])
      raise
    finally:
      heartbeat.release(t._trial_id for t in taken)  # pylint: disable=protected-access


def stop_if_signalled() -> None:
  """Between trials: Interrupted after a signal (on every process of a distributed worker at
  once: they agree on it, as the loop does at its steps)."""
  where = 'between trials (each finished one is recorded)'
  if distributed.process_count() > 1:
    if distributed.preempted():
      interrupts.raise_stopped(signal.SIGTERM, where)
    signum = distributed.agreed_signal(interrupts.pending())
    if signum:
      interrupts.raise_stopped(signum, where)
  interrupts.raise_if_pending(where)


def order(message: dict) -> dict:
  """Process 0's next order to the other processes of a distributed worker: {'train': runs
  and plan}, {'wait': seconds}, {'done': True} or {'error': [class, message]}."""
  if distributed.process_count() == 1:
    return message
  return distributed.from_writer(message)


def order_error(error: BaseException) -> None:
  """Tells the other processes that process 0 stops on `error` (before it raises)."""
  order({'error': [type(error).__name__, str(error)]})


def follow(sweep: declaration.Sweep, workdir: str) -> int:
  """A process other than 0 of a distributed worker: trains what process 0 orders, with no
  study of its own (process 0 reports to it, and the loop shares process 0's pruning
  verdicts with every process)."""
  trained = 0
  while True:
    stop_if_signalled()
    received = order({})
    if 'done' in received:
      return trained
    if 'wait' in received:
      time.sleep(received['wait'])
      continue
    if 'error' in received:
      kind, message = received['error']
      raise UserError(f'process 0 of this worker stopped: {kind}: {message}')
    train = received['train']
    runs = [trials_lib.Trial(index, overrides, trials_lib.apply_overrides(
        sweep.base, overrides, f'trial {index}')) for index, overrides in train['runs']]
    carry_out(runs, [[] for _ in runs], workdir, train['invalid'],
              [tuple(step) for step in train['plan']])
    trained += len(train['pending'])


def hand_back(study: optuna.Study, trials: Sequence[optuna.Trial]) -> None:
  """Queues again the trials of a worker that stops on an exception (a signal, an error), as
  the heartbeat would once they went stale, so the next worker resumes them at once. (A
  SIGKILL ends the process without this: the heartbeat takes over.)"""
  storage = study._storage  # pylint: disable=protected-access
  retry = study_lib.retry_callback()
  for trial in trials:
    try:
      if storage.set_trial_state_values(trial._trial_id,  # pylint: disable=protected-access
                                        state=optuna.trial.TrialState.FAIL):
        retry(study, storage.get_trial(trial._trial_id))  # pylint: disable=protected-access
        logging.info('trial %d handed back to the study', trial.number)
    except Exception as error:  # pylint: disable=broad-except  (the storage may be gone)
      logging.warning('trial %d not handed back (%s); it is retried once its heartbeat is '
                      'stale', trial.number, study_lib.first_line(error))


def execute(sweep, workdir: str, claimed: Sequence[Claimed], backend: str,
            heartbeat: study_lib.Heartbeat | None = None) -> int:
  """Trains the claimed trials' runs as planned and settles every trial; returns how many
  runs it trained."""
  from cnn_jax.config import validation  # pylint: disable=g-import-not-at-top
  from cnn_jax.engine import checkpoint  # pylint: disable=g-import-not-at-top
  objective = sweep.objective
  prune = bool(sweep.search) and sweep.search.pruner != 'none'
  runs, owners = [], []
  for item in claimed:
    observer = TrialObserver(item, workdir, objective, prune, heartbeat)
    for run in item.runs:
      runs.append(run)
      owners.append([observer])
  try:
    pending = [k for k, run in enumerate(runs)
               if not executors.finished(executors.run_dir(workdir, run))]
    valid, invalid = [], []
    for k in pending:
      try:
        validation.validate(runs[k].config)
        valid.append(k)
      except Exception:  # pylint: disable=broad-except  (run_alone records why)
        invalid.append(k)
    # With several processes an accelerator group that 'auto' would time first trains
    # vmapped (timing it would need every process): over hosts is where groups pay most.
    calibrate = (lambda _: True) if distributed.process_count() > 1 else None
    plan = [(strategy, [valid[p] for p in positions])
            for strategy, positions in planning.plan(
                [runs[k].config for k in valid],
                [checkpoint.saved_step(executors.run_dir(workdir, runs[k])) for k in valid],
                backend, planning.read_measurement(backend), calibrate)]
  except BaseException as error:
    order_error(error)
    raise
  order({'train': {'runs': [[run.index, run.overrides] for run in runs], 'pending': pending,
                   'invalid': invalid, 'plan': plan}})
  carry_out(runs, owners, workdir, invalid, plan)
  for item in claimed:
    if all(executors.finished(d) for d in run_dirs(workdir, item)):
      settle(item, workdir, objective)
    # else: a run was locked by another process (a second command on this directory);
    # the trial stays running and goes stale, and its retry finds the run finished.
  return len(pending)


def carry_out(runs: Sequence[trials_lib.Trial], owners: Sequence, workdir: str,
              invalid: Sequence[int], plan: Sequence[tuple[str, list[int]]]) -> None:
  """Trains the planned runs (positions in `runs`), each watched by its `owners`, and has
  the invalid ones recorded (by process 0: the others have nothing to train there)."""
  if distributed.is_writer():
    for k in invalid:
      executors.run_alone(runs[k], executors.run_dir(workdir, runs[k]), owners[k])
  for strategy, members in plan:
    if strategy == 'vmap':
      executors.run_group([runs[k] for k in members],
                          [executors.run_dir(workdir, runs[k]) for k in members],
                          [owners[k] for k in members])
    else:
      executors.run_alone(runs[members[0]], executors.run_dir(workdir, runs[members[0]]),
                          owners[members[0]])
