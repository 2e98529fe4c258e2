"""A RunRecord owns one run directory for as long as a process trains into it.

It takes the directory's lock (one process per run directory), checks the directory's
config.json against this run's config, records the dataset's info beside it (dataset.json:
what a trained run's users need of the data), restores and saves the checkpoint with the run's own
bookkeeping (per-epoch history, seconds spent), writes the TensorBoard events and the
console lines, keeps the status ('running', then 'ok', 'diverged' or 'pruned'), and writes
results.json through results.build/write. What else goes into the directory (the pictures)
comes from the loop's observers (engine/observers.py), which write through `events`. A
member of a vmapped group and a single run have one RunRecord each and so leave identical
directories. Metric values reach it as host sums and go out as metrics.py declares. In a run
over several processes (engine/distributed.py) every process keeps a RunRecord, so that all
take the same decisions (a divergence, the last step), and only process 0's writes.
"""
from __future__ import annotations

import json
import os
import time
from typing import Any

from absl import logging
import numpy as np

from cnn_jax import atomic_files
from cnn_jax.data import datasets
from cnn_jax.config import files
from cnn_jax.config import paths
from cnn_jax.engine import checkpoint
from cnn_jax.engine import events
from cnn_jax.engine import metrics
from cnn_jax.engine import grouping
from cnn_jax.engine import results
from cnn_jax.engine import workdir_lock
from cnn_jax.errors import WorkdirConflictError

CONFIG_FILENAME = 'config.json'


