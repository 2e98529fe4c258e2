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
