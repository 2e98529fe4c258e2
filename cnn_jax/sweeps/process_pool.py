"""Runs work items in worker processes, each pinned to its own CPU core.

Small CNNs use two cores poorly: XLA's intra-op threads mostly wait on each other, so on a
2-core CPU two single-core processes, each training its own trial, get through a sweep
faster than one process using both cores (benchmarks/sweep.py measures it). The function
each worker runs is passed in (a sweep passes executors.run_alone), so this module knows
nothing of sweeps.
"""
from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
from typing import Callable, Sequence

from absl import logging


def available_cores() -> list[int]:
  return sorted(os.sched_getaffinity(0))


def _start_worker(cores, verbosity: int) -> None:
  # Before JAX starts in this worker, so XLA sizes its thread pool to the one core.
  os.sched_setaffinity(0, {cores.get()})
  # A spawned worker never runs absl's app.run: give it the parent's level, so its trials
  # log to the console ("resuming at step ...") as they would in the parent.
  logging.set_verbosity(verbosity)


def run_in_workers(function: Callable, argument_tuples: Sequence[tuple], count: int = 0) -> None:
  """function(*arguments) for each tuple, in `count` pinned workers (0: one per core).
  `function` must be importable by name (a module-level function): workers are spawned."""
  cores = available_cores()
  count = min(count or len(cores), len(argument_tuples))
  if count <= 1:
    for arguments in argument_tuples:
      function(*arguments)
    return
  context = multiprocessing.get_context('spawn')  # a fresh interpreter: no forked JAX state
  core_queue = context.SimpleQueue()
  for i in range(count):
    core_queue.put(cores[i % len(cores)])
  with concurrent.futures.ProcessPoolExecutor(count, mp_context=context,
                                              initializer=_start_worker,
                                              initargs=(core_queue,
                                                        logging.get_verbosity())) as pool:
    futures = [pool.submit(function, *arguments) for arguments in argument_tuples]
    for future in concurrent.futures.as_completed(futures):
      future.result()  # a crash in a worker stops the sweep, as it would sequentially
