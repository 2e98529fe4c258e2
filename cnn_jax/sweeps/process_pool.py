"""Runs sweep trials in worker processes, each pinned to its own CPU core.

Small CNNs use two cores poorly: XLA's intra-op threads mostly wait on each other, so on a
2-core CPU two single-core processes, each training its own trial, get through a sweep
faster than one process using both cores (benchmarks/sweep.py measures it). Each worker
runs whole trials through the same code as a sequential sweep (sweep.run_alone), so trial
directories, resumption and 'invalid'/'diverged' records are the same.
"""
from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
from typing import Sequence

from absl import logging


def available_cores() -> list[int]:
  return sorted(os.sched_getaffinity(0))


def _start_worker(cores, verbosity: int) -> None:
  # Before JAX starts in this worker, so XLA sizes its thread pool to the one core.
  os.sched_setaffinity(0, {cores.get()})
  # A spawned worker never runs absl's app.run: give it the parent's level, so its trials
  # log to the console ("resuming at step ...") as they would in the parent.
  logging.set_verbosity(verbosity)


def _run_trial(trial, run_dir) -> None:
  from cnn_jax import sweep  # pylint: disable=g-import-not-at-top
  sweep.run_alone(trial, run_dir)


def run_trials(trials: Sequence, run_dirs: Sequence[str], count: int = 0) -> None:
  """Runs every trial in its run dir with `count` workers (0: one per available core)."""
  cores = available_cores()
  count = min(count or len(cores), len(trials))
  if count <= 1:
    for trial, run_dir in zip(trials, run_dirs):
      _run_trial(trial, run_dir)
    return
  context = multiprocessing.get_context('spawn')  # a fresh interpreter: no forked JAX state
  core_queue = context.SimpleQueue()
  for i in range(count):
    core_queue.put(cores[i % len(cores)])
  with concurrent.futures.ProcessPoolExecutor(count, mp_context=context,
                                              initializer=_start_worker,
                                              initargs=(core_queue,
                                                        logging.get_verbosity())) as pool:
    futures = [pool.submit(_run_trial, t, d) for t, d in zip(trials, run_dirs)]
    for future in concurrent.futures.as_completed(futures):
      future.result()  # a crash in a worker stops the sweep, as it would sequentially
