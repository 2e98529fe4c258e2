"""The compiled programs of K members: step.py's member functions over a member axis.

A group of K > 1 runs the member functions under jax.vmap; a single run (K = 1) calls them
on its member directly (squeezing the axis inside the compiled program, which costs nothing),
because a vmapped convolution is a different, on CPU much slower, program
(../shared/ENGINEERING.md). Either way every array the loop holds has a leading member axis.
The train call adds each step's metric sums to running sums on the device, optionally scans
several steps per call, and is jitted with the placement's shardings and its state donated.

Which configs can share one program: those that differ only in TRACEABLE_PATHS (the seed,
the optimizer's numbers, dropout rates and initializer scales); the values that differ
become traced per-member inputs, the rest stay constants of the program.
"""
from __future__ import annotations

import functools
import json
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from cnn_jax.data import datasets
from cnn_jax.engine import devices
from cnn_jax.engine import metrics
from cnn_jax.engine import optimizers
from cnn_jax.engine import step as step_lib
from cnn_jax.errors import ConfigError
from cnn_jax.model import cnn
from cnn_jax.model import layer_choice

TRACEABLE_PATHS = (('seed',)
                   + tuple(f'optimizer.{f}' for f in optimizers.TRACEABLE_FIELDS)
                   + tuple(f'model.{f}' for f in cnn.TRACEABLE_FIELDS))
# Execution details: they change how a run is computed, not which run it is.
# The layer implementations agree to float tolerance (model/layers.py).
EXECUTION_PATHS = ('train.num_devices', 'train.steps_per_call', 'model.conv_impl',
                   'model.pool_impl', 'train.pictures')


def flatten(tree: dict, prefix: str = '') -> dict:
  """{'a': {'b': 1}} -> {'a.b': 1}; lists become JSON text so values stay hashable."""
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(flatten(value, f'{prefix}{key}.'))
    else:
      flat[f'{prefix}{key}'] = json.dumps(value) if isinstance(value, list) else value
  return flat


def program_key(config, resume_step: int | None = None) -> str:
  """Equal keys <=> the configs can train as one program (starting at the same step)."""
  flat = flatten(json.loads(config.to_json()))
  for path in TRACEABLE_PATHS:
    flat.pop(path, None)
  # Zero and non-zero differ in structure: a rate of 0 leaves the dropout (or decay) out.
  flat['uses weight decay'] = config.optimizer.weight_decay > 0
  flat['uses conv dropout'] = config.model.conv_dropout > 0
  flat['uses dense dropout'] = config.model.dense_dropout > 0
  flat['resumes at step'] = resume_step
  return json.dumps(flat, sort_keys=True)


def differing_values(configs: Sequence) -> dict[str, list]:
  """{path: [value per member]} for the traceable paths whose values differ."""
  flats = [flatten(json.loads(c.to_json())) for c in configs]
  return {path: [flat[path] for flat in flats] for path in TRACEABLE_PATHS
          if path in flats[0] and len({flat[path] for flat in flats}) > 1}


def check_shared(configs: Sequence) -> None:
  if len({program_key(c) for c in configs}) != 1:
    raise ConfigError('these runs differ in more than traceable values '
                      f'({", ".join(TRACEABLE_PATHS)}) and cannot train as one group')


def padded_on_device(split: datasets.Split, batch_size: int, sharding) -> dict[str, Any]:
  """The split as Program.evaluate takes it: padded to whole eval batches, with weight 1 on
  the real examples."""
  n = len(split)
  pad = -n % batch_size
  return jax.device_put({
      'image': np.concatenate([split.images, np.zeros((pad, *split.images.shape[1:]), np.uint8)]),
      'label': np.concatenate([split.labels, np.zeros(pad, np.int32)]),
      'mask': np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)]),
  }, sharding)


def _over_members(function, in_axes, size: int):
  """`function` of one member, applied to arrays with a leading member axis of `size`."""
  if size > 1:
    return jax.vmap(function, in_axes=in_axes)

  def single(*args):
    args = [jax.tree_util.tree_map(lambda a: a[0], arg) if axis == 0 else arg
            for arg, axis in zip(args, in_axes)]
    return jax.tree_util.tree_map(lambda a: a[None], function(*args))
  return single


