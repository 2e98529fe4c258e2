"""The members the loop trains together and their program, with the dataset on its devices.

A member is one run: its config, its RunRecord, its observers, its batch order and its
learning-rate schedule (for the log). The group's members are those still in the program,
in program order; when some stop (diverged, or stopped by an observer), `without` re-packs
the others into a smaller program, so that the stopped ones cost no more compute (members
share no arithmetic: the others go on exactly as they would have).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from absl import logging
import numpy as np

from cnn_jax.data import batches
from cnn_jax.engine import devices
from cnn_jax.optim import optimizers
from cnn_jax.engine import plan as plan_lib
from cnn_jax.engine import program as program_lib
from cnn_jax.engine import run_record


@dataclasses.dataclass
class Member:
  """One run of the loop."""
  index: int  # its position among the configs the loop was given
  config: Any
  record: run_record.RunRecord
  observers: list
  order: batches.ShuffledBatches
  schedule: Any  # the learning rate by step, for its progress lines

  @classmethod
  def of(cls, index: int, config, record: run_record.RunRecord, observers: list,
         plan: plan_lib.Plan) -> 'Member':
    return cls(index, config, record, observers,
               batches.ShuffledBatches(len(plan.splits.train), config.train.batch_size,
                                       config.seed),
               optimizers.make_schedule(config.optimizer, plan.total_steps))


class Group:
  """The members still training, their plan and program, and the data on its devices.

  last_test_probabilities: (step, every member's test-split probabilities) of the last
  evaluation that kept them: the ensembles' input at the end (engine/finishing.py).
  population: a population's intervals (engine/population_run.py), or None."""

  def __init__(self, plan: plan_lib.Plan, members: Sequence[Member],
               program: program_lib.Program, population=None):
    self.plan, self.members, self.program = plan, list(members), program
    self.population = population
    self.last_test_probabilities = (None, None)
    self._place_data()

  def _place_data(self) -> None:
    """The dataset on the program's devices (again after a re-pack: the group's device
    count may change with its size)."""
    placement = self.program.placement
    splits = self.plan.splits
    self.images = devices.put(splits.train.images, placement.replicated)
    self.labels = devices.put(splits.train.labels, placement.replicated)
    self.eval_batch_size = placement.eval_batch_size(self.plan.first.train.eval_batch_size)
    self.eval_splits = {name: program_lib.padded_on_device(split, self.eval_batch_size,
                                                           placement.replicated)
                        for name, split in splits.eval_splits().items()}

  def train(self, state: dict, step: int, steps: int) -> dict:
    """`steps` train steps of every member from `step`, in one compiled call."""
    per_step = [np.stack([m.order.indices(s) for m in self.members])
                for s in range(step, step + steps)]
    indices = per_step[0] if steps == 1 else np.stack(per_step)
    return self.program.train(state, step, self.images, self.labels, indices)

  def evaluate(self, state: dict, split: str, probabilities: bool = False):
    """Every member's eval sums on `split` (with its test probabilities: see Program)."""
    return self.program.evaluate(state, self.eval_splits[split], self.eval_batch_size,
                                 probabilities=len(self.plan.splits.test) if probabilities
                                 else 0)

  def without_stopped(self, host_state: dict, staying: Sequence[int]) -> dict:
    """Re-packs the members at `staying` into a program of their own; their state in it."""
    before = len(self.members)
    self.members = [self.members[k] for k in staying]
    logging.info('Going on with %d member(s) of %d', len(self.members), before)
    self.plan = self.plan.without(staying)
    self.program = program_lib.Program(self.plan)
    self._place_data()
    return self.program.assemble([self.program.member_state(host_state, k) for k in staying])
