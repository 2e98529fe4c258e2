"""Which configs can train as one program, and what differs between them.

Configs share a program when they differ only in config/fields.py's traced fields (the seed,
the optimizer's numbers, dropout rates, initializer scales, batch norm's momentum,
augmentation strengths, label smoothing, ...); the values that differ become traced
per-member inputs (the state's `traced` values: engine/step.py), the rest stay constants of
the program. A rate of 0 against a rate above 0 is a difference of structure (0 leaves the
dropout, decay or transform out), so it splits groups.
"""
from __future__ import annotations

import json
from typing import Sequence

import numpy as np

from cnn_jax.config import fields
from cnn_jax.config import paths
from cnn_jax.errors import ConfigError

# The fields whose values may differ inside a group, and those that only change how a run
# is computed (config/fields.py says which, field by field).
TRACEABLE_PATHS = fields.paths(fields.TRACED)
EXECUTION_PATHS = fields.paths(fields.EXECUTION)
# The config sections whose traced values a member's state carries (engine/step.py).
TRACED_SECTIONS = ('model', 'optimizer', 'train', 'augment')


def program_key(config, resume_step: int | None = None) -> str:
  """Equal keys <=> the configs can train as one program (starting at the same step)."""
  flat = paths.flatten(json.loads(config.to_json()))
  for path in TRACEABLE_PATHS:
    flat.pop(path, None)
  for field in fields.FIELDS:
    if field.off_at_zero:
      flat[f'{field.path} is on'] = paths.value_at(config, field.path) > 0
  flat['resumes at step'] = resume_step
  return json.dumps(flat, sort_keys=True)


def differing_values(configs: Sequence) -> dict[str, list]:
  """{path: [value per member]} for the traceable paths whose values differ."""
  flats = [paths.flatten(json.loads(c.to_json())) for c in configs]
  return {path: [flat[path] for flat in flats] for path in TRACEABLE_PATHS
          if path in flats[0] and len({flat[path] for flat in flats}) > 1}


def check_shared(configs: Sequence) -> None:
  if len({program_key(c) for c in configs}) != 1:
    raise ConfigError('these runs differ in more than traceable values '
                      f'({", ".join(TRACEABLE_PATHS)}) and cannot train as one group')


def traced_values(configs: Sequence) -> dict[str, dict[str, np.ndarray]]:
  """{section: {field: (members,) float32}} of the traced fields whose values differ between
  `configs`, and of those their segments set (engine/segments.py changes them as it goes); a
  field they agree on stays a constant of the program (the seed differs too, but it only
  makes each member's initial state and key)."""
  traced = {section: {} for section in TRACED_SECTIONS}
  scheduled = tuple(configs[0].segments.paths) if 'segments' in configs[0] else ()
  for path in (*differing_values(configs), *scheduled):
    section, _, field = path.partition('.')
    if section in traced:
      traced[section][field] = np.asarray([paths.value_at(c, path) for c in configs],
                                          np.float32)
  return traced
