"""The training loop, written once, for K >= 1 members on a mesh of devices.

A single run is K = 1; a vmapped sweep group is K > 1 (program.py compiles either). Per
iteration the loop runs one compiled call (one step, or several scanned), and only at step
boundaries does the host look: at log steps it reads the window's metric sums (the only
host syncs besides epoch ends) and prints each member's progress line, at epoch ends it
evaluates every member on every eval split and checkpoints the members that are due. A
member whose loss stops being finite, or runs away (metrics.divergence: a log window's mean
train loss above 100 x max(ln C, its loss before the first step)), is marked diverged in its
RunRecord and left out from then on (vmapped members share no arithmetic, so its NaNs cannot reach the others); the loop
ends when no member is running.

Measured on this project's 2-core CPU (../shared/ENGINEERING.md, benchmarks/train_loop.py):
a Python loop over one jitted step, with the state donated and the whole dataset on the
device, ran an epoch of T2 in 9 s where a lax.scan over the epoch took 55 s.
"""
from __future__ import annotations

import dataclasses
import os
import signal
import time
from typing import Any, Sequence

from absl import logging
import jax
import numpy as np

from cnn_jax import allocator
from cnn_jax import interrupts
from cnn_jax import startup
from cnn_jax.config import validation
from cnn_jax.data import batches
from cnn_jax.data import datasets
from cnn_jax.engine import compilation_cache
from cnn_jax.engine import devices
from cnn_jax.engine import distributed
from cnn_jax.engine import ensembles
from cnn_jax.engine import events
from cnn_jax.engine import metrics
from cnn_jax.engine import observers as observers_lib
from cnn_jax.engine import program as program_lib
from cnn_jax.engine import run_record
from cnn_jax.errors import ConfigError, UserError
from cnn_jax.model import cnn
from cnn_jax.model import summary
from cnn_jax.optim import optimizers


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


def train(configs: Sequence, workdirs: Sequence[str],
          observers: Sequence[Sequence[observers_lib.Observer]] | None = None
          ) -> list[dict[str, Any]]:
  """Trains `configs` (K >= 1 runs that can share one program) together, each into its
  workdir, resuming from their checkpoints. Returns each run's results.json record.

  observers: one list per member (engine/observers.py), told of its epoch ends and its end,
  and able to stop it; this function itself draws nothing (cnn_jax/train.py adds the
  pictures)."""
  started = time.time()
  compilation_cache.enable()
  for config in configs:
    validation.validate(config, members=len(configs))
  program_lib.check_shared(configs)
  first = configs[0]
  startup.use_deterministic_ops(first.train.deterministic)
  splits = datasets.load_splits(first.data)
  num_train = len(splits.train)
  program = program_lib.build(configs, splits.image_shape, num_train)
  total_steps, placement = program.total_steps, program.placement
  state = program.init()
  initial_losses = _initial_losses(program, state, splits.train, first.train.eval_batch_size)
  member0 = program.member_state(devices.get(state), 0)
  num_params = cnn.count_params(member0['params'])
  logging.info('%s', summary.format_summary(summary.model_summary(
      cnn.build_model(first.model), member0['params'], splits.image_shape,
      member0['model_state']), first.model.name))
  observers = [list(o) for o in observers] if observers else [[] for _ in configs]

  records = []
  try:
    failure = None
    try:
      for config, workdir in zip(configs, workdirs):
        who = f'{os.path.basename(os.path.normpath(workdir))}: ' if len(configs) > 1 else ''
        records.append(run_record.RunRecord(workdir, config, who, started,
                                            writes=distributed.is_writer(),
                                            initial_loss=initial_losses[len(records)]))
    except UserError as error:  # (only process 0 takes the locks and checks config.json)
      failure = error
    if jax.process_count() > 1:
      failure = distributed.shared_error(failure)
    if failure is not None:
      raise failure
    state = _restore(records, program, state)
    for record in records:
      record.start_events(events.flatten_hparams(record.config))
    step = records[0].steps
    differing = program_lib.differing_values(configs)
    logging.info('Training %s%s: %d parameters, %d steps of %d (%.2f epochs of %d), on %d %s '
                 'device(s)%s', first.model.name,
                 f' as a vmapped group of {len(configs)} ({differing})' if len(configs) > 1
                 else '', num_params, total_steps, first.train.batch_size,
                 total_steps * first.train.batch_size / num_train, num_train, placement.count,
                 jax.default_backend(),
                 # The host allocator matters to CPU runs only (docs/PERFORMANCE.md).
                 f', {allocator.described()}' if jax.default_backend() == 'cpu' else '')
    facts = {
        'params': num_params,
        'num_examples': {'train': num_train,
                         **{name: len(s) for name, s in splits.eval_splits().items()}},
        # The group a member started in, even if it trained its last steps in a smaller one.
        'executor': {'members': len(configs), 'devices': placement.count,
                     'steps_per_call': steps_per_call(first.train, jax.default_backend()),
                     'layers': program.layer_impls.describe()},
        'environment': {'backend': jax.default_backend(),
                        'device': jax.devices()[0].device_kind,
                        'jax_version': jax.__version__},
    }
    members = [_Member(k, c, r, o) for k, (c, r, o) in enumerate(zip(configs, records,
                                                                    observers))]
    with interrupts.catching():  # SIGTERM, SIGINT: a checkpoint at the next step, then out
      finished = _Loop(members, program, splits, total_steps, facts).run(state, step)
    return [finished[k] for k in range(len(configs))]
  except BaseException:
    for member_observers in observers:
      for observer in member_observers:
        observer.close(cancel=True)
    raise
  finally:
    for record in records:
      record.close()


