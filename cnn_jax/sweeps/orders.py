"""One worker over several processes (engine/distributed.py): process 0 holds the study, takes
and settles the trials, and orders the others to train the same groups at the same time.

Every step of a group involves every process, so the processes of one worker must agree on
what to train next, when to wait, and when to stop; only process 0 talks to the study (the
others have no storage of their own). Process 0 sends each decision as an order (`order`),
and the others `follow` it; a signal stops all of them between trials at once
(`stop_if_signalled`). With one process an order is simply what process 0 does.
"""
from __future__ import annotations

import signal
import time
from typing import Sequence

from cnn_jax import interrupts
from cnn_jax.engine import distributed
from cnn_jax.errors import UserError
from cnn_jax.sweeps import declaration
from cnn_jax.sweeps import executors
from cnn_jax.sweeps import trials as trials_lib


def stop_if_signalled() -> None:
  """Between trials: Interrupted after a signal (on every process of a distributed worker at
  once: they agree on it, as the loop does at its steps)."""
  where = 'between trials (each finished one is recorded)'
  if distributed.process_count() > 1:
    if distributed.preempted():
      interrupts.raise_stopped(signal.SIGTERM, where)
    signum = distributed.agreed_signal(interrupts.pending())
    if signum:
      interrupts.raise_stopped(signum, where)
  interrupts.raise_if_pending(where)


def order(message: dict) -> dict:
  """Process 0's next order to the other processes of a distributed worker: {'train': runs
  and plan}, {'wait': seconds}, {'done': True} or {'error': [class, message]}."""
  if distributed.process_count() == 1:
    return message
  return distributed.from_writer(message)


def order_error(error: BaseException) -> None:
  """Tells the other processes that process 0 stops on `error` (before it raises)."""
  order({'error': [type(error).__name__, str(error)]})


def follow(sweep: declaration.Sweep, workdir: str) -> int:
  """A process other than 0 of a distributed worker: trains what process 0 orders, with no
  study of its own (process 0 reports to it, and the loop shares process 0's pruning
  verdicts with every process)."""
  trained = 0
  while True:
    stop_if_signalled()
    received = order({})
    if 'done' in received:
      return trained
    if 'wait' in received:
      time.sleep(received['wait'])
      continue
    if 'error' in received:
      kind, message = received['error']
      raise UserError(f'process 0 of this worker stopped: {kind}: {message}')
    train = received['train']
    runs = [trials_lib.Trial(index, overrides, trials_lib.apply_overrides(
        sweep.base, overrides, f'trial {index}')) for index, overrides in train['runs']]
    carry_out(runs, [[] for _ in runs], workdir, [tuple(item) for item in train['invalid']],
              [tuple(step) for step in train['plan']])
    trained += len(train['pending'])


def carry_out(runs: Sequence[trials_lib.Trial], owners: Sequence, workdir: str,
              invalid: Sequence[tuple[int, str]], plan: Sequence[tuple[str, list[int]]]) -> None:
  """Trains the planned runs (positions in `runs`, validated and grouped by process 0 of the
  worker), each watched by its `owners`, and has the invalid ones ((position, why)) recorded
  (by process 0: the others have nothing to train there)."""
  if distributed.is_writer():
    for k, message in invalid:
      executors.record_invalid(runs[k], executors.run_dir(workdir, runs[k]), owners[k], message)
  for strategy, members in plan:
    if strategy == 'vmap':
      executors.run_group([runs[k] for k in members],
                          [executors.run_dir(workdir, runs[k]) for k in members],
                          [owners[k] for k in members], checked=True)
    else:
      executors.run_alone(runs[members[0]], executors.run_dir(workdir, runs[members[0]]),
                          owners[members[0]], checked=True)
