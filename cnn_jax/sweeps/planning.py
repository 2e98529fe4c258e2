"""Which sweep trials can train together as one vmapped program, and whether they should.

Trials form a group when their configs differ only in values that change no shape and no
compiled program: the seed, the optimizer's numbers (optim.TRACEABLE_FIELDS) and the model's
dropout rates and initializer scales (models.TRACEABLE_FIELDS). Filters, strides, pooling,
activation, batch size, run length... change shapes or the program, so those trials compile
separately.

The strategy is `config.sweep.strategy`:
  'sequential'  one trial after another, each a plain jitted step (train.py);
  'vmap'        groups of up to `config.sweep.max_group_size` trials as one vmapped program
                (group_train.py);
  'processes'   trials one after another in `config.sweep.processes` worker processes (0:
                one per CPU core), each pinned to its core (process_pool.py);
  'auto'        per backend, from measurements. On CPU, never vmap: benchmarks/sweep.py
                measured vmapped groups at 0.31-0.41x of one-after-another on this project's
                2-core machine (ENGINEERING.md: 5.8x slower for a vmapped convolution). It
                also measured one worker pinned to one core at 0.57x the rate of one process
                using both, so P pinned workers get through K trials
                K / ceil(K / P) * 0.57 times as fast as one-after-another (1.14x for K=16,
                P=2, as measured); 'auto' takes processes where that exceeds 1 (K even, or
                K >= 9 on 2 cores) and sequential otherwise. On a backend with no
                measurement here, the sweep times a few steps of the group against a single
                member (group_train.vmap_is_faster) and keeps the faster, so 'auto' is never
                slower than sequential where it runs.
"""
from __future__ import annotations

import json
import math
from typing import Sequence

from cnn_jax import models
from cnn_jax import optim

STRATEGIES = ('auto', 'sequential', 'vmap', 'processes')
# backend -> throughput of one worker pinned to one core, relative to one process using
# every core (benchmarks/sweep.py, K=1: 21.4 against 37.8 and 22.1 against 38.5 trials/h in
# two runs on the 2-core CPU). A backend listed here never vmaps: it was measured slower.
PINNED_WORKER_SHARE = {'cpu': 0.57}

TRACEABLE_PATHS = (('seed',)
                   + tuple(f'optimizer.{f}' for f in optim.TRACEABLE_FIELDS)
                   + tuple(f'model.{f}' for f in models.TRACEABLE_FIELDS))


def validate_sweep_config(sweep_cfg) -> None:
  if sweep_cfg.strategy not in STRATEGIES:
    raise ValueError(f'sweep.strategy={sweep_cfg.strategy!r} is not supported; allowed values: '
                     f'{", ".join(STRATEGIES)}')
  size = sweep_cfg.max_group_size
  if isinstance(size, bool) or not isinstance(size, int) or size < 1:
    raise ValueError(f'sweep.max_group_size={size!r} must be a positive integer')
  count = sweep_cfg.processes
  if isinstance(count, bool) or not isinstance(count, int) or count < 0:
    raise ValueError(f'sweep.processes={count!r} must be >= 0 (0: one per CPU core)')


def group_key(config, resume_step: int | None) -> str:
  """Equal keys <=> the trials can share one compiled program (and start at the same step)."""
  flat = _flatten(json.loads(config.to_json()))
  for path in TRACEABLE_PATHS:
    flat.pop(path, None)
  # Zero and non-zero differ in structure: a rate of 0 leaves the dropout (or decay) out.
  flat['uses weight decay'] = config.optimizer.weight_decay > 0
  flat['uses conv dropout'] = config.model.conv_dropout > 0
  flat['uses dense dropout'] = config.model.dense_dropout > 0
  flat['resumes at step'] = resume_step
  return json.dumps(flat, sort_keys=True)


def resolve_strategy(strategy: str, backend: str, trial_count: int = 1,
                     workers: int = 1) -> str:
  """'sequential', 'vmap', 'processes', or 'calibrate' (time a group against one member on
  this backend before choosing) for `trial_count` trials and up to `workers` processes."""
  if strategy != 'auto':
    return strategy
  share = PINNED_WORKER_SHARE.get(backend)
  if share is None:
    return 'calibrate'
  return 'processes' if processes_speedup(trial_count, workers, share) > 1 else 'sequential'


def processes_speedup(trial_count: int, workers: int, share: float) -> float:
  """Predicted speedup of pinned workers over one-after-another for equal-length trials:
  the pool finishes in ceil(K / P) rounds of single-core trials."""
  workers = max(1, min(workers, trial_count))
  return trial_count / math.ceil(trial_count / workers) * share


def plan(configs: Sequence, resume_steps: Sequence[int | None], backend: str,
         cores: int = 1) -> list[tuple[str, list[int]]]:
  """Splits trials (by position) into [(strategy, positions)], in the order of their first
  trial. A lone trial, or any trial under 'sequential', runs alone. `cores`: the CPU cores
  worker processes may use (sweep.processes, when set, overrides it)."""
  groups: dict[str, list[int]] = {}
  for position, (config, step) in enumerate(zip(configs, resume_steps)):
    groups.setdefault(group_key(config, step), []).append(position)
  planned = []
  for positions in groups.values():
    sweep_cfg = configs[positions[0]].sweep
    strategy = resolve_strategy(sweep_cfg.strategy, backend, len(configs),
                                sweep_cfg.processes or cores)
    if strategy in ('sequential', 'processes') or len(positions) == 1:
      planned += [(strategy if strategy == 'processes' else 'sequential', [p])
                  for p in positions]
      continue
    size = sweep_cfg.max_group_size
    for chunk in (positions[i:i + size] for i in range(0, len(positions), size)):
      planned.append((strategy if len(chunk) > 1 else 'sequential', chunk))
  return sorted(planned, key=lambda item: item[1][0])


def differing_values(configs: Sequence) -> dict[str, list]:
  """{path: [value per member]} for the traceable paths whose values differ in the group."""
  flats = [_flatten(json.loads(c.to_json())) for c in configs]
  return {path: [flat[path] for flat in flats] for path in TRACEABLE_PATHS
          if path in flats[0] and len({flat[path] for flat in flats}) > 1}


def _flatten(tree, prefix=''):
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(_flatten(value, f'{prefix}{key}.'))
    else:
      flat[f'{prefix}{key}'] = json.dumps(value) if isinstance(value, list) else value
  return flat
