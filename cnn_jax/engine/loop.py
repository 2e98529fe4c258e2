"""The training loop, written once, for a plan's K >= 1 members on a mesh of devices.

A single run is K = 1; a vmapped sweep group is K > 1 (engine/program.py compiles either).
Each iteration runs one compiled call (one step, or several scanned: the plan says), and the
host looks only at the boundaries engine/timetable.py names: at log steps and evaluations it
reads the window's metric sums (the only host syncs) and each member's progress; at epoch
ends it evaluates and checkpoints (engine/actions.py). A member whose loss stops being
finite, or runs away (metrics.divergence), is marked diverged in its RunRecord; members that
stop are finished and the others re-packed (engine/finishing.py); the loop ends when no
member is running. A signal is acted on at the next step: a checkpoint, then out.

Measured on this project's 2-core CPU (../shared/ENGINEERING.md, benchmarks/train_loop.py):
a Python loop over one jitted step, with the state donated and the whole dataset on the
device, ran an epoch of T2 in 9 s where a lax.scan over the epoch took 55 s.
"""
from __future__ import annotations

import os
import signal
import time
from typing import Any, Sequence

from absl import logging
import jax
import numpy as np

from cnn_jax import allocator
from cnn_jax import interrupts
from cnn_jax.engine import actions
from cnn_jax.engine import clock as clock_lib
from cnn_jax.engine import devices
from cnn_jax.engine import distributed
from cnn_jax.engine import events
from cnn_jax.engine import finishing
from cnn_jax.engine import grouping
from cnn_jax.engine import group as group_lib
from cnn_jax.engine import metrics
from cnn_jax.engine import observers as observers_lib
from cnn_jax.engine import plan as plan_lib
from cnn_jax.engine import population_run
from cnn_jax.engine import program as program_lib
from cnn_jax.engine import run_record
from cnn_jax.engine import segments as segments_lib
from cnn_jax.engine import timetable as timetable_lib
from cnn_jax.errors import ConfigError, UserError


def train(plan: plan_lib.Plan, workdirs: Sequence[str],
          observers: Sequence[Sequence[observers_lib.Observer]] | None = None,
          population: population_run.Spec | None = None) -> list[dict[str, Any]]:
  """Trains the plan's members together, each into its workdir, resuming from their
  checkpoints. Returns each run's results.json record.

  observers: one list per member (engine/observers.py), told of its epoch ends and its end,
  and able to stop it; the loop itself draws nothing (cnn_jax/train.py adds the pictures).
  population: the members are a population, ranked at its intervals (population-based
  training: engine/population_run.py)."""
  started = time.time()
  program = program_lib.Program(plan)
  state = program.init()
  initial_losses = _initial_losses(program, state, plan)
  num_params, summary = program.summary(devices.get(state))
  logging.info('%s', summary)
  observers = [list(o) for o in observers] if observers else [[] for _ in workdirs]
  observers += [[] for _ in range(plan.copies)]
  records = []
  try:
    failure = None
    try:
      for k, config in enumerate(plan.configs):
        # A copy (plan.copies) reads its run's checkpoint, and writes and shows nothing.
        copy, workdir = k >= plan.runs, workdirs[min(k, plan.runs - 1)]
        who = f'{os.path.basename(os.path.normpath(workdir))}: ' if plan.runs > 1 else ''
        records.append(run_record.RunRecord(workdir, config, who, started,
                                            writes=distributed.is_writer() and not copy,
                                            shown=not copy, initial_loss=initial_losses[k]))
    except UserError as error:  # (only process 0 takes the locks and checks config.json)
      failure = error
    if jax.process_count() > 1:
      failure = distributed.shared_error(failure)
    if failure is not None:
      raise failure
    state = _restore(records, program, state)
    intervals = None
    if population is not None:
      intervals = population_run.PopulationRun(population, plan, [
          os.path.basename(os.path.normpath(w)) for w in workdirs])
      intervals.restore(records[0].steps)
    for record in records:
      record.start_events(events.flatten_hparams(record.config))
    _log_start(plan, num_params, program)
    facts = _facts(plan, num_params)
    members = [group_lib.Member.of(k, c, r, o, plan)
               for k, (c, r, o) in enumerate(zip(plan.configs, records, observers))]
    with interrupts.catching():  # SIGTERM, SIGINT: a checkpoint at the next step, then out
      finished = run(group_lib.Group(plan, members, program, intervals), state,
                     records[0].steps, facts)
    return [finished[k] for k in range(plan.runs)]
  except BaseException:
    for member_observers in observers:
      for observer in member_observers:
        observer.close(cancel=True)
    raise
  finally:
    for record in records:
      record.close()


