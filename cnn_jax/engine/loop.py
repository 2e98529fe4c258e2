"""The training loop, written once, for K >= 1 members on a mesh of devices.

A single run is K = 1; a vmapped sweep group is K > 1 (program.py compiles either). Per
iteration the loop runs one compiled call (one step, or several scanned), and only at step
boundaries does the host look: at log steps it reads the window's metric sums (the only
host syncs besides epoch ends) and prints each member's progress line, at epoch ends it
evaluates every member on every eval split and checkpoints the members that are due. A
member whose loss stops being finite is marked diverged in its RunRecord and left out from
then on (vmapped members share no arithmetic, so its NaNs cannot reach the others); the loop
ends when no member is running.

Measured on this project's 2-core CPU (../shared/ENGINEERING.md, benchmarks/train_loop.py):
a Python loop over one jitted step, with the state donated and the whole dataset on the
device, ran an epoch of T2 in 9 s where a lax.scan over the epoch took 55 s.
"""
from __future__ import annotations

import functools
import os
import time
from typing import Any, Sequence

from absl import logging
import jax
import numpy as np

from cnn_jax.config import validation
from cnn_jax.data import batches
from cnn_jax.data import datasets
from cnn_jax.engine import compilation_cache
from cnn_jax.engine import devices
from cnn_jax.engine import events
from cnn_jax.engine import metrics
from cnn_jax.engine import optimizers
from cnn_jax.engine import program as program_lib
from cnn_jax.engine import run_record
from cnn_jax import trained
from cnn_jax.errors import ConfigError
from cnn_jax.model import cnn
from cnn_jax.model import summary
from cnn_jax.reports import run_pictures


def steps_per_call(train_cfg, backend: str) -> int:
  """How many train steps one compiled call runs: the loop strategy, decided here only.

  On CPU, one step per call: a scanned epoch ran 6x slower than a Python loop over a jitted
  step here (ENGINEERING.md; benchmarks/train_loop.py measures it again). On GPUs, scanning
  many steps per call removes the per-step dispatch that leaves a small model's GPU idle, but
  that has not been measured for this code yet, so 'auto' (0) still means 1 everywhere;
  set train.steps_per_call=K to force K.
  """
  del backend  # the measured choice is the same on every backend so far
  return train_cfg.steps_per_call or 1


def seconds_left(steps_left: int, timed_steps: int, timed_seconds: float) -> float | None:
  """The time the remaining train steps should take at the speed of the timed ones; None
  before any step was timed. The timed steps are those after the first call (whose time is
  mostly compilation), their seconds training only (the loop stops the clock for evaluation
  and checkpoints), so the estimate covers training, not the evaluations still to come."""
  if timed_steps <= 0:
    return None
  return steps_left * timed_seconds / timed_steps


def train(configs: Sequence, workdirs: Sequence[str]) -> list[dict[str, Any]]:
  """Trains `configs` (K >= 1 runs that can share one program) together, each into its
  workdir, resuming from their checkpoints. Returns each run's results.json record."""
  started = time.time()
  compilation_cache.enable()
  for config in configs:
    validation.validate(config, members=len(configs))
  program_lib.check_shared(configs)
  first = configs[0]
  splits = datasets.load_splits(first.data)
  num_train = len(splits.train)
  total_steps = batches.total_train_steps(first.train, num_train)
  placement = devices.place(first.train.num_devices, len(configs), first.train.batch_size)
  program = program_lib.Program(configs, total_steps, splits.image_shape, placement)
  state = program.init(configs)
  member0 = program.member_state(jax.device_get(state), 0)
  num_params = cnn.count_params(member0['params'])
  logging.info('%s', summary.format_summary(summary.model_summary(
      cnn.build_model(first.model), member0['params'], splits.image_shape), first.model.name))

  records = []
  try:
    for config, workdir in zip(configs, workdirs):
      who = f'{os.path.basename(os.path.normpath(workdir))}: ' if len(configs) > 1 else ''
      records.append(run_record.RunRecord(workdir, config, who, started))
    state = _restore(records, program, state)
    for record in records:
      record.start_events(events.flatten_hparams(record.config))
    step = records[0].steps
    differing = program_lib.differing_values(configs)
    logging.info('Training %s%s: %d parameters, %d steps of %d (%.2f epochs of %d), on %d %s '
                 'device(s)', first.model.name,
                 f' as a vmapped group of {len(configs)} ({differing})' if len(configs) > 1
                 else '', num_params, total_steps, first.train.batch_size,
                 total_steps * first.train.batch_size / num_train, num_train, placement.count,
                 jax.default_backend())
    state, step = _Loop(configs, records, program, splits, total_steps).run(state, step)
    _draw_final_pictures(configs, records, program, jax.device_get(state), splits)
    facts = {
        'params': num_params,
        'num_examples': {'train': num_train,
                         **{name: len(s) for name, s in splits.eval_splits().items()}},
        'executor': {'members': len(configs), 'devices': placement.count,
                     'steps_per_call': steps_per_call(first.train, jax.default_backend()),
                     'layers': program.layer_impls.describe()},
        'environment': {'backend': jax.default_backend(),
                        'device': jax.devices()[0].device_kind,
                        'jax_version': jax.__version__},
    }
    return [record.finish(step, num_train / first.train.batch_size, **facts)
            for record in records]
  finally:
    for record in records:
      record.close()


