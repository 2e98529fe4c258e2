"""A sweep worker: takes trials from the study until none is left, trains them, settles them.

    claim (claims.py; grid: the queued trials; search: Optuna's ask, its sampler choosing)
      -> runs (one per seed of a search configuration; a grid trial is one run)
      -> plan (planning.py: same-program runs as one vmapped group, or one by one)
      -> train (executors.py, with a TrialObserver per trial, settling.py: reports every
         evaluation to the trial and stops its runs when the pruner says so)
      -> settle (settling.py; tell the study: complete with the objective, pruned, or failed
         as diverged or invalid)

Any number of workers, in this process, in local processes, or on other machines, share one
study; a trial is trained by the one worker that claimed it. A worker asks for several trials
at once only when its runs would train as one vmapped group (sweep.strategy), and TPE's
constant liar keeps a batch from being K copies of one point. When no trial is left to take
but other workers still hold some, it waits: if one of them died, its trial's heartbeat goes
stale, the study queues a retry, and this worker resumes it from its checkpoint. Over several
processes the worker is one: process 0 leads, and the others follow its orders (orders.py).
"""
from __future__ import annotations

import time
from typing import Sequence

from cnn_jax import interrupts
from cnn_jax.errors import ConfigError
from cnn_jax.engine import distributed
from cnn_jax.sweeps import claims
from cnn_jax.sweeps import declaration
from cnn_jax.sweeps import executors
from cnn_jax.sweeps import orders
from cnn_jax.sweeps import planning
from cnn_jax.sweeps import settling
from cnn_jax.sweeps import study as study_lib
from cnn_jax.sweeps import study_storage


def work(sweep: declaration.Sweep, workdir: str, url: str, worker: int = 0) -> int:
  """Takes, trains and settles trials until the study has none left; returns how many it
  trained. Raises study_storage.StorageError when the storage is lost (the runs keep their
  checkpoints at their last epoch end). Over several processes (engine/distributed.py) they
  are one worker: process 0 takes and settles the trials (`_work`) and sends every order to
  the others (`orders.follow`), so that all train the same groups at the same time."""
  import jax  # pylint: disable=g-import-not-at-top  (JAX only after the allocator)
  if not distributed.is_writer():
    return orders.follow(sweep, workdir)
  try:
    return _work(sweep, workdir, url, worker, jax.default_backend())
  except study_storage.STORAGE_ERRORS as error:
    raise lost_storage(worker, url, error, 'a finished run keeps its results, the others '
                       'their checkpoints at their last evaluation') from None


def lost_storage(worker: int, url: str, error: BaseException,
                 kept: str) -> study_storage.StorageError:
  return study_storage.StorageError(
      f'worker {worker} lost the study\'s storage {study_storage.masked(url)}: '
      f'{study_storage.trouble(error, url)}; {kept}: run the command again to resume')


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
  size, trained = claims.group_size(sweep, backend), 0
  while True:
    orders.stop_if_signalled()
    try:
      study_lib.fail_stale(study)
      taken = claims.claim(sweep, study, size, heartbeat, workdir)
    except BaseException as error:
      orders.order_error(error)
      raise
    if not taken:
      if not claims.others_hold_trials(study):
        orders.order({'done': True})
        return trained
      orders.order({'wait': sweep.base.sweep.heartbeat_seconds})
      time.sleep(sweep.base.sweep.heartbeat_seconds)  # a dead worker's trial goes stale
      continue
    claimed = [settling.Claimed(t, []) for t in taken]
    try:
      try:
        for item in claimed:
          item.runs = claims.runs_of(sweep, item.trial)
      except BaseException as error:
        orders.order_error(error)
        raise
      trained += execute(sweep, workdir, claimed, backend, heartbeat)
    except BaseException:
      if heartbeat.lost is None:  # (a lost storage would only make the worker wait longer)
        claims.hand_back(study, [c.trial for c in claimed if not c.settled])
      raise
    finally:
      heartbeat.release(t._trial_id for t in taken)  # pylint: disable=protected-access


def execute(sweep, workdir: str, claimed: Sequence[settling.Claimed], backend: str,
            heartbeat: study_lib.Heartbeat | None = None) -> int:
  """Trains the claimed trials' runs as planned and settles every trial; returns how many
  runs it trained."""
  from cnn_jax.config import validation  # pylint: disable=g-import-not-at-top
  from cnn_jax.engine import checkpoint  # pylint: disable=g-import-not-at-top
  objective = sweep.objective
  prune = bool(sweep.search) and sweep.search.pruner != 'none'
  runs, owners = [], []
  for item in claimed:
    observer = settling.TrialObserver(item, workdir, objective, prune, heartbeat)
    for run in item.runs:
      runs.append(run)
      owners.append([observer])
  try:
    pending = [k for k, run in enumerate(runs)
               if not executors.finished(executors.run_dir(workdir, run))]
    # Each run's config is validated once: a grid's when the sweep was declared (in this
    # process: declaration.load checks every trial), a search's configuration here, when its
    # parameters are known; the plans that train them check only what a group adds.
    valid, invalid = [], []
    for k in pending:
      try:
        if sweep.grid is None:
          validation.validate(runs[k].config)
        valid.append(k)
      except ConfigError as error:  # the run cannot work; the others may
        invalid.append((k, str(error)))
    # With several processes an accelerator group that 'auto' would time first trains
    # vmapped (timing it would need every process): over hosts is where groups pay most.
    calibrate = (lambda _: True) if distributed.process_count() > 1 else None
    plan = [(strategy, [valid[p] for p in positions])
            for strategy, positions in planning.plan(
                [runs[k].config for k in valid],
                [checkpoint.saved_step(executors.run_dir(workdir, runs[k])) for k in valid],
                backend, planning.read_measurement(backend), calibrate)]
  except BaseException as error:
    orders.order_error(error)
    raise
  orders.order({'train': {'runs': [[run.index, run.overrides] for run in runs], 'pending': pending,
                   'invalid': invalid, 'plan': plan}})
  orders.carry_out(runs, owners, workdir, invalid, plan)
  for item in claimed:
    if all(executors.finished(d) for d in settling.run_dirs(workdir, item)):
      settling.settle(item, workdir, objective)
    # else: a run was locked by another process (a second command on this directory);
    # the trial stays running and goes stale, and its retry finds the run finished.
  return len(pending)
