"""The name of the machine a measurement belongs to: backend, processor or device, and core
count. Measurements cached under it (sweep strategies, layer implementations) are reused only
where they were taken, since the CPU model changes what is fastest."""
from __future__ import annotations

import os
import platform


def machine_key(backend: str | None = None) -> str:
  import jax  # pylint: disable=g-import-not-at-top
  backend = backend or jax.default_backend()
  device = jax.devices()[0].device_kind if backend != 'cpu' else cpu_model()
  return f'{backend}|{device}|{len(os.sched_getaffinity(0))} cores'


def cpu_model() -> str:
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def busy_factor() -> float:
  """How much slower than idle this machine runs now: the last minute's load average per
  core this process may use, at least 1."""
  try:
    load = os.getloadavg()[0]
  except OSError:  # no load average on this platform
    return 1.0
  return max(1.0, load / len(os.sched_getaffinity(0)))


def patience(seconds: float) -> float:
  """`seconds` of waiting on an idle machine, scaled by busy_factor: the one place that
  timeouts (the tests', a distributed join's) take their length from, so that a machine
  whose cores are shared waits longer instead of failing."""
  return seconds * busy_factor()
