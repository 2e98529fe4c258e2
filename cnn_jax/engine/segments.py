"""Piecewise-constant traced values (config.segments), applied as a run goes.

A population's member (population-based training: engine/population_run.py) lives through
segments: between two of its intervals it trains with some traced values, and the weights it
ends with may come from other members, each of which trained with its own data order and
dropout key. `config.segments` writes that history down (sweeps/population_sweep.py writes
the best member's), and a run with it trains the same steps: `seed` gives the initial
parameters, and from each segment's start the traced values are the segment's, the data order
and the key those of the segment's seed. Alone, it matches the member to float tolerance over
a short run; as one of the population's number of copies (segments.group_size, engine/plan.py)
it runs the population's program and matches bit for bit. The scheduled fields are traced inputs of the program
(engine/grouping.traced_values), so changing them changes no program; the loop ends a call at
every segment start (engine/timetable.py).
"""
from __future__ import annotations

import bisect

from absl import logging
import jax
import numpy as np

from cnn_jax.data import batches
from cnn_jax.engine import devices
from cnn_jax.engine import step as step_lib


class Segments:
  """A config's segments: `at(group, state, step)` before each call puts the segment of
  `step` in place, once per segment (and on resume, in the segment it resumes in)."""

  def __init__(self, segments_cfg):
    self.starts = tuple(int(s) for s in segments_cfg.starts)
    self.seeds = tuple(int(s) for s in segments_cfg.seeds)
    self.values = {path: tuple(float(v) for v in values)
                   for path, values in zip(segments_cfg.paths, segments_cfg.levels)}
    self._current = None

  @classmethod
  def of(cls, config) -> 'Segments | None':
    segments = config.get('segments')
    return cls(segments) if segments is not None and len(segments.starts) else None

  def at(self, group, state: dict, step: int) -> dict:
    index = bisect.bisect_right(self.starts, step) - 1
    if index == self._current:
      return state
    self._current = index
    seed, members = self.seeds[index], group.program.placement.members
    size = len(group.members)
    traced = {section: dict(fields) for section, fields in state['traced'].items()}
    for path, values in self.values.items():
      section, _, field = path.partition('.')
      traced[section][field] = devices.put(np.full(size, values[index], np.float32), members)
    key = np.asarray(jax.random.key_data(step_lib.member_keys(seed)[1]))
    for member in group.members:
      member.order = batches.ShuffledBatches(member.order.num_examples,
                                             member.order.batch_size, seed)
    logging.info('Segment %d from step %d: seed %d for the data order and the key; %s', index,
                 self.starts[index], seed, ', '.join(
                     f'{path}={values[index]:.6g}' for path, values in self.values.items()))
    return {**state, 'traced': traced,
            'key': devices.put(np.stack([key] * size), members)}
