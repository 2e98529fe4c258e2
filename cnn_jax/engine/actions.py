"""The loop's periodic actions: what each does when engine/timetable.py says it is due.

  close_window       at log steps and evaluations: each member's train metrics of the
                     window, its progress line (records: engine/run_record.py)
  evaluate           at epoch ends, every train.eval_every_steps and a population's
                     intervals: every member on every eval split, the population ranked
                     (engine/population_run.py), checkpoints at the epoch ends that are due,
                     the observers told, and the members they stop marked
  checkpoint_and_stop  after a signal: every running member checkpointed where it is, then
                     Interrupted (the same command resumes it bit for bit)
Finishing members and re-packing the group are engine/finishing.py's.
"""
from __future__ import annotations

from absl import logging
import numpy as np

from cnn_jax import interrupts
from cnn_jax.engine import clock as clock_lib
from cnn_jax.engine import devices
from cnn_jax.engine import distributed
from cnn_jax.engine import group as group_lib
from cnn_jax.engine import metrics
from cnn_jax.engine import observers as observers_lib
from cnn_jax.engine import timetable as timetable_lib


def close_window(group: group_lib.Group, step: int, window_sums: dict, sums_start: int,
                 clock: clock_lib.TrainingClock, due: timetable_lib.Due) -> None:
  """Each member's train metrics of the window that ends at `step` (its sums from
  `sums_start`), with a progress line at log steps (an evaluation's line stands for it)."""
  plan = group.plan
  seconds, steps = clock.close_window(step)
  progress = None if due.evaluation else {
      'total_steps': plan.total_steps, 'steps_per_epoch': plan.steps_per_epoch,
      'eta_seconds': clock.eta(plan.total_steps - step)}
  for k, member in enumerate(group.members):
    member.record.add_train_window(step, metrics.member(window_sums, k), sums_start, seconds, {
        'learning_rate': float(member.schedule(step - 1)),
        'examples_per_second': steps * plan.first.train.batch_size / seconds}, progress)


def evaluate(group: group_lib.Group, state: dict, step: int, due: timetable_lib.Due) -> dict:
  """Every member on every eval split, its record told; a population's ranking at its
  intervals (which may change the state: returned); checkpoints at the epoch ends that are
  due; the observers told, and the members they stop marked (process 0's observers decide
  over several processes: a sweep's pruner lives there)."""
  plan = group.plan
  evaluations = {}
  for name in group.eval_splits:
    if name == 'test' and step >= plan.total_steps:  # the ensembles' input, in one pass
      evaluations[name], probabilities = group.evaluate(state, name, probabilities=True)
      group.last_test_probabilities = (step, probabilities)
    else:
      evaluations[name] = group.evaluate(state, name)
  epoch, total_epochs = step / plan.steps_per_epoch, plan.total_steps / plan.steps_per_epoch
  for k, member in enumerate(group.members):
    if member.record.running:
      member.record.end_epoch(step, epoch, total_epochs, {
          name: metrics.member(sums, k) for name, sums in evaluations.items()})
  if group.population is not None and step < plan.total_steps:  # (at the end it diverged)
    group.population.revive_diverged(group)
  due_checkpoints = [due.epoch_end and m.record.checkpoint_due(
      step, plan.total_steps, m.order.epochs_completed(step)) for m in group.members]
  if group.population is not None:
    if due.interval:  # (after the records: they hold the scores it ranks on)
      state = group.population.select(group, state, step, evaluations)
    elif any(due_checkpoints):
      group.population.save(step)
  host_state, told = None, []
  for k, member in enumerate(group.members):
    record = member.record
    if not record.running:
      continue
    if due_checkpoints[k]:
      if host_state is None:
        host_state = devices.get(state)
      record.save_checkpoint({'step': np.int32(step),
                              **group.program.member_state(host_state, k)})
    event = observers_lib.EpochEnd(
        member=member.index, workdir=record.workdir, config=member.config, step=step,
        epoch=epoch, total_epochs=total_epochs, history=tuple(record.history),
        evaluated=record.final, events=record.events, who=record.who)
    for observer in member.observers:
      observer.epoch_end(event)
    told.append((member, event))
  verdicts = []
  for member, event in told:  # every member's epoch_end first: see observers.py
    reasons = [r for r in (o.should_stop(event) for o in member.observers) if r]
    verdicts.append(reasons[0] if reasons else None)
  if distributed.process_count() > 1:
    verdicts = distributed.from_writer(verdicts)
  for (member, _), verdict in zip(told, verdicts):
    if verdict and step < plan.total_steps:  # at the last step there is nothing to save
      member.record.stop(verdict)
  return state


def checkpoint_and_stop(group: group_lib.Group, state: dict, step: int,
                        window_seconds: float, signum: int, window_start: int) -> None:
  """After a signal: every running member checkpointed at `step` (mid-epoch too: the batch
  order and the keys are functions of seed and step), then Interrupted. At a log step or an
  evaluation it comes after them (the resumed run starts after that step and would miss
  them). The checkpoint keeps the train sums of the log window (from `window_start`), so the
  resumed run's train metrics are those of an uninterrupted run."""
  plan = group.plan
  host_state = devices.get(state)
  epoch = step / plan.steps_per_epoch
  if group.population is not None:
    group.population.save(step)
  for k, member in enumerate(group.members):
    if member.record.running:
      member.record.train_seconds += window_seconds
      window = metrics.member(host_state['sums'], k)
      member.record.save_checkpoint(
          {'step': np.int32(step), **group.program.member_state(host_state, k)},
          (window_start, window) if window[metrics.COUNT] else None)
      if member.record.shown:
        logging.info('%sCheckpoint at step %d (epoch %.2f) in %s', member.record.who, step,
                     epoch, member.record.workdir)
  interrupts.raise_stopped(signum, f'at step {step} of {plan.total_steps} (epoch '
                           f'{epoch:.2f}), with a checkpoint there')
