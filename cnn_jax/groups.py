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
  'auto'        per backend, from measurements. On CPU, sequential: benchmarks/sweep.py
                measured a vmapped group slower than one-after-another on this project's
                2-core machine (ENGINEERING.md: 5.8x for a vmapped convolution). On a backend
                with no measurement here, the sweep times a few steps of the group against a
                single member (group_train.vmap_is_faster) and keeps the faster, so 'auto' is
                never slower than sequential where it runs.
"""
from __future__ import annotations

import json
from typing import Sequence

from cnn_jax import models
from cnn_jax import optim

STRATEGIES = ('auto', 'sequential', 'vmap', 'processes')
MEASURED_BEST = {'cpu': 'sequential'}  # backend -> strategy, from benchmarks/sweep.py

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


def resolve_strategy(strategy: str, backend: str) -> str:
  """'sequential', 'vmap', or 'calibrate' (time both on this backend before choosing)."""
  if strategy != 'auto':
    return strategy
  return MEASURED_BEST.get(backend, 'calibrate')


def plan(configs: Sequence, resume_steps: Sequence[int | None],
         backend: str) -> list[tuple[str, list[int]]]:
  """Splits trials (by position) into [(strategy, positions)], in the order of their first
  trial. A lone trial, or any trial under 'sequential', runs alone."""
  groups: dict[str, list[int]] = {}
  for position, (config, step) in enumerate(zip(configs, resume_steps)):
    groups.setdefault(group_key(config, step), []).append(position)
  planned = []
  for positions in groups.values():
    sweep_cfg = configs[positions[0]].sweep
    strategy = resolve_strategy(sweep_cfg.strategy, backend)
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
