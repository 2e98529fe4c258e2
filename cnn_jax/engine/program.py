"""The compiled programs of K members: step.py's member functions over a member axis.

A group of K > 1 runs the member functions under jax.vmap; a single run (K = 1) calls them
on its member directly (squeezing the axis inside the compiled program, which costs nothing),
because a vmapped convolution is a different, on CPU much slower, program
(../shared/ENGINEERING.md). Either way every array the loop holds has a leading member axis.
The train call adds each step's metric sums to running sums on the device, optionally scans
several steps per call, and is jitted with the placement's shardings and its state donated.

A Program is built from a plan (engine/plan.py) and decides nothing itself: which configs
share it (engine/grouping.py), its devices, layers and traced values come with the plan.
"""
from __future__ import annotations

import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from cnn_jax.data import datasets
from cnn_jax.engine import devices
from cnn_jax.engine import metrics
from cnn_jax.engine import plan as plan_lib
from cnn_jax.engine import step as step_lib
from cnn_jax.model import cnn
from cnn_jax.model import summary as summary_lib


def padded_on_device(split: datasets.Split, batch_size: int, sharding) -> dict[str, Any]:
  """The split as Program.evaluate takes it: padded to whole eval batches, with weight 1 on
  the real examples."""
  n = len(split)
  pad = -n % batch_size
  return devices.put({
      'image': np.concatenate([split.images, np.zeros((pad, *split.images.shape[1:]), np.uint8)]),
      'label': np.concatenate([split.labels, np.zeros(pad, np.int32)]),
      'mask': np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)]),
  }, sharding)


def _vmapped(function, size: int, in_axes: tuple):
  """`function(state, *args)` of one member over a state with a leading member axis (the
  whole state tree is mapped on axis 0; `in_axes` gives the other arguments' axes). A single
  run (size 1) squeezes the axis instead of vmapping (see the module docstring)."""
  if size > 1:
    return jax.vmap(function, in_axes=(0, *in_axes))

  def single(state, *args):
    take = lambda tree, axis: (tree if axis is None
                               else jax.tree_util.tree_map(lambda a: a[0], tree))
    args = [take(arg, axis) for arg, axis in zip(args, in_axes)]
    return jax.tree_util.tree_map(lambda a: a[None], function(take(state, 0), *args))
  return single