class RunRecord:

  def __init__(self, workdir: str, config, who: str = '', started: float | None = None,
               writes: bool = True, shown: bool = True, *, initial_loss: float):
    """`initial_loss`: the initialized model's loss, which sets the runaway bound. `shown`:
    False for a copy of a run (engine/plan.py), whose lines would repeat the run's."""
    self.workdir = os.path.abspath(workdir)
    self.config = config
    self.loss_bound = metrics.runaway_bound(config.model.num_classes, initial_loss)
    self.who = who  # prefixes console lines of group members
    self.shown = shown
    self.writes = writes  # False: a process other than 0 of a distributed run
    self._lock = None
    if writes:
      atomic_files.make_dirs(self.workdir)
      self._lock = workdir_lock.WorkdirLock(self.workdir).acquire()
      try:
        self._check_same_config_as_before()
        datasets.write_record(self.workdir, datasets.info(config.data))
      except Exception:
        self._lock.release()
        raise
    self.status, self.message, self.steps = 'running', '', 0
    self.history: list[dict[str, Any]] = []
    self.final: dict[str, Any] = {}
    self.train_seconds, self.first_step_seconds = 0.0, None
    self._earlier_wall_seconds, self._opened = 0.0, started or time.time()
    self._epoch_sums = None
    # (first step, this member's train sums) of the log window a checkpoint cut, or None.
    self.resumed_window: tuple[int, dict] | None = None
    self._writer = None

  @property
  def running(self) -> bool:
    return self.status == 'running'

  @property
  def events(self) -> events.EventWriter | None:
    """The run's event writer (between start_events and finish)."""
    return self._writer

  def _check_same_config_as_before(self) -> None:
    """A workdir belongs to one run: resuming under another config would silently mix two.
    Execution details (grouping.EXECUTION_PATHS) may change between resumptions."""
    path = os.path.join(self.workdir, CONFIG_FILENAME)
    current = json.loads(self.config.to_json())
    if os.path.exists(path) and os.path.exists(checkpoint.path_in(self.workdir)):
      previous = atomic_files.read_json(path)
      # A field the earlier config.json lacks (written before it existed) had its default.
      before = paths.flatten(files.with_defaults(previous))
      now = paths.flatten(current)
      changed = [key for key in sorted(set(before) | set(now))
                 if before.get(key) != now.get(key)
                 and key not in grouping.EXECUTION_PATHS]
      if changed:
        raise WorkdirConflictError(
            f'{self.workdir} holds a run of a different config (changed: '
            f'{", ".join(changed)}); use another --workdir to start a new run')
    atomic_files.write_json(path, current, indent=2, sort_keys=True)

  def restore(self, template: dict) -> dict | None:
    """The checkpointed member state ({'step', 'params', 'opt_state'}), or None; loads the
    run's bookkeeping with it."""
    found = checkpoint.restore(self.workdir, template)
    if found is None:
      return None
    state, extra = found
    self.history = [results.upgrade_history_record(h) for h in extra['history']]
    # The last evaluation (confusion counts included), so that a finished run re-reports.
    self.final = extra.get('final') or {
        split: values for split, values in (self.history[-1] if self.history else {}).items()
        if isinstance(values, dict) and split != metrics.TRAIN}
    self.train_seconds = extra['train_seconds']
    self.first_step_seconds = extra['first_step_seconds']
    self._earlier_wall_seconds = extra['wall_seconds']
    self.steps = int(state['step'])
    # A checkpoint taken between log steps (a signal) holds the train sums in progress.
    self._epoch_sums = _sums_from_json(extra.get('epoch_sums'))
    window = extra.get('window')
    self.resumed_window = window and (window['start'], _sums_from_json(window['sums']))
    self._say('Resuming %s at step %d', checkpoint.path_in(self.workdir), self.steps)
    return state

  def start_events(self, hparams: dict[str, Any]) -> None:
    self._writer = events.EventWriter(self.workdir) if self.writes else events.NoEvents()
    self._writer.write_hparams(hparams)

  def add_train_window(self, step: int, window_sums: dict, first_step: int, seconds: float,
                       host_values: dict[str, float], progress: dict | None = None) -> None:
    """A log window's train sums (this member's): scalars out, epoch sums kept; a loss that
    is no longer finite, or has run away (metrics.divergence), marks the run diverged.
    `progress` (metrics.progress_line's
    total_steps, steps_per_epoch, eta_seconds) asks for the console's progress line."""
    values = metrics.finalize(window_sums)
    self.train_seconds += seconds
    why = metrics.divergence(values, self.loss_bound)
    if why:
      self.diverge(f'train/{metrics.LOSS} averaged over steps {first_step + 1}-{step} {why}',
                   step)
      return
    self._writer.write_scalars(step, metrics.scalars(metrics.TRAIN, {**values, **host_values}))
    self._epoch_sums = (window_sums if self._epoch_sums is None
                        else metrics.add(self._epoch_sums, window_sums))
    if progress is not None:
      self._say('%s', metrics.progress_line(step, {**values, **host_values}, **progress,
                                            who=self.who))

  def end_epoch(self, step: int, epoch: float, total_epochs: float,
                eval_sums: dict[str, dict]) -> None:
    """The epoch's evaluation ({split: this member's host sums}) into the events, the
    history and the console."""
    evaluated = {split: metrics.finalize(sums) for split, sums in eval_sums.items()}
    for split, values in evaluated.items():
      self._writer.write_scalars(step, metrics.scalars(split, values))
    # An evaluation is checked for NaN only: a model's loss on held-out images may rise far
    # while it trains well (batch statistics early on, confident mistakes).
    bad = [(split, why) for split, why in ((split, metrics.divergence(values))
                                           for split, values in evaluated.items()) if why]
    if bad:
      self.diverge(f'eval/{bad[0][0]}/{metrics.LOSS} at step {step} {bad[0][1]}', step)
      return
    scalar = lambda values: {k: v for k, v in values.items() if metrics.BY_NAME[k].scalar}
    record = {'epoch': round(epoch, 4), 'step': step, 'train_seconds': round(self.train_seconds, 3),
              metrics.TRAIN: scalar(metrics.finalize(self._epoch_sums))}
    record.update({split: scalar(values) for split, values in evaluated.items()})
    self.history.append(record)
    self.final, self.steps, self._epoch_sums = evaluated, step, None
    self._writer.flush()
    self._say('%s', metrics.console_line(record, total_epochs, self.who))

  def checkpoint_due(self, step: int, total_steps: int, epochs_completed: int) -> bool:
    """At an epoch end: whether to checkpoint (every train.checkpoint_every_epochs, and at
    the last step)."""
    every = self.config.train.checkpoint_every_epochs
    return self.running and bool(every) and (epochs_completed % every == 0
                                             or step == total_steps)

  def save_checkpoint(self, member_state: dict,
                      window: tuple[int, dict] | None = None) -> None:
    """`window`: (first step, this member's host train sums) of the log window in progress,
    for a checkpoint between log steps; with the sums since the last evaluation, the resumed
    run's train metrics then cover the same steps as an uninterrupted run's."""
    if not self.writes:
      return
    checkpoint.save(self.workdir, member_state, {
        'history': self.history, 'final': self.final, 'train_seconds': self.train_seconds,
        'first_step_seconds': self.first_step_seconds, 'wall_seconds': self._wall_seconds(),
        'epoch_sums': _sums_to_json(self._epoch_sums),
        'window': window and {'start': window[0], 'sums': _sums_to_json(window[1])}})

  def diverge(self, message: str, step: int) -> None:
    self.status, self.message, self.steps = 'diverged', message, step
    self._say('%sRun diverged: %s. Try a smaller optimizer.learning_rate.', self.who, message,
              level=logging.ERROR)

  def carry_on(self) -> None:
    """A population's member that diverged trains on (engine/population_run.py)."""
    self.status, self.message = 'running', ''

  def stop(self, message: str) -> None:
    """An observer stopped the run (a pruner): it keeps its figures so far."""
    self.status, self.message = 'pruned', message
    self._say('%sStopped at step %d: %s', self.who, self.steps, message)

  def finish(self, step: int, steps_per_epoch: float, **facts) -> dict[str, Any]:
    """Writes results.json (facts: params, num_examples, executor, environment); returns it."""
    if self.running:
      self.status, self.steps = 'ok', step
    if self._writer is not None:
      self._writer.close()
      self._writer = None
    record = results.build(
        status=self.status, message=self.message, config=json.loads(self.config.to_json()),
        final=self.final, history=self.history, steps=self.steps,
        epochs=self.steps / steps_per_epoch, train_seconds=self.train_seconds,
        first_step_seconds=self.first_step_seconds, wall_seconds=self._wall_seconds(), **facts)
    path = results.write(self.workdir, record) if self.writes else self.workdir
    errors = {split: metrics.show(metrics.ERROR,
                                  results.final_metric(record, split, metrics.ERROR))
              for split in ('test', 'validation')}
    self._say('%s%s: status %s, test error %s, validation error %s; %.1f s training; %s',
              self.who, self.config.model.name, record['status'], errors['test'],
              errors['validation'], self.train_seconds, path)
    return record

  def close(self) -> None:
    """Releases the directory (after finish, or after an error)."""
    try:
      if self._writer is not None:
        self._writer.close()
        self._writer = None
    finally:
      if self._lock is not None:
        self._lock.release()

  def _say(self, *args, level=logging.INFO) -> None:
    if self.shown:
      logging.log(level, *args, stacklevel=2)  # (the caller's line in the log)

  def _wall_seconds(self) -> float:
    return self._earlier_wall_seconds + time.time() - self._opened


def record_invalid(workdir: str, config, message: str) -> dict[str, Any]:
  """results.json for a sweep trial whose config cannot work: status 'invalid'."""
  atomic_files.make_dirs(workdir)
  record = results.build(status='invalid', message=message,
                         config=json.loads(config.to_json()))
  results.write(workdir, record)
  return record



def _sums_to_json(sums: dict | None) -> dict | None:
  # float64 (host sums, and the device's float32 ones widened) survives JSON exactly.
  return sums and {name: np.asarray(value, np.float64).tolist() for name, value in sums.items()}


def _sums_from_json(saved: dict | None) -> dict | None:
  return saved and {name: np.asarray(value, np.float64) for name, value in saved.items()}
