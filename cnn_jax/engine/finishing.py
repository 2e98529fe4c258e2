"""Members leaving the loop: their results written, their observers told, the ensemble of
those that trained to the end, and the group re-packed without them."""
from __future__ import annotations

import os

from absl import logging

from cnn_jax.engine import devices
from cnn_jax.engine import ensembles
from cnn_jax.engine import group as group_lib
from cnn_jax.engine import metrics
from cnn_jax.engine import observers as observers_lib


def finish_stopped(group: group_lib.Group, state: dict, step: int, done: bool,
                   facts: dict) -> tuple[dict, dict[int, dict]]:
  """Finishes the members that stopped (all of them when `done`): (the state of the group
  that goes on without them, each finished member's results.json record by its index)."""
  # A copy of a run (engine/plan.py; its record is not shown) leaves with the run: a pruner
  # told only the run stops it alone.
  run_goes = bool(group.members) and not group.members[0].record.running
  leaving = [k for k, m in enumerate(group.members)
             if done or not m.record.running or (run_goes and not m.record.shown)]
  if not leaving:
    return state, {}
  host_state = devices.get(state)
  ensemble = _keep_probabilities(group, state, step, [
      k for k in leaving if group.members[k].record.running and group.members[k].record.shown])
  finished = {}
  for k in leaving:
    member = group.members[k]
    record = member.record
    trained_to_end = record.running
    end = observers_lib.RunEnd(
        member=member.index, workdir=record.workdir, config=member.config,
        step=step if trained_to_end else record.steps,
        status='ok' if trained_to_end else record.status, history=tuple(record.history),
        final=record.final, events=record.events, splits=group.plan.splits,
        who=record.who, **({key: group.program.member_state(host_state, k)[key]
                            for key in ('params', 'model_state')} if trained_to_end else {}))
    for observer in member.observers:
      observer.run_end(end)
    for observer in member.observers:
      observer.close()  # its pictures are in the directory before results.json
    finished[member.index] = record.finish(step, group.plan.steps_per_epoch, **facts,
                                           ensemble=ensemble if trained_to_end else None)
    for observer in member.observers:
      observer.recorded(finished[member.index])
  staying = [k for k in range(len(group.members)) if k not in leaving]
  if not staying:
    group.members = []
    return state, finished
  return group.without_stopped(host_state, staying), finished


def _keep_probabilities(group: group_lib.Group, state: dict, step: int,
                        ending: list[int]) -> dict | None:
  """Writes the test probabilities of the members that trained to the end (ensembles.py)
  and, when they are several, returns their ensemble's figures for results.json."""
  if not ending:
    return None
  test = group.plan.splits.test
  evaluated_at, probabilities = group.last_test_probabilities
  if evaluated_at != step:  # a finished run re-reported: it evaluated nothing this time
    _, probabilities = group.evaluate(state, 'test', probabilities=True)
  for k in ending:
    if group.members[k].record.writes:
      ensembles.write(group.members[k].record.workdir, probabilities[k], test.labels)
  if len(ending) < 2:
    return None
  ensemble = {'members': [os.path.basename(os.path.normpath(group.members[k].record.workdir))
                          for k in ending],
              'test': ensembles.figures(probabilities[ending], test.labels)}
  logging.info('Ensemble of the %d members (the mean of their probabilities): test error '
               '%s', len(ending), metrics.show(metrics.ERROR, ensemble['test']['error']))
  return ensemble