def _initial_losses(program, state: dict, train_split: datasets.Split,
                    eval_batch_size: int) -> list[float]:
  """Each member's loss before its first step, on one eval batch of training images: where
  the runaway bound starts (metrics.runaway_bound). Computed from the initialized state, so
  a resumed run gets the same bound; the batch size is the epoch evaluations', whose
  compiled program it shares."""
  batch = program.placement.eval_batch_size(eval_batch_size)
  head = train_split.subset(np.arange(min(batch, len(train_split))))
  sums = program.evaluate(state, program_lib.padded_on_device(
      head, batch, program.placement.replicated), batch)
  return [float(metrics.finalize(metrics.member(sums, k))[metrics.LOSS])
          for k in range(len(sums[metrics.COUNT]))]


def _restore(records, program, state) -> dict:
  """Loads each member's checkpoint into its slice; all must be at the same step."""
  host = devices.get(state)
  templates = [{'step': np.int32(0), **program.member_state(host, k)}
               for k in range(len(records))]
  found = [record.restore(template) for record, template in zip(records, templates)]
  steps = {record.steps for record in records}
  if len(steps) != 1:
    raise ConfigError(f'runs with checkpoints at different steps {sorted(steps)} cannot '
                      'train as one group; run them separately')
  if not any(f is not None for f in found):
    return state
  return program.assemble(found, [r.resumed_window and r.resumed_window[1] for r in records])


@dataclasses.dataclass
class _Member:
  """A run of the loop: its position among the given configs, and what it reports to."""
  index: int
  config: Any
  record: run_record.RunRecord
  observers: list
  order: batches.ShuffledBatches | None = None
  schedule: Any = None


