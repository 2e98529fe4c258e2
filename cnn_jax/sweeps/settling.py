"""A trial a worker claimed, and how its runs answer it: each evaluation reported to the trial
as they train (the pruner's verdict stops them all), and the trial settled in the study once
every run has its results.json.

This is the part of a worker (worker.py) that the training loop calls back, through the
runs' observers (engine/observers.py): a TrialObserver is shared by the runs of one trial,
and the last of them to record its results settles the trial (`settle`: complete with the
objective, pruned, or failed as diverged or invalid).
"""
from __future__ import annotations

import dataclasses
import os

from absl import logging
import optuna

from cnn_jax.engine import metrics
from cnn_jax.engine import observers
from cnn_jax.engine import results
from cnn_jax.sweeps import executors
from cnn_jax.sweeps import study as study_lib
from cnn_jax.sweeps import study_storage
from cnn_jax.sweeps import trials as trials_lib


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
      except study_storage.STORAGE_ERRORS as error:
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
      except study_storage.STORAGE_ERRORS as error:
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