def run(group: group_lib.Group, state: dict, step: int, facts: dict) -> dict[int, dict]:
  """Trains the group from `step` until the last step or until no member runs; returns each
  member's results.json record by its index."""
  plan = group.plan
  segments = segments_lib.Segments.of(plan.first)  # (piecewise-constant traced values)
  timetable = timetable_lib.Timetable(
      plan.first.train, group.members[0].order, plan.total_steps, plan.steps_per_call,
      group.population.spec.interval_steps if group.population else 0,
      segments.starts if segments else ())
  clock = clock_lib.TrainingClock(step)
  # The first step the window's sums cover: before the checkpoint if it cut a window (those
  # steps' seconds are left out of the timing, as counted before).
  resumed = group.members[0].record.resumed_window
  sums_start = resumed[0] if resumed else step
  several = jax.process_count() > 1  # processes act on a signal at log steps, agreed
  finished = {}
  while step < plan.total_steps and group.members:
    if segments is not None:
      state = segments.at(group, state, step)
    steps = timetable.steps_to_next_call_end(step)
    state = group.train(state, step, steps)
    step += steps
    # A signal stops the loop at this step; at a log step or an evaluation only once they
    # are done, so that the resumed run misses neither.
    stop = (signal.SIGTERM if distributed.preempted() else None) if several else (
        interrupts.pending())
    first_call_seconds = clock.called(steps, state)
    if first_call_seconds is not None:
      for member in group.members:
        member.record.first_step_seconds = (member.record.first_step_seconds
                                            or first_call_seconds)
    due = timetable.due(step, steps)
    if not due.window_closes:
      if stop:
        actions.checkpoint_and_stop(group, state, step, clock.open_seconds(), stop, sums_start)
      continue
    window_sums, state = group.program.take_sums(state)
    if several:  # all stop at the same step, or the others wait for them (a SIGTERM goes
      # to JAX's preemption sync instead: distributed.preempted)
      stop = stop or distributed.agreed_signal(interrupts.pending()) or None
    actions.close_window(group, step, window_sums, sums_start, clock, due)
    sums_start = step
    if due.evaluation:
      state = actions.evaluate(group, state, step, due)
    elif group.population is not None:  # (a diverged member stays: population_run.py)
      group.population.revive_diverged(group)
    state, done = finishing.finish_stopped(group, state, step, step >= plan.total_steps, facts)
    finished.update(done)
    clock.restart()  # evaluation, checkpoints and re-packing are not training time
    if stop and group.members:  # (a run at its last step has finished instead)
      actions.checkpoint_and_stop(group, state, step, 0.0, stop, step)
  _, done = finishing.finish_stopped(group, state, step, True, facts)
  finished.update(done)
  return finished


def _initial_losses(program: program_lib.Program, state: dict,
                    plan: plan_lib.Plan) -> list[float]:
  """Each member's loss before its first step, on one eval batch of training images: where
  the runaway bound starts (metrics.runaway_bound). Computed from the initialized state, so
  a resumed run gets the same bound; the batch size is the epoch evaluations', whose
  compiled program it shares."""
  batch = plan.placement.eval_batch_size(plan.first.train.eval_batch_size)
  train_split = plan.splits.train
  head = train_split.subset(np.arange(min(batch, len(train_split))))
  sums = program.evaluate(state, program_lib.padded_on_device(
      head, batch, plan.placement.replicated), batch)
  return [float(metrics.finalize(metrics.member(sums, k))[metrics.LOSS])
          for k in range(len(sums[metrics.COUNT]))]


def _restore(records, program: program_lib.Program, state: dict) -> dict:
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


def _log_start(plan: plan_lib.Plan, num_params: int, program: program_lib.Program) -> None:
  first = plan.first
  num_train = len(plan.splits.train)
  group = (f' as one of a vmapped group of {plan.size} copies (segments.group_size)'
           if plan.copies else f' as a vmapped group of {plan.size} '
           f'({grouping.differing_values(plan.configs)})' if plan.size > 1 else '')
  logging.info('Training %s%s: %d parameters, %d steps of %d (%.2f epochs of %d), on %d %s '
               'device(s)%s', first.model.name, group,
               num_params, plan.total_steps, first.train.batch_size,
               plan.total_steps * first.train.batch_size / num_train, num_train,
               program.placement.count, jax.default_backend(),
               # The host allocator matters to CPU runs only (docs/PERFORMANCE.md).
               f', {allocator.described()}' if jax.default_backend() == 'cpu' else '')


def _facts(plan: plan_lib.Plan, num_params: int) -> dict:
  """What results.json records of how every member ran."""
  return {
      'params': num_params,
      'num_examples': {'train': len(plan.splits.train),
                       **{name: len(s) for name, s in plan.splits.eval_splits().items()}},
      # The group a member started in, even if it trained its last steps in a smaller one.
      'executor': {'members': plan.size, 'devices': plan.placement.count,
                   'steps_per_call': plan.steps_per_call,
                   'layers': plan.layer_impls.describe()},
      'environment': {'backend': jax.default_backend(),
                      'device': jax.devices()[0].device_kind,
                      'jax_version': jax.__version__},
  }
