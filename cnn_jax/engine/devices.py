"""Where the loop's arrays live: a jax.sharding mesh over the devices of every process.

One mesh axis, 'devices'. A vmapped group splits its member axis over it (each device trains
its own members; nothing is communicated); a single run splits its batch axis (data
parallel: parameters replicated, XLA adds the gradient all-reduce). The dataset is
replicated. `train.num_devices` chooses how many devices (0: all); when a
member count or batch does not divide over them, 0 takes the largest count that divides, and
an explicit count is a config error (config/validation.py).

With several processes (distributed.py) the mesh spans all their devices, and `put` and `get`
move arrays between the host and it: each process places only its own devices' part of an
array that every process holds whole, and reads back the whole of one.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

from absl import logging
import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import numpy as np

from cnn_jax import cpu_threads
from cnn_jax.errors import ConfigError

AXIS = 'devices'


@dataclasses.dataclass(frozen=True)
class Placement:
  mesh: Mesh
  split_members: bool  # True: a group's member axis is split; False: the batch axis

  @property
  def count(self) -> int:
    return self.mesh.size

  @property
  def replicated(self) -> NamedSharding:
    return NamedSharding(self.mesh, P())

  @property
  def members(self) -> NamedSharding:
    """For arrays with a leading member axis: parameters, optimizer states, metric sums."""
    return NamedSharding(self.mesh, P(AXIS) if self.split_members else P())

  def indices(self, leading_axes: int) -> NamedSharding:
    """For batch indices of shape (*leading, members, batch)."""
    spec = (AXIS, None) if self.split_members else (None, AXIS)
    return NamedSharding(self.mesh, P(*([None] * leading_axes), *spec))

  def eval_batch(self) -> NamedSharding:
    """For one evaluation batch (batch first): split over the devices in data parallel."""
    return NamedSharding(self.mesh, P() if self.split_members else P(AXIS))

  def per_device(self, members: int, batch_size: int) -> tuple[int, int]:
    """(members, batch size) that each device computes."""
    if self.split_members:
      return members // self.count, batch_size
    return members, batch_size // self.count

  def eval_batch_size(self, configured: int) -> int:
    """Data parallel: a multiple of the device count (the padded tail carries weight 0)."""
    return configured if self.split_members else math.ceil(configured / self.count) * self.count


def put(tree: Any, sharding: NamedSharding) -> Any:
  """Host arrays (the same on every process) onto the mesh."""
  if jax.process_count() == 1:
    return jax.device_put(tree, sharding)
  def one(x):
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])
  return jax.tree_util.tree_map(one, tree)


def get(tree: Any) -> Any:
  """The whole of each array, on the host of every process."""
  if jax.process_count() == 1:
    return jax.device_get(tree)
  leaves, structure = jax.tree_util.tree_flatten(tree)
  split = [i for i, a in enumerate(leaves) if isinstance(a, jax.Array)
           and not a.is_fully_addressable and not a.is_fully_replicated]
  if split:  # one all-gather for them all, compiled once per mesh and leaf count
    gathered = _gather(leaves[split[0]].sharding.mesh, len(split))([leaves[i] for i in split])
    for i, a in zip(split, gathered):
      leaves[i] = a
  host = [np.asarray(a.addressable_data(0)) if isinstance(a, jax.Array)
          and not a.is_fully_addressable else jax.device_get(a) for a in leaves]
  return jax.tree_util.tree_unflatten(structure, host)


@functools.lru_cache(maxsize=None)
def _gather(mesh: Mesh, count: int):
  return jax.jit(lambda xs: xs, out_shardings=[NamedSharding(mesh, P())] * count)


def place(num_devices: int, members: int, batch_size: int) -> Placement:
  available = jax.devices()  # every process's: one mesh over all of them
  wanted = num_devices or len(available)
  split_along = members if members > 1 else batch_size
  count = max(d for d in range(1, wanted + 1) if split_along % d == 0)
  if count < wanted:
    logging.info('Using %d of %d devices: %s %d splits evenly over %d', count, wanted,
                 'the group of' if members > 1 else 'batch size', split_along, count)
  if jax.process_count() > 1 and count != len(available):
    raise ConfigError(
        f'{"the group of" if members > 1 else "batch size"} {split_along} does not split '
        f'over the {len(available)} devices of the {jax.process_count()} processes, and '
        'each process must hold part of the run: choose a multiple of '
        f'{len(available)}')
  cpu_threads.check(min(count, jax.local_device_count()), jax.default_backend())
  return Placement(Mesh(np.array(available[:count]), (AXIS,)), split_members=members > 1)
