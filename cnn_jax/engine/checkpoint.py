"""One checkpoint per run directory, written atomically, so an interrupted run resumes at its
last checkpointed epoch, or at the step where a signal stopped it.

The training state of one member ({'step'} and engine/step.py's CHECKPOINTED: parameters,
model state such as batch statistics, optimizer state, key) is serialised with flax's msgpack
format; the run's own bookkeeping (per-epoch history, seconds spent, the train sums of a
log window a signal cut) travels beside it as JSON. The shuffling order is derived from the
seed and the step, so restoring the state is enough to continue bit-identically.

Checkpoints written before the state held the model state and the key ({'step', 'params',
'opt_state'}) still load: those entries keep the template's values, which for such a run
are exactly what it had (a model without batch statistics; the key its seed derives).

The member's traced values (engine/step.py) are kept too, because population-based training
changes them as it goes (engine/population.py); read back, they replace the template's values
field by field. A field either side lacks keeps the template's value: a run's traced fields
depend on the group it trains in (the values that differ), and outside a population they
equal its config's, which the template holds.
"""
from __future__ import annotations

import json
import os
from typing import Any

import flax.serialization
import jax
import numpy as np

from cnn_jax import atomic_files
from cnn_jax.errors import CorruptCheckpointError

FILENAME = 'checkpoint.msgpack'
# What checkpoints written before the state pytree lack (module docstring).
OPTIONAL = ('model_state', 'key')


def path_in(workdir: str) -> str:
  return os.path.join(workdir, FILENAME)


def save(workdir: str, state, extra: dict[str, Any]) -> None:
  payload = {'state': flax.serialization.to_state_dict(jax.device_get(state)),
             'extra': json.dumps(extra)}
  # A crash or a full disk mid-write leaves the previous checkpoint intact.
  atomic_files.write_bytes(path_in(workdir), flax.serialization.msgpack_serialize(payload))


def restore(workdir: str, template_state):
  """Returns (state, extra) or None when there is no checkpoint."""
  path = path_in(workdir)
  if not os.path.exists(path):
    return None
  try:
    with open(path, 'rb') as f:
      payload = flax.serialization.msgpack_restore(f.read())
    saved = payload['state']
    missing = [key for key in OPTIONAL if key in template_state and key not in saved]
    if 'model_state' in missing and jax.tree_util.tree_leaves(template_state['model_state']):
      raise ValueError('it holds no model state (batch statistics), which this model has')
    saved = {**saved, **{key: flax.serialization.to_state_dict(template_state[key])
                         for key in missing}}
    traced = saved.pop('traced', {})
    state = flax.serialization.from_state_dict(
        {k: v for k, v in template_state.items() if k != 'traced'}, saved)
    if 'traced' in template_state:
      state['traced'] = _traced_from(template_state['traced'], traced)
    extra = json.loads(payload['extra'])
  except Exception as error:  # msgpack, key and type errors all mean the same to the user
    raise CorruptCheckpointError(
        f'Checkpoint {path} could not be read ({type(error).__name__}: {error}). '
        f'Delete it to restart this run from scratch, or pick another --workdir.') from error
  expected = jax.tree_util.tree_map(np.shape, template_state)
  found = jax.tree_util.tree_map(np.shape, state)
  if expected != found:
    raise CorruptCheckpointError(
        f'Checkpoint {path} holds arrays of other shapes than this run\'s model '
        f'(written by a different config?). Delete it or pick another --workdir.')
  return state, extra


def _traced_from(template: dict, saved: dict) -> dict:
  """The template's traced values with those the checkpoint holds for the same fields."""
  return {section: {field: np.asarray(saved.get(section, {}).get(field, value),
                                      np.asarray(value).dtype).reshape(np.shape(value))
                    for field, value in fields.items()}
          for section, fields in template.items()}


def saved_step(workdir: str) -> int | None:
  """The step of the workdir's checkpoint (None without one), read without a model."""
  path = path_in(workdir)
  if not os.path.exists(path):
    return None
  try:
    with open(path, 'rb') as f:
      return int(flax.serialization.msgpack_restore(f.read())['state']['step'])
  except Exception as error:  # pylint: disable=broad-except
    raise CorruptCheckpointError(
        f'Checkpoint {path} could not be read ({type(error).__name__}: {error}). '
        f'Delete it to restart this run from scratch, or pick another --workdir.') from error
