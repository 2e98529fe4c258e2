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


NVIDIA_GPUS = '/proc/driver/nvidia/gpus'  # one entry per GPU, while the driver is loaded


def visible_gpus(environ=os.environ, driver_list: str = NVIDIA_GPUS) -> list[str]:
  """The GPUs that workers are spread over, found without starting JAX (which would take
  their memory before the workers): those $CUDA_VISIBLE_DEVICES names (empty: none), else
  every GPU the NVIDIA driver lists."""
  visible = environ.get('CUDA_VISIBLE_DEVICES')
  if visible is not None:
    return [device.strip() for device in visible.split(',') if device.strip()]
  try:
    return [str(i) for i in range(len(os.listdir(driver_list)))]
  except OSError:
    return []


def default_count() -> int:
  """--workers=0: one per GPU (visible_gpus; each worker gets its own), else one per CPU
  core."""
  return len(visible_gpus()) or len(available_cores())


# What each worker may preallocate of a GPU it shares with others: JAX's default is 75% for
# every process, so the second worker on a GPU failed to start.
SHARED_GPU_MEMORY = 0.9


def gpu_environment(worker: int, count: int, gpus: list[str], environ=os.environ) -> dict:
  """The environment variables worker `worker` of `count` sets before JAX starts: its GPU
  (round robin over `gpus`), and, where several workers share that GPU, a share of its
  memory each (unless the user set JAX's memory variables)."""
  if not gpus:
    return {}
  device = gpus[worker % len(gpus)]
  sharing = len(range(worker % len(gpus), count, len(gpus)))
  settings = {'CUDA_VISIBLE_DEVICES': device}
  if sharing > 1 and not any(name in environ for name in (
      'XLA_PYTHON_CLIENT_MEM_FRACTION', 'XLA_PYTHON_CLIENT_PREALLOCATE',
      'XLA_PYTHON_CLIENT_ALLOCATOR')):
    settings['XLA_PYTHON_CLIENT_MEM_FRACTION'] = f'{SHARED_GPU_MEMORY / sharing:.3f}'
  return settings


def _start(function: Callable, arguments: tuple, core: int, settings: dict,
           verbosity: int) -> None:
  # Before JAX starts in this worker, so XLA sizes its thread pool to the one core (and a
  # GPU worker sees its one device, and preallocates only its share of a shared one).
  os.sched_setaffinity(0, {core})
  os.environ.update(settings)
  # A spawned worker never runs absl's app.run: give it the parent's level and absl's line
  # format, so its trials log to the console ("Resuming ... at step ...") as in the parent.
  logging.use_absl_handler()
  logging.set_verbosity(verbosity)
  if settings:
    logging.info('%s: %s', multiprocessing.current_process().name,
                 ' '.join(f'{name}={value}' for name, value in settings.items()))
  interrupts.quiet()  # the parent's line speaks for its workers
  try:
    with interrupts.catching():
      function(*arguments)
  except interrupts.Interrupted as stopped:  # what it saved, in the log; the parent tells how
    logging.info('%s: stopped by %s %s', multiprocessing.current_process().name,  # to resume
                 interrupts.name(stopped.signum), stopped.where)
    sys.exit(stopped.exit_status)


def run_workers(function: Callable, arguments: Callable[[int], tuple], count: int) -> list[int]:
  """function(*arguments(i)) in `count` pinned worker processes; returns their exit codes
  (negative: the signal that ended one). `function` must be importable by name (a
  module-level function): workers are spawned, a fresh interpreter each (no forked JAX
  state)."""
  cores, gpus = available_cores(), visible_gpus()
  context = multiprocessing.get_context('spawn')
  processes = []
  for i in range(count):
    process = context.Process(target=_start, name=f'sweep-worker-{i}', args=(
        function, arguments(i), cores[i % len(cores)], gpu_environment(i, count, gpus),
        logging.get_verbosity()))
    process.start()
    processes.append(process)
  with interrupts.catching():
    interrupts.add_listener(lambda signum: [os.kill(p.pid, signum) for p in processes
                                            if p.exitcode is None])
    for process in processes:
      process.join()
    interrupts.raise_if_pending('(its workers checkpointed their runs)')
  return [process.exitcode for process in processes]