class _Loop:
  """The step loop's state between host syncs; `run` is the loop.

  `members` are the runs still in the program, in program order: a member that stops
  (diverged, or stopped by an observer) is finished at once (its results.json written, its
  observers told) and, in a group, the program is rebuilt without it, so that it costs no
  more compute (the others go on as they would have: members share no arithmetic)."""

  def __init__(self, members, program, splits, total_steps, facts):
    first = members[0].config
    self.members, self.program, self.total_steps = members, program, total_steps
    self.splits, self.facts, self.finished = splits, facts, {}
    for member in members:
      member.order = batches.ShuffledBatches(len(splits.train), member.config.train.batch_size,
                                             member.config.seed)
      member.schedule = optimizers.make_schedule(member.config.optimizer, total_steps)
    self.batch_size = first.train.batch_size
    self.log_every = first.train.log_every_steps
    self.eval_every = first.train.eval_every_steps
    self.chunk = steps_per_call(first.train, jax.default_backend())
    # With several processes a signal is acted on at log steps, where they agree on it.
    self.processes = jax.process_count()
    self.place_data()
    self.steps_per_epoch = len(splits.train) / self.batch_size
    self.first_step_seconds = None
    self.test_probabilities = (None, None)  # (step, probabilities) of the last evaluation
    # The steps after the first call and their training seconds: the ETA's speed.
    self.timed_steps, self.timed_seconds = 0, 0.0

  def place_data(self) -> None:
    """The dataset on the program's devices (again after a re-pack: the group's device count
    may change with its size)."""
    placement = self.program.placement
    self.images = devices.put(self.splits.train.images, placement.replicated)
    self.labels = devices.put(self.splits.train.labels, placement.replicated)
    self.eval_batch_size = placement.eval_batch_size(
        self.members[0].config.train.eval_batch_size)
    self.eval_splits = {name: program_lib.padded_on_device(split, self.eval_batch_size,
                                                           placement.replicated)
                        for name, split in self.splits.eval_splits().items()}

  def indices(self, step: int, count: int) -> np.ndarray:
    """(members, batch) for one step; (steps, members, batch) for several."""
    per_step = [np.stack([m.order.indices(s) for m in self.members])
                for s in range(step, step + count)]
    return per_step[0] if count == 1 else np.stack(per_step)

  def run(self, state: dict, step: int) -> dict[int, dict]:
    """Trains from `step` until the last step or until no member runs; returns each
    member's results.json record by its index."""
    order = self.members[0].order  # every member's epochs end at the same steps
    window_start, mark = step, time.time()
    # The steps the first window's sums cover: from before the checkpoint if it cut a window
    # (its steps and seconds before the checkpoint are left out of the timing, as counted).
    resumed = self.members[0].record.resumed_window
    sums_start = resumed[0] if resumed else step
    untimed = (0, 0.0)  # the steps and seconds of this window that the ETA leaves out
    while step < self.total_steps and self.members:
      count = min(self.chunk, batches.steps_to_next_boundary(
          step, self.total_steps, self.log_every, order, self.eval_every))
      state = self.program.train(state, step, self.images, self.labels,
                                 self.indices(step, count))
      step += count
      # A signal stops the loop at this step; at a log step or an evaluation only once they
      # are done, so that the resumed run misses neither.
      stop = interrupts.pending() if self.processes == 1 else (
          signal.SIGTERM if distributed.preempted() else None)
      if self.first_step_seconds is None:  # compilation + first call; synced once
        jax.block_until_ready(state['sums'])
        self.first_step_seconds = time.time() - mark
        untimed = (count, self.first_step_seconds)
        for member in self.members:
          member.record.first_step_seconds = (member.record.first_step_seconds
                                              or self.first_step_seconds)
      epoch_end = (order.epochs_completed(step) > order.epochs_completed(step - count)
                   or step == self.total_steps)
      evaluation = epoch_end or bool(self.eval_every and step % self.eval_every == 0)
      if step % self.log_every and not evaluation:
        if stop:
          self.interrupt(state, step, time.time() - mark, stop, sums_start)
        continue
      window, state = self.program.take_sums(state)  # the only host syncs: log steps and
      # epoch ends
      if self.processes > 1:  # all stop at the same step, or the others wait for them (a
        # SIGTERM goes to JAX's preemption sync instead: distributed.preempted)
        stop = stop or distributed.agreed_signal(interrupts.pending()) or None
      now = time.time()
      seconds, mark = now - mark, now
      self.timed_steps += step - window_start - untimed[0]
      self.timed_seconds += seconds - untimed[1]
      untimed = (0, 0.0)
      # At an evaluation its console line stands for the progress line.
      progress = None if evaluation else {
          'total_steps': self.total_steps, 'steps_per_epoch': self.steps_per_epoch,
          'eta_seconds': seconds_left(self.total_steps - step, self.timed_steps,
                                      self.timed_seconds)}
      for k, member in enumerate(self.members):
        member.record.add_train_window(step, metrics.member(window, k), sums_start, seconds, {
            'learning_rate': float(member.schedule(step - 1)),
            'examples_per_second': (step - window_start) * self.batch_size / seconds}, progress)
      window_start = sums_start = step
      if evaluation:
        self.evaluate(state, step, epoch_end)
      state = self.finish_stopped(state, step, done=step >= self.total_steps)
      mark = time.time()  # evaluation, checkpoints and re-packing are not training time
      if stop and self.members:  # (a run at its last step has finished instead)
        self.interrupt(state, step, 0.0, stop, step)
    self.finish_stopped(state, step, done=True)
    return self.finished

  def interrupt(self, state: dict, step: int, window_seconds: float, signum: int,
                window_start: int) -> None:
    """After a signal: every running member checkpointed at `step` (mid-epoch too: the
    batch order and the keys are functions of seed and step, so the same command resumes it
    bit for bit), then Interrupted. At a log step or an evaluation it comes after them (the
    resumed run starts after that step and would miss them). The checkpoint keeps the train
    sums of the log window (from `window_start`) and of the steps since the last evaluation,
    so the resumed run's train metrics are those of an uninterrupted run."""
    host_state = devices.get(state)
    for k, member in enumerate(self.members):
      if member.record.running:
        member.record.train_seconds += window_seconds
        window = metrics.member(host_state['sums'], k)
        member.record.save_checkpoint(
            {'step': np.int32(step), **self.program.member_state(host_state, k)},
            (window_start, window) if window[metrics.COUNT] else None)
        logging.info('%sCheckpoint at step %d (epoch %.2f) in %s', member.record.who, step,
                     step / self.steps_per_epoch, member.record.workdir)
    interrupts.raise_stopped(signum, f'at step {step} of {self.total_steps} (epoch '
                             f'{step / self.steps_per_epoch:.2f}), with a checkpoint there')

  def evaluate(self, state: dict, step: int, epoch_end: bool) -> None:
    """Every member on every eval split (at an epoch end, or every train.eval_every_steps),
    its record and observers told, checkpoints at the epoch ends that are due."""
    evaluations = {}
    for name, split in self.eval_splits.items():
      if name == 'test' and step >= self.total_steps:  # the ensembles' input, in one pass
        evaluations[name], probabilities = self.program.evaluate(
            state, split, self.eval_batch_size, probabilities=len(self.splits.test))
        self.test_probabilities = (step, probabilities)
      else:
        evaluations[name] = self.program.evaluate(state, split, self.eval_batch_size)
    host_state, told = None, []
    for k, member in enumerate(self.members):
      record = member.record
      if not record.running:
        continue
      record.end_epoch(step, step / self.steps_per_epoch,
                       self.total_steps / self.steps_per_epoch,
                       {name: metrics.member(sums, k) for name, sums in evaluations.items()})
      if epoch_end and record.checkpoint_due(step, self.total_steps,
                                             self.members[0].order.epochs_completed(step)):
        if host_state is None:
          host_state = devices.get(state)
        record.save_checkpoint({'step': np.int32(step),
                                **self.program.member_state(host_state, k)})
      if record.running:
        event = observers_lib.EpochEnd(
            member=member.index, workdir=record.workdir, config=member.config, step=step,
            epoch=step / self.steps_per_epoch, total_epochs=self.total_steps / self.steps_per_epoch,
            history=tuple(record.history), evaluated=record.final, events=record.events,
            who=record.who)
        for observer in member.observers:
          observer.epoch_end(event)
        told.append((member, event))
    verdicts = []
    for member, event in told:  # every member's epoch_end first: see observers.py
      reasons = [r for r in (o.should_stop(event) for o in member.observers) if r]
      verdicts.append(reasons[0] if reasons else None)
    if self.processes > 1:  # process 0's observers decide (a sweep's pruner lives there)
      verdicts = distributed.from_writer(verdicts)
    for (member, _), verdict in zip(told, verdicts):
      if verdict and step < self.total_steps:  # at the last step there is nothing to save
        member.record.stop(verdict)

  def keep_probabilities(self, state: dict, step: int, ending: list[int]) -> dict | None:
    """Writes the test probabilities of the members that trained to the end (ensembles.py)
    and, when they are several, returns their ensemble's figures for results.json."""
    if not ending:
      return None
    test = self.splits.test
    evaluated_at, probabilities = self.test_probabilities
    if evaluated_at != step:  # a finished run re-reported: it evaluated nothing this time
      _, probabilities = self.program.evaluate(state, self.eval_splits['test'],
                                               self.eval_batch_size, probabilities=len(test))
    for k in ending:
      if self.members[k].record.writes:
        ensembles.write(self.members[k].record.workdir, probabilities[k], test.labels)
    if len(ending) < 2:
      return None
    ensemble = {'members': [os.path.basename(os.path.normpath(self.members[k].record.workdir))
                            for k in ending],
                'test': ensembles.figures(probabilities[ending], test.labels)}
    logging.info('Ensemble of the %d members (the mean of their probabilities): test error '
                 '%s', len(ending), metrics.show(metrics.ERROR, ensemble['test']['error']))
    return ensemble

  def finish_stopped(self, state: dict, step: int, done: bool) -> dict:
    """Finishes the members that stopped (all of them when `done`) and returns the state of
    the program that goes on without them."""
    leaving = [k for k, m in enumerate(self.members) if done or not m.record.running]
    if not leaving:
      return state
    host_state = devices.get(state)
    ensemble = self.keep_probabilities(state, step, [k for k in leaving
                                               if self.members[k].record.running])
    for k in leaving:
      member = self.members[k]
      record = member.record
      trained_to_end = record.running
      end = observers_lib.RunEnd(
          member=member.index, workdir=record.workdir, config=member.config,
          step=step if trained_to_end else record.steps,
          status='ok' if trained_to_end else record.status, history=tuple(record.history),
          final=record.final, events=record.events, splits=self.splits,
          who=record.who, **({key: self.program.member_state(host_state, k)[key]
                              for key in ('params', 'model_state')} if trained_to_end else {}))
      for observer in member.observers:
        observer.run_end(end)
      for observer in member.observers:
        observer.close()  # its pictures are in the directory before results.json
      self.finished[member.index] = record.finish(
          step, self.steps_per_epoch, **self.facts,
          ensemble=ensemble if trained_to_end else None)
      for observer in member.observers:
        observer.recorded(self.finished[member.index])
    staying = [k for k in range(len(self.members)) if k not in leaving]
    if not staying:
      self.members = []
      return state
    self.members = [self.members[k] for k in staying]
    configs = [m.config for m in self.members]
    logging.info('Going on with %d member(s) of %d', len(configs), len(staying) + len(leaving))
    # The layers the group started with, as results.json records them.
    self.program = program_lib.build(configs, self.splits.image_shape, len(self.splits.train),
                                     layer_impls=self.program.layer_impls)
    self.place_data()
    return self.program.assemble([self.program.member_state(host_state, k) for k in staying])
