"""Planning a worker's trials: which share a compiled program, and how each set executes.
`plan` decides it in one place and returns it final (calibration on the spot included).

Trials share a program when their configs differ only in values that change no shape
(engine/program.py: the seed, the optimizer's numbers, dropout rates and initializer
scales). The strategy is `config.sweep.strategy`:
  'sequential'  one trial after another in this worker;
  'vmap'        groups of up to sweep.max_group_size same-program trials as one vmapped
                program (engine/loop.py with K members);
  'auto'        what was measured fastest on this machine: benchmarks/sweep.py records its
                vmap speedup per machine (MEASUREMENTS). With nothing measured here, a CPU
                runs sequentially (on this project's 2-core CPUs vmap lost 2.5-3x) and an
                accelerator times a few steps of each group against one member and keeps
                the faster.
Trials in parallel are another matter: as many workers as asked (launch.py --workers),
each taking its own trials from the study (sweeps/worker.py).
"""
from __future__ import annotations

import json
import os
import time
from typing import Callable, Sequence

from absl import logging

from cnn_jax import atomic_files
from cnn_jax import cache_dir
from cnn_jax import machine
from cnn_jax.engine import devices
from cnn_jax.engine import grouping
from cnn_jax.engine import plan as plan_lib
from cnn_jax.engine import program as program_lib

# Where benchmarks/sweep.py records what it measured, per machine (machine_key).
MEASUREMENTS = cache_dir.cache_dir('sweep_measurements.json')


def read_measurement(backend: str, path: str = MEASUREMENTS) -> dict | None:
  """{'vmap_speedup': {K: x}, ...} measured on this machine, or None."""
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f).get(machine.machine_key(backend))


def write_measurement(backend: str, measurement: dict, path: str = MEASUREMENTS) -> None:
  everything = {}
  if os.path.exists(path):
    with open(path) as f:
      everything = json.load(f)
  everything[machine.machine_key(backend)] = measurement
  os.makedirs(os.path.dirname(path), exist_ok=True)
  atomic_files.write_json(path, everything, indent=2, sort_keys=True)


def vmap_speedup(group_size: int, measurement: dict) -> float:
  """The measured vmap speedup at the nearest measured group size not above this one."""
  measured = {int(k): v for k, v in measurement.get('vmap_speedup', {}).items()}
  sizes = [k for k in measured if 1 < k <= group_size]
  return measured[max(sizes)] if sizes else 0.0


def resolve(strategy: str, backend: str, group_size: int, measurement: dict | None) -> str:
  """'sequential', 'vmap', or 'calibrate' (time the group first)."""
  if strategy != 'auto':
    return strategy
  if measurement is None:
    return 'sequential' if backend == 'cpu' else 'calibrate'
  return 'vmap' if group_size > 1 and vmap_speedup(group_size, measurement) > 1.0 else (
      'sequential')


def plan(configs: Sequence, resume_steps: Sequence[int | None], backend: str,
         measurement: dict | None,
         calibrate: Callable[[list], bool] | None = None) -> list[tuple[str, list[int]]]:
  """[(strategy, trial positions)] in the order of their first trial, each strategy final:
  'sequential' entries hold one trial, 'vmap' entries a group. `calibrate` (default:
  vmap_is_faster) answers for groups that must be timed on the spot."""
  calibrate = calibrate or vmap_is_faster
  groups: dict[str, list[int]] = {}
  for position, (config, step) in enumerate(zip(configs, resume_steps)):
    groups.setdefault(grouping.program_key(config, step), []).append(position)
  planned = []
  for positions in groups.values():
    sweep_cfg = configs[positions[0]].sweep
    size = sweep_cfg.max_group_size
    for group in (positions[i:i + size] for i in range(0, len(positions), size)):
      strategy = resolve(sweep_cfg.strategy, backend, len(group), measurement)
      if strategy == 'calibrate':
        strategy = ('vmap' if len(group) > 1 and calibrate([configs[p] for p in group])
                    else 'sequential')
      if strategy == 'vmap' and len(group) > 1:
        planned.append(('vmap', group))
      else:
        planned += [('sequential', [p]) for p in group]
  return sorted(planned, key=lambda item: item[1][0])


def vmap_is_faster(configs: Sequence, steps: int = 20) -> bool:
  """Times `steps` steps of the whole group against the same steps of one member (both
  compiled first) on this backend: True when the group beats K one-member runs."""
  # pylint: disable=g-import-not-at-top  (JAX only after launch.py chose the allocator)
  import jax
  import numpy as np
  from cnn_jax.data import batches
  from cnn_jax.data import datasets
  first = configs[0]
  splits = datasets.load_splits(first.data)
  order = batches.ShuffledBatches(len(splits.train), first.train.batch_size, first.seed)
  seconds = {}
  for name, members in (('group', list(configs)), ('single', [first])):
    program = program_lib.Program(plan_lib.arrange(members, splits.image_shape,
                                                   len(splits.train), splits=splits))
    state = program.init()
    images = devices.put(splits.train.images, program.placement.replicated)
    labels = devices.put(splits.train.labels, program.placement.replicated)
    indices = np.stack([order.indices(0)] * len(members))
    for timed in (False, True):  # the first pass compiles
      start = time.time()
      for step in range(steps if timed else 1):
        state = program.train(state, step, images, labels, indices)
      jax.block_until_ready(state['sums'])
      seconds[name] = time.time() - start
  faster = seconds['group'] < len(configs) * seconds['single']
  logging.info('Calibration on %s: %d steps of a group of %d took %.3f s, of one member '
               '%.3f s (x%d = %.3f s): %s', jax.default_backend(), steps, len(configs),
               seconds['group'], seconds['single'], len(configs),
               len(configs) * seconds['single'], 'vmap' if faster else 'sequential')
  return faster
