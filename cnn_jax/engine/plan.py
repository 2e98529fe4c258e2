"""A plan: everything decided about a group of runs before its first step, decided once.

`make(configs)` validates the configs (config/validation.py, the one validation), checks that
they can share a program (engine/grouping.py), loads the dataset's splits, places the group
on devices, resolves the layer implementations (timing them on this machine when the config
says 'auto' and nothing is cached yet: the one step that may take a while, logged as it
happens), and counts the steps. The result is frozen: the loop, the program, planning's
calibration and the benchmarks read it and decide nothing again. `for_evaluation` plans the
eval program of a trained run (trained.py): no data, the layers the run recorded.

Nothing here runs a step: a plan is cheap to read, and the same configs on the same machine
give the same plan.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import jax

from cnn_jax import startup
from cnn_jax.config import memory
from cnn_jax.config import validation
from cnn_jax.data import batches
from cnn_jax.data import datasets
from cnn_jax.engine import compilation_cache
from cnn_jax.engine import devices
from cnn_jax.engine import distributed
from cnn_jax.engine import grouping
from cnn_jax.errors import ConfigError
from cnn_jax.layer_impls import choice
from cnn_jax.layer_impls import resolution
from cnn_jax.model import timed_layers


@dataclasses.dataclass(frozen=True, eq=False)
class Plan:
  """A group of K >= 1 runs that share one program, and how it runs.

  configs         the members' validated configs, in member order
  image_shape     (H, W, C) of the dataset's images
  splits          the dataset's splits (train, test, validation), None for an eval plan
  total_steps     train steps of every member (1 for an eval plan)
  placement       the mesh and how the group is split over it (engine/devices.py)
  layer_impls     the convolution and pooling implementations the program runs
  steps_per_call  train steps one compiled call runs
  traced          {section: {field: (K,) float32}}: the traced values that differ
  copies          members after the first that are copies of it, not runs of their own
                  (segments.group_size: a replayed population member trains in the
                  population's program)
  """
  configs: tuple
  image_shape: tuple
  splits: datasets.Splits | None
  total_steps: int
  placement: devices.Placement
  layer_impls: choice.LayerImpls
  steps_per_call: int
  traced: dict
  copies: int = 0

  @property
  def size(self) -> int:
    return len(self.configs)

  @property
  def runs(self) -> int:
    """The members that are runs of their own (each with its workdir); the copies follow."""
    return self.size - self.copies

  @property
  def first(self):
    """The config whose program-wide fields (everything but the traced values) all share."""
    return self.configs[0]

  @property
  def steps_per_epoch(self) -> float:
    return len(self.splits.train) / self.first.train.batch_size

  def without(self, staying: Sequence[int]) -> 'Plan':
    """The plan of the members at `staying` going on alone (a group's re-pack after others
    stopped): the same data, steps and layers (results.json records those the group started
    with), placed again for the smaller group."""
    configs = tuple(self.configs[k] for k in staying)
    return dataclasses.replace(
        self, configs=configs, traced=grouping.traced_values(configs),
        copies=sum(k >= self.runs for k in staying),
        placement=devices.place(self.first.train.num_devices, len(configs),
                                self.first.train.batch_size))


def make(configs: Sequence, *, checked: bool = False) -> Plan:
  """The plan of training `configs` (K >= 1 runs that can share one program) together.

  checked: a sweep worker already validated each config alone and grouped them by program
  (sweeps/worker.py, sweeps/planning.py); only what a group adds is checked here, whether
  its K members fit in memory together."""
  compilation_cache.enable()
  configs = tuple(configs)
  copies = _copies(configs)
  if not checked:
    for config in configs:
      validation.validate(config, members=len(configs) + copies)
    grouping.check_shared(configs)
  elif len(configs) + copies > 1:
    memory.check_fits_in_memory(configs[0], len(configs) + copies)
  startup.use_deterministic_ops(configs[0].train.deterministic)
  splits = datasets.load_splits(configs[0].data)
  return dataclasses.replace(
      arrange(configs + (configs[0],) * copies, splits.image_shape, len(splits.train),
              splits=splits), copies=copies)


def _copies(configs: tuple) -> int:
  """How many copies of a lone run train beside it (segments.group_size less one): the
  members of a vmapped program compute alike only in a program of the same size (a member's
  arithmetic changes with K: XLA picks other kernels), so a population's member is replayed
  bit for bit as one of as many members as the population had."""
  sizes = [c.segments.group_size if c.get('segments') else 1 for c in configs]
  if len(configs) > 1 and max(sizes) > 1:
    raise ConfigError(f'segments.group_size={max(sizes)} trains one run as a group of its '
                      'copies; it cannot also join a vmapped group of other runs (train it '
                      'alone, or with sweep.strategy=sequential)')
  return sizes[0] - 1


def for_evaluation(config, image_shape, num_devices: int,
                   layer_impls: choice.LayerImpls | None) -> Plan:
  """The plan of evaluating one trained run (its config validated as trained.read_config
  does) on `num_devices` devices (0: all), with `layer_impls` (None: those the config
  resolves to; on the machine that trained it, the cached choice)."""
  compilation_cache.enable()  # as training does: a second evaluation compiles nothing
  return arrange((config,), image_shape, num_devices=num_devices, layer_impls=layer_impls)


def arrange(configs: Sequence, image_shape, num_train_examples: int | None = None, *,
            splits: datasets.Splits | None = None, num_devices: int | None = None,
            layer_impls: choice.LayerImpls | None = None) -> Plan:
  """The plan of `configs` (validated) for images of `image_shape` and `num_train_examples`
  training images (None: a plan that only evaluates, of 1 step): `make`'s second half, and
  the plan of a program over generated shapes (tests, planning's calibration), for configs
  known to share a program. Places them on train.num_devices devices (or `num_devices`);
  resolves the layers unless `layer_impls` gives them."""
  configs = tuple(configs)
  first = configs[0]
  total_steps = (batches.total_train_steps(first.train, num_train_examples)
                 if num_train_examples is not None else 1)
  placement = devices.place(first.train.num_devices if num_devices is None else num_devices,
                            len(configs), first.train.batch_size)
  if layer_impls is None:
    layer_impls = _resolve_layers(configs, image_shape, placement)
  return Plan(configs, tuple(image_shape), splits, total_steps, placement, layer_impls,
              steps_per_call(first.train, jax.default_backend()),
              grouping.traced_values(configs))


def steps_per_call(train_cfg, backend: str) -> int:
  """How many train steps one compiled call runs: the loop strategy, decided here only.

  On CPU, one step per call: a scanned epoch ran 6x slower than a Python loop over a jitted
  step here (ENGINEERING.md; benchmarks/train_loop.py measures it again). On GPUs, scanning
  many steps per call removes the per-step dispatch that leaves a small model's GPU idle, but
  that has not been measured for this code yet, so 'auto' (0) still means 1 everywhere;
  set train.steps_per_call=K to force K.
  """
  del backend  # the measured choice is the same on every backend so far
  return train_cfg.steps_per_call or 1


def _resolve_layers(configs: Sequence, image_shape, placement: devices.Placement
                    ) -> choice.LayerImpls:
  """The layer implementations for the group's per-device shapes: the config's, or for
  'auto' this machine's measured choice (layer_impls/resolution.py; measured now, and logged,
  if nothing is cached)."""
  first = configs[0]
  members, batch = placement.per_device(len(configs), first.train.batch_size)
  return agreed_layers(lambda: resolution.resolve(
      timed_layers.named_layers(first.model, image_shape), first.model.conv_impl,
      first.model.pool_impl, batch, members, deterministic=first.train.deterministic))


def agreed_layers(resolve: Callable[[], choice.LayerImpls]) -> choice.LayerImpls:
  """`resolve()`'s layer implementations; over several processes, process 0's on all of
  them: each would read (or measure) its own machine's choices, and the processes of one
  run must compile one program."""
  if jax.process_count() == 1:
    return resolve()
  chosen = resolve().describe() if distributed.is_writer() else None
  return choice.LayerImpls.from_description(distributed.from_writer(chosen))
