"""Which training examples go into each minibatch.

The training set is read as an endless stream of epochs, each a fresh permutation drawn from
(seed, epoch); minibatch `step` takes stream positions [step * B, (step + 1) * B). A batch may
straddle two epochs, as in CNTK's and TF1's `next_batch` readers, so "10 passes of 60,000 at
minibatch 64" is exactly 9,375 steps, as T1 counts them. Because the order is a pure function
of (seed, step), a resumed run sees the same batches it would have seen uninterrupted.
"""
from __future__ import annotations

import math

import numpy as np


class ShuffledBatches:

  def __init__(self, num_examples: int, batch_size: int, seed: int):
    self.num_examples = num_examples
    self.batch_size = batch_size
    self.seed = seed
    self._permutations: dict[int, np.ndarray] = {}

  def permutation(self, epoch: int) -> np.ndarray:
    if epoch not in self._permutations:
      if len(self._permutations) > 2:  # a batch spans at most two epochs
        self._permutations.pop(min(self._permutations))
      rng = np.random.default_rng([self.seed, epoch])
      self._permutations[epoch] = rng.permutation(self.num_examples).astype(np.int32)
    return self._permutations[epoch]

  def indices(self, step: int) -> np.ndarray:
    """Indices into the training split for minibatch `step` (0-based), shape (batch_size,)."""
    start = step * self.batch_size
    end = start + self.batch_size
    first_epoch, last_epoch = start // self.num_examples, (end - 1) // self.num_examples
    offset = first_epoch * self.num_examples
    if first_epoch == last_epoch:
      return self.permutation(first_epoch)[start - offset:end - offset]
    return np.concatenate([self.permutation(first_epoch)[start - offset:],
                           self.permutation(last_epoch)[:end - last_epoch * self.num_examples]])

  def epochs_completed(self, steps_done: int) -> int:
    return steps_done * self.batch_size // self.num_examples


def total_train_steps(train_cfg, num_examples: int) -> int:
  """train.num_train_steps when positive, else ceil(num_epochs * examples / batch size)."""
  if train_cfg.num_train_steps > 0:
    return int(train_cfg.num_train_steps)
  return math.ceil(train_cfg.num_epochs * num_examples / train_cfg.batch_size)


def steps_to_next_boundary(step: int, total_steps: int, log_every: int,
                           order: ShuffledBatches, eval_every: int = 0) -> int:
  """Steps until the next log step, evaluation (every `eval_every` steps, when > 0), epoch
  end or the last step, whichever comes first."""
  next_log = (step // log_every + 1) * log_every
  next_eval = (step // eval_every + 1) * eval_every if eval_every else total_steps
  next_epoch = order.epochs_completed(step) + 1
  epoch_end = -(-next_epoch * order.num_examples // order.batch_size)  # first step past it
  return min(next_log, next_eval, epoch_end, total_steps) - step
