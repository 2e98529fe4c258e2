"""Local worker processes for a sweep, each pinned to its own CPU core (or given its own
accelerator).

Small CNNs use two cores poorly: XLA's intra-op threads mostly wait on each other, so on a
2-core CPU two single-core processes, each training its own trial, get through a sweep
faster than one process using both cores (benchmarks/search.py measures trials per hour
with 1 and 2 workers). Workers are plain processes, not a pool: one that is killed (a
SIGKILL, the OOM killer) leaves the others running, and its trial to them (sweeps/worker.py).
A SIGTERM or SIGINT to the parent goes on to every worker, which checkpoints its runs at the
next step and exits (interrupts.py); the parent then exits as they did.
"""
from __future__ import annotations

import multiprocessing
import os
import sys
from typing import Callable

from absl import logging

from cnn_jax import interrupts


def available_cores() -> list[int]:
  return sorted(os.sched_getaffinity(0))


def default_count() -> int:
  """--workers=0: one per GPU named in $CUDA_VISIBLE_DEVICES (each worker gets its own),
  else one per CPU core. (JAX is not started in the parent to count devices: it would take
  the GPUs' memory before the workers.)"""
  visible = os.environ.get('CUDA_VISIBLE_DEVICES')
  return len(visible.split(',')) if visible else len(available_cores())


def _start(function: Callable, arguments: tuple, core: int, device: str | None,
           verbosity: int) -> None:
  # Before JAX starts in this worker, so XLA sizes its thread pool to the one core (and a
  # GPU worker sees its one device).
  os.sched_setaffinity(0, {core})
  if device is not None:
    os.environ['CUDA_VISIBLE_DEVICES'] = device
  # A spawned worker never runs absl's app.run: give it the parent's level and absl's line
  # format, so its trials log to the console ("Resuming ... at step ...") as in the parent.
  logging.use_absl_handler()
  logging.set_verbosity(verbosity)
  try:
    with interrupts.catching():
      function(*arguments)
  except interrupts.Interrupted as stopped:
    print(f'{multiprocessing.current_process().name}: {stopped.message}', file=sys.stderr)
    sys.exit(stopped.exit_status)


def run_workers(function: Callable, arguments: Callable[[int], tuple], count: int) -> list[int]:
  """function(*arguments(i)) in `count` pinned worker processes; returns their exit codes
  (negative: the signal that ended one). `function` must be importable by name (a
  module-level function): workers are spawned, a fresh interpreter each (no forked JAX
  state)."""
  cores = available_cores()
  visible = os.environ.get('CUDA_VISIBLE_DEVICES')
  devices = visible.split(',') if visible else None
  context = multiprocessing.get_context('spawn')
  processes = []
  for i in range(count):
    device = devices[i % len(devices)] if devices else None
    process = context.Process(target=_start, name=f'sweep-worker-{i}', args=(
        function, arguments(i), cores[i % len(cores)], device, logging.get_verbosity()))
    process.start()
    processes.append(process)
  with interrupts.catching():
    interrupts.add_listener(lambda signum: [os.kill(p.pid, signum) for p in processes
                                            if p.exitcode is None])
    for process in processes:
      process.join()
    interrupts.raise_if_pending('(its workers checkpointed their runs)')
  return [process.exitcode for process in processes]