def _draw_final_pictures(configs, records, program, host_state, splits) -> None:
  """Hands each record the drawing of its end-of-run pictures (drawn in its worker)."""
  for k, (config, record) in enumerate(zip(configs, records)):
    member = program.member_state(host_state, k)
    run = trained.TrainedRun.from_params(config, member['params'], splits.image_shape)
    record.draw_final_pictures(functools.partial(run_pictures.end_figures, run, splits.test))


def _restore(records, program, state) -> dict:
  """Loads each member's checkpoint into its slice; all must be at the same step."""
  host = jax.device_get(state)
  templates = [{'step': np.int32(0), **program.member_state(host, k)}
               for k in range(len(records))]
  found = [record.restore(template) for record, template in zip(records, templates)]
  steps = {record.steps for record in records}
  if len(steps) != 1:
    raise ConfigError(f'runs with checkpoints at different steps {sorted(steps)} cannot '
                      'train as one group; run them separately')
  if not any(f is not None for f in found):
    return state
  return program.stack([{'params': f['params'], 'opt_state': f['opt_state']} for f in found])


class _Loop:
  """The step loop's state between host syncs; `run` is the loop."""

  def __init__(self, configs, records, program, splits, total_steps):
    first = configs[0]
    self.records, self.program, self.total_steps = records, program, total_steps
    self.orders = [batches.ShuffledBatches(len(splits.train), c.train.batch_size, c.seed)
                   for c in configs]
    self.schedules = [optimizers.make_schedule(c.optimizer, total_steps) for c in configs]
    self.batch_size = first.train.batch_size
    self.log_every = first.train.log_every_steps
    self.chunk = steps_per_call(first.train, jax.default_backend())
    placement = program.placement
    self.images = jax.device_put(splits.train.images, placement.replicated)
    self.labels = jax.device_put(splits.train.labels, placement.replicated)
    self.eval_batch_size = placement.eval_batch_size(first.train.eval_batch_size)
    self.eval_splits = {name: program_lib.padded_on_device(split, self.eval_batch_size,
                                                           placement.replicated)
                        for name, split in splits.eval_splits().items()}
    self.steps_per_epoch = len(splits.train) / self.batch_size
    self.first_step_seconds = None
    # The steps after the first call and their training seconds: the ETA's speed.
    self.timed_steps, self.timed_seconds = 0, 0.0

  def indices(self, step: int, count: int) -> np.ndarray:
    """(members, batch) for one step; (steps, members, batch) for several."""
    per_step = [np.stack([order.indices(s) for order in self.orders])
                for s in range(step, step + count)]
    return per_step[0] if count == 1 else np.stack(per_step)

  def run(self, state: dict, step: int) -> tuple[dict, int]:
    """Trains from `step` until the last step or until no member runs; returns the state
    and the step."""
    order = self.orders[0]  # every member's epochs end at the same steps
    sums = self.program.zero_sums(metrics.TRAIN)
    window_start, mark = step, time.time()
    untimed = (0, 0.0)  # the steps and seconds of this window that the ETA leaves out
    while step < self.total_steps and any(r.running for r in self.records):
      count = min(self.chunk, batches.steps_to_next_boundary(step, self.total_steps,
                                                             self.log_every, order))
      state, sums = self.program.train(state, sums, step, self.images, self.labels,
                                       self.indices(step, count))
      step += count
      if self.first_step_seconds is None:  # compilation + first call; synced once
        jax.block_until_ready(sums)
        self.first_step_seconds = time.time() - mark
        untimed = (count, self.first_step_seconds)
        for record in self.records:
          record.first_step_seconds = record.first_step_seconds or self.first_step_seconds
      epoch_end = (order.epochs_completed(step) > order.epochs_completed(step - count)
                   or step == self.total_steps)
      if step % self.log_every and not epoch_end:
        continue
      window = jax.device_get(sums)  # the only host syncs: log steps and epoch ends
      sums = self.program.zero_sums(metrics.TRAIN)
      now = time.time()
      seconds, mark = now - mark, now
      self.timed_steps += step - window_start - untimed[0]
      self.timed_seconds += seconds - untimed[1]
      untimed = (0, 0.0)
      # At an epoch end the epoch's console line stands for the progress line.
      progress = None if epoch_end else {
          'total_steps': self.total_steps, 'steps_per_epoch': self.steps_per_epoch,
          'eta_seconds': seconds_left(self.total_steps - step, self.timed_steps,
                                      self.timed_seconds)}
      for k, record in enumerate(self.records):
        if record.running:
          record.add_train_window(step, metrics.member(window, k), window_start, seconds, {
              'learning_rate': float(self.schedules[k](step - 1)),
              'examples_per_second': (step - window_start) * self.batch_size / seconds}, progress)
      window_start = step
      if epoch_end:
        self.end_epoch(state, step)
        mark = time.time()  # evaluation and checkpointing are not training time
    return state, step

  def end_epoch(self, state: dict, step: int) -> None:
    evaluations = {name: self.program.evaluate(state, split, self.eval_batch_size)
                   for name, split in self.eval_splits.items()}
    host_state = None
    for k, record in enumerate(self.records):
      if not record.running:
        continue
      record.end_epoch(step, step / self.steps_per_epoch,
                       self.total_steps / self.steps_per_epoch,
                       {name: metrics.member(sums, k) for name, sums in evaluations.items()})
      if record.checkpoint_due(step, self.total_steps):
        if host_state is None:
          host_state = jax.device_get(state)
        record.save_checkpoint({'step': np.int32(step),
                                **self.program.member_state(host_state, k)})
