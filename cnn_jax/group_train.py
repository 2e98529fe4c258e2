"""Training a group of sweep trials as one vmapped program.

The members differ only in values that change no shape and no program (groups.py): their
parameters and optimizer states are stacked on a leading member axis, and one jitted,
vmapped step advances all of them. Each member keeps what makes it its own run: its seed's
initial parameters, dropout keys and data order, and its own optimizer and model numbers
(passed as traced values). So a member follows the trajectory of the same trial run alone,
to float tolerance: a batched convolution may sum in another order.

Each member writes its run directory exactly as train.train_and_evaluate does (events,
hparams, config.json, checkpoints, results.json): a member's checkpoint is an ordinary
single-run checkpoint, the sweep tables read it like any other run, and a member that
diverges is recorded as 'diverged' while the others carry on (vmapped members share no
arithmetic, so its NaNs cannot reach them).
"""
from __future__ import annotations

import dataclasses
import functools
import os
import time
from typing import Any, Sequence

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from cnn_jax import batches
from cnn_jax import checkpoint
from cnn_jax import data
from cnn_jax import groups
from cnn_jax import models
from cnn_jax import optim
from cnn_jax import results
from cnn_jax import tensorboard_writer
from cnn_jax import train


class GroupProgram:
  """The compiled init / train step / eval step of a group, given its members' configs."""

  def __init__(self, configs: Sequence[ml_collections.ConfigDict], image_shape,
               total_steps: int):
    first = configs[0]
    self.size = len(configs)
    self.image_shape = tuple(image_shape)
    self.total_steps = total_steps
    differing = groups.differing_values(configs)
    # Only values that differ become traced inputs; shared ones stay constants of the program.
    self.traced = {'model': {}, 'optimizer': {}}
    for path, values in differing.items():
      section, _, field = path.partition('.')
      if section in self.traced:
        self.traced[section][field] = jnp.asarray(values, jnp.float32)
    self.seeds = jnp.asarray([c.seed for c in configs], jnp.uint32)
    self.model = models.build_model(first.model, image_shape)  # concrete, for evaluation
    model_cfg, opt_cfg = first.model, first.optimizer

    def member_parts(traced):
      model = models.build_model(model_cfg, image_shape, traced['model'])
      tx = optim.make_optimizer(opt_cfg, total_steps, traced['optimizer'])
      return model, tx

    def member_init(seed, traced):
      # As train.create_train_state does for one run, from the member's own seed.
      init_key, dropout_key = jax.random.split(jax.random.key(seed))
      model, tx = member_parts(traced)
      params = model.init(init_key, jnp.zeros((1, *image_shape), jnp.float32),
                          train=False)['params']
      return params, tx.init(params), dropout_key

    def member_step(params, opt_state, sums, step, traced, dropout_key, images, labels,
                    indices):
      # As train.train_step: same loss, same dropout key per step, same update.
      model, tx = member_parts(traced)
      batch_images, batch_labels = train.to_float(images[indices]), labels[indices]
      rng = jax.random.fold_in(dropout_key, step)

      def loss_fn(p):
        logits = model.apply({'params': p}, batch_images, train=True, rngs={'dropout': rng})
        return train.cross_entropy_loss(logits, batch_labels).mean(), logits

      (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
      error = jnp.mean(jnp.argmax(logits, -1) != batch_labels)
      updates, opt_state = tx.update(grads, opt_state, params)
      params = optax.apply_updates(params, updates)
      sums = {k: v + (loss if k.endswith('loss') else error) for k, v in sums.items()}
      return params, opt_state, sums

    def member_eval(params, sums, split, batch_index, batch_size):
      batch = jax.tree_util.tree_map(
          lambda a: jax.lax.dynamic_slice_in_dim(a, batch_index * batch_size, batch_size),
          split)
      batch['image'] = train.to_float(batch['image'])
      state = train.TrainState(step=0, apply_fn=self.model.apply, params=params, tx=None,
                               opt_state=None)
      return jax.tree_util.tree_map(jnp.add, sums, train.eval_step(state, batch))

    self.init = jax.jit(jax.vmap(member_init))
    self.step = jax.jit(jax.vmap(member_step, in_axes=(0, 0, 0, None, 0, 0, None, None, 0)),
                        donate_argnums=(0, 1, 2))
    def group_eval(params, sums, split, batch_index, batch_size):
      return jax.vmap(functools.partial(member_eval, batch_size=batch_size),
                      in_axes=(0, 0, None, None))(params, sums, split, batch_index)

    self.eval = jax.jit(group_eval, static_argnames='batch_size')

  def zero_sums(self, keys) -> dict[str, jax.Array]:
    return {k: jnp.zeros((self.size,), jnp.float32) for k in keys}

  def evaluate(self, params, device_split, batch_size) -> list[dict[str, float]]:
    """Per member: mean loss and error over a padded on-device split."""
    sums = self.zero_sums(('loss', 'error', 'count'))
    for i in range(device_split['label'].shape[0] // batch_size):
      sums = self.eval(params, sums, device_split, i, batch_size=batch_size)
    sums = jax.device_get(sums)
    return [{'loss': float(sums['loss'][k]) / float(sums['count'][k]),
             'error': float(sums['error'][k]) / float(sums['count'][k])}
            for k in range(self.size)]


@dataclasses.dataclass
class _Member:
  """One trial's run inside the group: its directory and bookkeeping."""
  config: ml_collections.ConfigDict
  workdir: str
  order: batches.ShuffledBatches
  schedule: optax.Schedule
  writer: Any = None
  history: list = dataclasses.field(default_factory=list)
  status: str = 'running'
  message: str = ''
  train_seconds: float = 0.0
  first_step_seconds: float | None = None
  earlier_wall_seconds: float = 0.0


def check_group(configs: Sequence[ml_collections.ConfigDict]) -> None:
  """Raises ValueError unless the configs can share one program (groups.group_key)."""
  keys = {groups.group_key(c, None) for c in configs}
  if len(keys) != 1:
    raise ValueError('these trials differ in more than traceable values '
                     f'({", ".join(groups.TRACEABLE_PATHS)}) and cannot train as one group')


def train_group(configs: Sequence[ml_collections.ConfigDict],
                workdirs: Sequence[str]) -> list[dict[str, Any]]:
  """Trains the configs as one vmapped group; writes each member's run into its workdir.
  Returns the members' results dicts (also written to their results.json)."""
  wall_start = time.time()
  check_group(configs)
  first = configs[0]
  train.validate_train_config(first.train)
  for config in configs:
    optim.validate_optimizer_config(config.optimizer)
  splits = data.load_splits(first.data)
  for config in configs:
    models.validate_model_config(config.model, splits.image_shape)
  if first.model.num_classes != splits.num_classes:
    raise ValueError(f'model.num_classes={first.model.num_classes} but dataset '
                     f'{first.data.name!r} has {splits.num_classes} classes')
  num_train = len(splits.train)
  total_steps = batches.total_train_steps(first.train, num_train)
  steps_per_epoch = num_train / first.train.batch_size
  program = GroupProgram(configs, splits.image_shape, total_steps)
  members = [_Member(config=c, workdir=os.path.abspath(w),
                     order=batches.ShuffledBatches(num_train, c.train.batch_size, c.seed),
                     schedule=optim.make_schedule(c.optimizer, total_steps))
             for c, w in zip(configs, workdirs)]

  params, opt_state, dropout_keys = program.init(program.seeds, program.traced)
  num_params = models.count_params(jax.tree_util.tree_map(lambda a: a[0], params))
  params, opt_state, step = _restore_members(members, params, opt_state, program)
  for member in members:
    os.makedirs(member.workdir, exist_ok=True)
    train.check_same_config_as_before(member.workdir, member.config)
    member.writer = tensorboard_writer.MetricWriter(member.workdir)
    member.writer.write_hparams(tensorboard_writer.flatten_hparams(member.config))

  train_images = jax.device_put(splits.train.images)
  train_labels = jax.device_put(splits.train.labels)
  eval_batch_size = first.train.eval_batch_size
  eval_splits = {name: train.padded_on_device(split, eval_batch_size)
                 for name, split in splits.eval_splits().items()}
  log_keys, epoch_keys = ('log_loss', 'log_error'), ('epoch_loss', 'epoch_error')
  sums = program.zero_sums(log_keys + epoch_keys)
  log_every = first.train.log_every_steps
  order = members[0].order  # every member's epochs end at the same steps
  logging.info('Training a vmapped group of %d %s trials (%s): %d parameters each, %d steps '
               'of %d, on %s', program.size, first.model.name,
               ', '.join(f'{k}={v}' for k, v in groups.differing_values(configs).items()),
               num_params, total_steps, first.train.batch_size, jax.default_backend())
  log_window_start, epoch_start_step = step, step
  segment_start = time.time()
  first_step_seconds = None
  while step < total_steps and any(m.status == 'running' for m in members):
    indices = np.stack([m.order.indices(step) for m in members])
    params, opt_state, sums = program.step(params, opt_state, sums, step, program.traced,
                                           dropout_keys, train_images, train_labels, indices)
    step += 1
    if first_step_seconds is None:
      jax.block_until_ready(sums)
      first_step_seconds = time.time() - segment_start
      for member in members:
        member.first_step_seconds = member.first_step_seconds or first_step_seconds
    is_epoch_end = (order.epochs_completed(step) > order.epochs_completed(step - 1)
                    or step == total_steps)
    if step % log_every != 0 and not is_epoch_end:
      continue
    host_sums = jax.device_get(sums)  # the only host syncs: log steps and epoch ends
    now = time.time()
    segment_seconds, segment_start = now - segment_start, now
    window = step - log_window_start
    for k, member in enumerate(members):
      if member.status != 'running':
        continue
      member.train_seconds += segment_seconds
      log_loss = host_sums['log_loss'][k] / window
      if not np.isfinite(log_loss):
        _mark_diverged(member, f'train/loss averaged over steps {log_window_start + 1}-{step} '
                       f'is {log_loss}')
        continue
      member.writer.write_scalars(step, {
          'train/loss': log_loss, 'train/error': host_sums['log_error'][k] / window,
          'train/learning_rate': float(member.schedule(step - 1)),
          'train/examples_per_second': window * first.train.batch_size / segment_seconds,
      })
    sums = {**sums, **program.zero_sums(log_keys)}
    log_window_start = step
    if is_epoch_end:
      _end_epoch(members, program, params, opt_state, host_sums, eval_splits, eval_batch_size,
                 step, step - epoch_start_step, steps_per_epoch, total_steps, wall_start)
      sums = {**sums, **program.zero_sums(epoch_keys)}
      epoch_start_step = step
      segment_start = time.time()  # evaluation and checkpointing are not training time

  outcomes = []
  for member in members:
    if member.status == 'running':
      member.status = 'ok'
    member.writer.close()
    outcome = train.results_dict(member.config, splits, member.status, member.message,
                                 member.history, num_params, step, steps_per_epoch,
                                 member.train_seconds, member.first_step_seconds,
                                 member.earlier_wall_seconds + time.time() - wall_start)
    outcome['executor'] = {'strategy': 'vmap', 'group_size': program.size}
    results.write(member.workdir, outcome)
    logging.info('%s: status %s, test error %s, validation error %s (vmapped group of %d)',
                 member.workdir, member.status, results.percent(outcome['test_error']),
                 results.percent(outcome['val_error']), program.size)
    outcomes.append(outcome)
  return outcomes


def _member_state(params, opt_state, k: int, step: int) -> train.TrainState:
  """Member k's slice as the TrainState a single run would checkpoint."""
  take = lambda tree: jax.tree_util.tree_map(lambda a: a[k], tree)
  return train.TrainState(step=np.int32(step), apply_fn=None, params=take(params), tx=None,
                          opt_state=take(opt_state))


def _restore_members(members, params, opt_state, program):
  """Loads each member's checkpoint into its slice; all must be at the same step."""
  restored = []
  for k, member in enumerate(members):
    found = checkpoint.restore(member.workdir, _member_state(params, opt_state, k, 0))
    restored.append(found)
    if found is not None:
      extra = found[1]
      member.history, member.train_seconds = extra['history'], extra['train_seconds']
      member.first_step_seconds = extra['first_step_seconds']
      member.earlier_wall_seconds = extra['wall_seconds']
  steps = {int(found[0].step) if found else 0 for found in restored}
  if len(steps) != 1:
    raise ValueError(f'group members have checkpoints at different steps {sorted(steps)}; '
                     'they cannot resume as one group')
  if not any(restored):
    return params, opt_state, 0
  states = [found[0] for found in restored]
  stack = lambda *leaves: jnp.stack([jnp.asarray(leaf) for leaf in leaves])
  params = jax.tree_util.tree_map(stack, *[s.params for s in states])
  opt_state = jax.tree_util.tree_map(stack, *[s.opt_state for s in states])
  step = steps.pop()
  logging.info('Resuming a group of %d from step %d', program.size, step)
  return params, opt_state, step


def _mark_diverged(member: _Member, message: str) -> None:
  member.status, member.message = 'diverged', message
  logging.error('%s diverged: %s. Try a smaller optimizer.learning_rate.', member.workdir,
                message)


def _end_epoch(members, program, params, opt_state, host_sums, eval_splits, eval_batch_size,
               step, epoch_steps, steps_per_epoch, total_steps, wall_start) -> None:
  """Evaluates every member, writes its epoch record and events, and checkpoints it."""
  evaluations = {name: program.evaluate(params, split, eval_batch_size)
                 for name, split in eval_splits.items()}
  host_params = host_opt_state = None
  for k, member in enumerate(members):
    if member.status != 'running':
      continue
    record = {'epoch': round(step / steps_per_epoch, 4), 'step': step,
              'train_loss': float(host_sums['epoch_loss'][k] / epoch_steps),
              'train_error': float(host_sums['epoch_error'][k] / epoch_steps),
              'train_seconds': round(member.train_seconds, 3)}
    for name, per_member in evaluations.items():
      metrics = per_member[k]
      record[f'{name}_loss'], record[f'{name}_error'] = metrics['loss'], metrics['error']
      member.writer.write_scalars(step, {f'eval/{name}/loss': metrics['loss'],
                                         f'eval/{name}/error': metrics['error']})
    if not all(np.isfinite(record[f'{name}_loss']) for name in evaluations):
      _mark_diverged(member, f'an evaluation loss at step {step} is not finite')
      continue
    member.history.append(record)
    member.writer.flush()
    train.log_epoch(record, total_steps / steps_per_epoch, eval_splits)
    every = member.config.train.checkpoint_every_epochs
    if every and (len(member.history) % every == 0 or step == total_steps):
      if host_params is None:
        host_params, host_opt_state = jax.device_get((params, opt_state))
      checkpoint.save(member.workdir, _member_state(host_params, host_opt_state, k, step), {
          'history': member.history, 'train_seconds': member.train_seconds,
          'first_step_seconds': member.first_step_seconds,
          'wall_seconds': member.earlier_wall_seconds + time.time() - wall_start})


def vmap_is_faster(configs: Sequence[ml_collections.ConfigDict], steps: int = 20) -> bool:
  """Times `steps` steps of the whole group against the same steps of one member (both
  compiled first) on this backend: True when the group beats K one-member runs."""
  first = configs[0]
  splits = data.load_splits(first.data)
  total_steps = batches.total_train_steps(first.train, len(splits.train))
  images, labels = jax.device_put(splits.train.images), jax.device_put(splits.train.labels)
  seconds = {}
  for name, members in (('group', list(configs)), ('single', [first])):
    program = GroupProgram(members, splits.image_shape, total_steps)
    params, opt_state, keys = program.init(program.seeds, program.traced)
    sums = program.zero_sums(('log_loss', 'log_error'))
    order = batches.ShuffledBatches(len(splits.train), first.train.batch_size, first.seed)
    indices = np.stack([order.indices(0)] * program.size)
    for timed in (False, True):  # the first pass compiles
      start = time.time()
      for step in range(steps if timed else 1):
        params, opt_state, sums = program.step(params, opt_state, sums, step, program.traced,
                                               keys, images, labels, indices)
      jax.block_until_ready(sums)
      seconds[name] = time.time() - start
  faster = seconds['group'] < len(configs) * seconds['single']
  logging.info('Calibration on %s: %d steps of a group of %d took %.3f s, of one member '
               '%.3f s (x%d = %.3f s): %s', jax.default_backend(), steps, len(configs),
               seconds['group'], seconds['single'], len(configs),
               len(configs) * seconds['single'], 'vmap' if faster else 'sequential')
  return faster
