"""XLA's CPU thread pools, sized so that collectives over several CPU devices cannot deadlock.

XLA's CPU client has two pools, each of max(cores, local CPU devices) threads (PJRT_NPROC,
read once when JAX starts its CPU backend, replaces the core count). A step over N devices
needs N of them at once for the N devices' executions, each of which waits for its all-reduce
to be joined by the others; but while JAX dispatches the next step, that step's N launches
take threads of the same pool and can wait there, for a device's room for computations in
flight, until the current step ends. With N = 4 on 2 cores (4 threads) a launch took the
thread that device 3's execution needed: devices 0-2 waited in the all-reduce for it, and
XLA aborted after 40 s ("Expected 4 threads to join the rendezvous, but only 3 of them
arrived"). Seen with gdb on 2026-12-01 (jax 0.10.2, AMD EPYC 2 cores, another process busy):
PJRT_NPROC 4, 5 and 6 aborted, 8 and 16 finished. So the pools get 2 threads per device:
one for each device's execution and one for its next launch.

`size_pools_before_jax()` sets PJRT_NPROC from the device count that XLA_FLAGS (or
JAX_NUM_CPU_DEVICES) forces; the entry points call it before JAX starts (startup.py).
`check(devices)` refuses, before training, a process whose pools are too small for the
devices it was given, with a line that says what to set.
"""
from __future__ import annotations

import os
import re

from cnn_jax.errors import ConfigError

_FORCED = re.compile(r'--xla_force_host_platform_device_count=(\d+)')
THREADS_PER_DEVICE = 2


def forced_device_count(environ=os.environ) -> int:
  """The CPU device count that JAX_NUM_CPU_DEVICES or XLA_FLAGS forces (1: none forced)."""
  if environ.get('JAX_NUM_CPU_DEVICES', '').strip().isdigit():
    return int(environ['JAX_NUM_CPU_DEVICES'])
  found = _FORCED.findall(environ.get('XLA_FLAGS', ''))
  return int(found[-1]) if found else 1


def cores() -> int:
  return len(os.sched_getaffinity(0))


def pool_size(environ=os.environ) -> int:
  """The threads XLA's CPU pools get in a process started with `environ` (XLA's own rule)."""
  for name in ('PJRT_NPROC', 'NPROC'):
    if environ.get(name, '').strip().isdigit():
      return max(int(environ[name]), forced_device_count(environ))
  return max(cores(), forced_device_count(environ))


def needed(devices: int) -> int:
  return THREADS_PER_DEVICE * devices if devices > 1 else 1


def size_pools_before_jax(environ=os.environ) -> None:
  """Raises PJRT_NPROC to 2 threads per forced CPU device where the default is smaller.
  Call before JAX starts its CPU backend; an explicit PJRT_NPROC is left as it is."""
  devices = forced_device_count(environ)
  if 'PJRT_NPROC' not in environ and pool_size(environ) < needed(devices):
    environ['PJRT_NPROC'] = str(needed(devices))


def check(devices: int, backend: str) -> None:
  """One line, before training, where `devices` CPU devices would share too few threads."""
  if backend != 'cpu' or devices < 2 or pool_size() >= needed(devices):
    return
  raise ConfigError(
      f'{devices} CPU devices with XLA thread pools of {pool_size()} threads can deadlock in '
      f'their collectives (cnn_jax/cpu_threads.py): set PJRT_NPROC={needed(devices)} (or '
      'more) before JAX starts, as launch.py does, or use train.num_devices=1')