class Program:
  """init, train and evaluate for `configs` (which share a program) on `placement`."""

  def __init__(self, configs: Sequence, total_steps: int, image_shape,
               placement: devices.Placement,
               layer_impls: layer_choice.LayerImpls | None = None):
    """layer_impls: the layer implementations to run (trained.TrainedRun.evaluate passes
    those a run recorded); None resolves them from the config, measuring them for 'auto'."""
    check_shared(configs)
    self.size = len(configs)
    self.image_shape = tuple(image_shape)
    self.placement = placement
    members, batch = placement.per_device(self.size, configs[0].train.batch_size)
    self.layer_impls = (layer_impls if layer_impls is not None else
                        layer_choice.resolve(configs[0].model, image_shape, batch, members))
    self.functions = step_lib.MemberFunctions(configs[0], total_steps, self.layer_impls)
    self.num_classes = configs[0].model.num_classes
    traced = {'model': {}, 'optimizer': {}}
    for path, values in differing_values(configs).items():
      section, _, field = path.partition('.')
      if section in traced:
        traced[section][field] = np.asarray(values, np.float32)
    self.traced = jax.device_put(traced, placement.members)

    train_one = _over_members(self.functions.train_step, (0, 0, 0, 0, None, None, None, 0),
                              self.size)
    eval_one = _over_members(self.functions.eval_step, (0, 0, None, None, None), self.size)

    def train_call(params, opt_state, sums, traced, keys, step, images, labels, indices):
      params, opt_state, batch = train_one(params, opt_state, traced, keys, step, images,
                                           labels, indices)
      return params, opt_state, metrics.add(sums, batch)

    def scanned_call(params, opt_state, sums, traced, keys, step, images, labels, indices):
      def body(carry, step_indices):
        params, opt_state, sums, step = carry
        params, opt_state, sums = train_call(params, opt_state, sums, traced, keys, step,
                                             images, labels, step_indices)
        return (params, opt_state, sums, step + 1), None
      carry = (params, opt_state, sums, jnp.asarray(step, jnp.int32))
      (params, opt_state, sums, _), _ = jax.lax.scan(body, carry, indices)
      return params, opt_state, sums

    def eval_call(params, sums, traced, split, batch_index, batch_size):
      batch = jax.tree_util.tree_map(
          lambda a: jax.lax.dynamic_slice_in_dim(a, batch_index * batch_size, batch_size),
          split)
      batch = jax.lax.with_sharding_constraint(batch, placement.eval_batch())
      return metrics.add(sums, eval_one(params, traced, batch['image'], batch['label'],
                                        batch['mask']))

    m, r = placement.members, placement.replicated
    self._train = {
        scanned: jax.jit(call, donate_argnums=(0, 1, 2),
                         in_shardings=(m, m, m, m, m, r, r, r, placement.indices(scanned)),
                         out_shardings=(m, m, m))
        for scanned, call in ((0, train_call), (1, scanned_call))}
    self._eval_call, self._eval = eval_call, {}  # compiled per eval batch size
    self.keys = None

  def init(self, configs: Sequence) -> dict:
    """Each member's initial state, stacked on the member axis and placed."""
    members = [self.functions.init(c, self.image_shape) for c in configs]
    return self.stack([{'params': p, 'opt_state': o} for p, o, _ in members],
                      keys=[key for _, _, key in members])

  def stack(self, member_states: Sequence[dict], keys=None) -> dict:
    stacked = jax.tree_util.tree_map(lambda *leaves: np.stack([np.asarray(l) for l in leaves]),
                                     *member_states)
    if keys is not None:
      self.keys = jax.device_put(jnp.stack(keys), self.placement.members)
    return jax.device_put(stacked, self.placement.members)

  @staticmethod
  def member_state(host_state: dict, k: int) -> dict:
    return jax.tree_util.tree_map(lambda a: a[k], host_state)

  def zero_sums(self, phase: str):
    return jax.device_put(metrics.zero_sums(phase, self.num_classes, self.size),
                          self.placement.members)

  def train(self, state: dict, sums, step: int, images, labels, indices: np.ndarray):
    """indices: (members, batch) for one step, or (steps, members, batch) for several."""
    call = self._train[int(indices.ndim == 3)]
    params, opt_state, sums = call(state['params'], state['opt_state'], sums, self.traced,
                                   self.keys, step, images, labels, indices)
    return {'params': params, 'opt_state': opt_state}, sums

  def evaluate(self, state: dict, split: dict, batch_size: int) -> dict[str, np.ndarray]:
    """Host sums (leading member axis) of every eval metric over a padded on-device split."""
    if batch_size not in self._eval:
      m, r = self.placement.members, self.placement.replicated
      self._eval[batch_size] = jax.jit(
          functools.partial(self._eval_call, batch_size=batch_size), donate_argnums=1,
          in_shardings=(m, m, m, r, r), out_shardings=m)
    sums = self.zero_sums(metrics.EVAL)
    for i in range(split['label'].shape[0] // batch_size):
      sums = self._eval[batch_size](state['params'], sums, self.traced, split, i)
    return jax.device_get(sums)