class Program:
  """init, train and evaluate for a plan's members on its placement.

  The state the calls take and return is the members' MemberState (engine/step.py) stacked
  on a leading member axis: one pytree, placed with one sharding, donated whole."""

  def __init__(self, plan: plan_lib.Plan):
    self.plan = plan
    self.configs = list(plan.configs)
    self.size = plan.size
    self.total_steps = plan.total_steps
    self.image_shape = plan.image_shape
    self.placement = placement = plan.placement
    self.layer_impls = plan.layer_impls
    self.functions = step_lib.MemberFunctions(plan.first, plan.total_steps, plan.layer_impls)
    self.num_classes = plan.first.model.num_classes

    # train_step(state, step, images, labels, indices): indices are per member.
    train_one = _vmapped(self.functions.train_step, self.size, (None, None, None, 0))
    eval_one = _vmapped(self.functions.eval_step, self.size, (None, None, None))

    def scanned_call(state, step, images, labels, indices):
      def body(carry, step_indices):
        state, step = carry
        return (train_one(state, step, images, labels, step_indices), step + 1), None
      (state, _), _ = jax.lax.scan(body, (state, jnp.asarray(step, jnp.int32)), indices)
      return state

    def eval_call(state, sums, split, batch_index, batch_size, keep_probabilities):
      batch = jax.tree_util.tree_map(
          lambda a: jax.lax.dynamic_slice_in_dim(a, batch_index * batch_size, batch_size),
          split)
      batch = jax.lax.with_sharding_constraint(batch, placement.eval_batch())
      batch_sums, probabilities = eval_one(state, batch['image'], batch['label'],
                                           batch['mask'])
      return metrics.add(sums, batch_sums), (probabilities if keep_probabilities else None)

    # One sharding for the whole state (a pytree prefix): every leaf has the member axis.
    m, r = placement.members, placement.replicated
    self._train = {
        scanned: jax.jit(call, donate_argnums=0,
                         in_shardings=(m, r, r, r, placement.indices(scanned)),
                         out_shardings=m)
        for scanned, call in ((0, train_one), (1, scanned_call))}
    self._eval_call, self._eval = eval_call, {}  # compiled per eval batch size and output

  def init(self, configs: Sequence | None = None) -> dict:
    """Each member's initial state, stacked on the member axis and placed."""
    return self.assemble([self.functions.init(c, self.image_shape)
                          for c in (configs or self.configs)])

  def assemble(self, member_states: Sequence[dict],
               train_sums: Sequence[dict | None] | None = None) -> dict:
    """The program's state from each member's CHECKPOINTED state (host or device arrays):
    stacked, with the train sums added (each member's host sums from `train_sums`, else
    zero), and placed. The plan's traced fields take the members' own values where their
    states hold them (a checkpoint, a re-pack, a population's changes), else the plan's. A
    state for evaluation only may leave out the optimizer state, the key and the traced
    values."""
    stacked = jax.tree_util.tree_map(lambda *leaves: np.stack([np.asarray(l) for l in leaves]),
                                     *[{k: s[k] for k in step_lib.CHECKPOINTED if k in s}
                                       for s in member_states])
    own = stacked.pop('traced', None)
    stacked['traced'] = self.plan.traced if own is None else {
        section: {field: own[section][field] for field in fields}
        for section, fields in self.plan.traced.items()}
    stacked['sums'] = metrics.zero_sums(metrics.TRAIN, self.num_classes, self.size)
    for k, sums in enumerate(train_sums or ()):
      for name, value in (sums or {}).items():
        stacked['sums'][name][k] = value  # (float32 sums, widened for the checkpoint: exact)
    return devices.put(stacked, self.placement.members)

  def summary(self, host_state: dict) -> tuple[int, str]:
    """(a member's parameter count, its Keras-style summary) from the host copy of the
    program's state."""
    member = self.member_state(host_state, 0)
    config = self.plan.first
    rows = summary_lib.model_summary(cnn.build_model(config.model), member['params'],
                                     self.image_shape, member['model_state'])
    return cnn.count_params(member['params']), summary_lib.format_summary(rows,
                                                                          config.model.name)

  @staticmethod
  def member_state(host_state: dict, k: int) -> dict:
    """Member k's CHECKPOINTED state from the host copy of the program's state."""
    return jax.tree_util.tree_map(lambda a: a[k],
                                  {key: host_state[key] for key in step_lib.CHECKPOINTED})

  def zero_sums(self, phase: str):
    return devices.put(metrics.zero_sums(phase, self.num_classes, self.size),
                          self.placement.members)

  def take_sums(self, state: dict) -> tuple[dict, dict]:
    """(the train sums since the last call, on the host; the state with them zeroed)."""
    return devices.get(state['sums']), {**state, 'sums': self.zero_sums(metrics.TRAIN)}

  def train(self, state: dict, step: int, images, labels, indices: np.ndarray) -> dict:
    """indices: (members, batch) for one step, or (steps, members, batch) for several."""
    scanned = int(indices.ndim == 3)
    if jax.process_count() > 1:  # jit takes only global arrays across processes
      indices = devices.put(indices, self.placement.indices(scanned))
      step = devices.put(np.int32(step), self.placement.replicated)
    return self._train[scanned](state, step, images, labels, indices)

  def evaluate(self, state: dict, split: dict, batch_size: int,
               probabilities: int = 0) -> dict[str, np.ndarray] | tuple:
    """Host sums (leading member axis) of every eval metric over a padded on-device split;
    with `probabilities` = N, also every member's class probabilities of its first N
    examples, (members, N, classes) float32, from the same pass (a run's last evaluation
    gives the test split's to ensembles.py)."""
    key = (batch_size, bool(probabilities))
    if key not in self._eval:
      m, r = self.placement.members, self.placement.replicated
      self._eval[key] = jax.jit(
          functools.partial(self._eval_call, batch_size=batch_size,
                            keep_probabilities=bool(probabilities)),
          donate_argnums=1, in_shardings=(m, m, r, r), out_shardings=m)
    sums, parts = self.zero_sums(metrics.EVAL), []
    for i in range(split['label'].shape[0] // batch_size):
      sums, part = self._eval[key](state, sums, split, i)
      parts.append(part)
    if not probabilities:
      return devices.get(sums)
    sums, parts = devices.get((sums, parts))
    return sums, np.concatenate(parts, axis=1)[:, :probabilities]
