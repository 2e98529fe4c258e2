"""What the loop does for a population (population-based training: engine/population.py) at
its intervals, and what it keeps of them.

At each interval (the timetable evaluates there) every member's objective is read from the
evaluation just made, and the population's one compiled exploit-and-explore runs on the
device with the key (the declaration's seed, the interval's number): a resumed population
draws as an uninterrupted one. What happened goes to `population.json` in the sweep
directory: each interval's step, scores, whose state each member took, and every member's
traced values after it (the lineage and the hyperparameter trajectories). It is written
before the members' checkpoints of that step and cut back, on resume, to the step they
restore. Each member's TensorBoard events get its traced values, its score and whose state
it took, as scalars under `population/`.

A member whose loss diverges stays in the population (its program is the population's): it
is marked, ranks last at the next interval (a NaN score), and takes a better member's state
there.
"""
from __future__ import annotations

import dataclasses
import math
import os

from absl import logging
import numpy as np

from cnn_jax import atomic_files
from cnn_jax.engine import devices
from cnn_jax.engine import distributed
from cnn_jax.engine import metrics
from cnn_jax.engine import population
from cnn_jax.errors import ConfigError

FILENAME = 'population.json'


@dataclasses.dataclass(frozen=True)
class Spec:
  """A population as the loop runs it (sweeps/population_sweep.py makes it from h.pbt).

  interval_steps  steps between rankings (> 0)
  objective       '<split>/<metric>' of an evaluation, ranked by `rule.maximize`
  seed            the selections' key
  directory       where population.json goes (the sweep directory)"""
  rule: population.Rule
  interval_steps: int
  objective: str
  seed: int
  directory: str

  @property
  def paths(self) -> tuple[str, ...]:
    return tuple(f'{b.section}.{b.field}' for b in self.rule.bounds)


class PopulationRun:
  """A population's intervals in one training loop."""

  def __init__(self, spec: Spec, plan, names: list[str]):
    missing = [p for p, b in zip(spec.paths, spec.rule.bounds)
               if b.field not in plan.traced.get(b.section, {})]
    if missing:  # the initial draws differ, so the plan traces every path (sweeps/pbt.py)
      raise ConfigError(f'population: {", ".join(missing)} must differ between the members '
                        'at the start, so that the program takes them as inputs')
    self.spec, self.names = spec, list(names)
    self.path = os.path.join(spec.directory, FILENAME)
    self.intervals: list[dict] = []
    self.diverged: set[int] = set()
    self.start = {path: [float(v) for v in plan.traced[b.section][b.field]]
                  for path, b in zip(spec.paths, spec.rule.bounds)}

  def restore(self, step: int) -> None:
    """The intervals recorded up to `step`, the step the members' checkpoints restore (over
    several processes, process 0's record: the others' machines may not hold the file)."""
    recorded = None
    if distributed.is_writer() and step and os.path.exists(self.path):
      recorded = atomic_files.read_json(self.path)
    recorded = distributed.from_writer(recorded)
    if recorded is not None:
      self.intervals = [i for i in recorded.get('intervals', []) if i['step'] <= step]
      marked = recorded.get('diverged') or {}
      self.diverged = set(marked.get('members', [])) if marked.get('step') == step else set()
    self.save(step)

  def revive_diverged(self, group) -> None:
    """Members whose records say they diverged go on training, marked for the next ranking."""
    for k, member in enumerate(group.members):
      if member.record.status == 'diverged':
        logging.warning('%sdiverged; it stays in the population and takes a better member\'s '
                        'state at the next interval', member.record.who)
        member.record.carry_on()
        self.diverged.add(k)

  def select(self, group, state: dict, step: int, evaluations: dict) -> dict:
    """The interval at `step`: each member's score from `evaluations` ({split: host sums}),
    exploit and explore on the device; the new state."""
    split, _, name = self.spec.objective.partition('/')
    scores = np.asarray([float('nan') if k in self.diverged else
                         metrics.finalize(metrics.member(evaluations[split], k))[name]
                         for k in range(len(group.members))], np.float32)
    placement = group.program.placement
    key = population.selection_key(self.spec.seed, step // self.spec.interval_steps)
    state, source = population.compiled(self.spec.rule, placement.members,
                                        placement.replicated)(
        devices.put(key, placement.replicated), state,
        devices.put(scores, placement.replicated))
    source = [int(s) for s in devices.get(source)]
    traced = devices.get(state['traced'])
    values = {path: [float(v) for v in traced[b.section][b.field]]
              for path, b in zip(self.spec.paths, self.spec.rule.bounds)}
    self.diverged = {k for k in self.diverged if source[k] == k}
    self.intervals.append({'step': step, 'scores': [_number(s) for s in scores],
                           'source': source, 'values': values})
    self.save(step)
    for k, member in enumerate(group.members):
      member.record.events.write_scalars(step, {
          'population/score': scores[k], 'population/took_state_of': source[k],
          **{f'population/{path}': v[k] for path, v in values.items()}})
    moved = [(k, s) for k, s in enumerate(source) if s != k]
    best = int(np.nanargmax(scores) if self.spec.rule.maximize else np.nanargmin(scores)) if (
        not np.isnan(scores).all()) else 0
    logging.info('Population at step %d: best %s %.4f (%s); %s', step, self.spec.objective,
                 scores[best], self.names[best], '; '.join(
                     f'{self.names[k]} takes the state of {self.names[s]}' for k, s in moved)
                 or 'nobody moves')
    return state

  def save(self, step: int) -> None:
    """population.json as of `step`: at each interval, and before the members' checkpoints
    (the members marked diverged then are part of what they resume)."""
    if not distributed.is_writer():
      return
    atomic_files.write_json(self.path, {
        'objective': self.spec.objective,
        'direction': 'maximize' if self.spec.rule.maximize else 'minimize',
        'interval_steps': self.spec.interval_steps, 'seed': self.spec.seed,
        'members': self.names, 'paths': list(self.spec.paths), 'start': self.start,
        'intervals': self.intervals,
        'diverged': {'step': step, 'members': sorted(self.diverged)},
    }, indent=1)


def _number(score: float) -> float | None:
  """JSON has no NaN: a diverged member's score is null."""
  return None if math.isnan(score) else float(score)
