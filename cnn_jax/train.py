"""Training: the train state, pure train/eval steps, and the loop `train_and_evaluate`.

Loop design (measured on this project's 2-core CPU, ../shared/ENGINEERING.md): a Python loop
over one jitted step, with the state donated and the whole dataset on the device, ran an
epoch of T2 in 9 s where a `lax.scan` over the epoch took 55 s. Metrics are summed on the
device and read back only at log steps and epoch ends, so the host never waits on a step.
"""
from __future__ import annotations

import functools
import json
import math
import os
import time
from typing import Any

from absl import logging
import flax.linen as nn
from flax.training import train_state
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from cnn_jax import batches
from cnn_jax import checkpoint
from cnn_jax import data
from cnn_jax import models
from cnn_jax import optim
from cnn_jax import results
from cnn_jax import summary
from cnn_jax import tensorboard_writer

TrainState = train_state.TrainState


class DivergedError(ArithmeticError):
  """The loss became NaN or infinite."""


class WorkdirConflictError(RuntimeError):
  """The workdir holds a checkpoint of another config. Not a ValueError: a sweep must stop
  here rather than record the trial as invalid and lose the checkpointed work."""


def create_train_state(model: nn.Module, tx: optax.GradientTransformation, rng: jax.Array,
                       image_shape) -> TrainState:
  params = model.init(rng, jnp.zeros((1, *image_shape), jnp.float32), train=False)['params']
  return TrainState.create(apply_fn=model.apply, params=params, tx=tx)


def cross_entropy_loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Per-example softmax cross-entropy."""
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def train_step(state: TrainState, batch: dict[str, jax.Array],
               dropout_rng: jax.Array) -> tuple[TrainState, dict[str, jax.Array]]:
  """One SGD step on a batch of float images in [0, 1]. Returns the new state and the
  batch's mean loss and error (before the update)."""

  def loss_fn(params):
    logits = state.apply_fn({'params': params}, batch['image'], train=True,
                            rngs={'dropout': dropout_rng})
    return cross_entropy_loss(logits, batch['label']).mean(), logits

  (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  error = jnp.mean(jnp.argmax(logits, -1) != batch['label'])
  return state.apply_gradients(grads=grads), {'loss': loss, 'error': error}


def eval_step(state: TrainState, batch: dict[str, jax.Array]) -> dict[str, jax.Array]:
  """Summed loss and error count over the batch's real (mask == 1) examples."""
  logits = state.apply_fn({'params': state.params}, batch['image'], train=False)
  mask = batch['mask']
  wrong = (jnp.argmax(logits, -1) != batch['label']).astype(jnp.float32)
  return {'loss': jnp.sum(cross_entropy_loss(logits, batch['label']) * mask),
          'error': jnp.sum(wrong * mask), 'count': jnp.sum(mask)}


def to_float(images_uint8: jax.Array) -> jax.Array:
  return images_uint8.astype(jnp.float32) / 255.0


def _step_on_device_data(state, sums, images, labels, indices, dropout_key):
  """Gathers the batch from the on-device dataset, steps, and adds the metrics to `sums`."""
  batch = {'image': to_float(images[indices]), 'label': labels[indices]}
  state, metrics = train_step(state, batch, jax.random.fold_in(dropout_key, state.step))
  sums = dict(sums)
  for window in ('log', 'epoch'):
    for name, value in metrics.items():
      sums[f'{window}_{name}'] = sums[f'{window}_{name}'] + value
  return state, sums


_one_step_per_call = jax.jit(_step_on_device_data, donate_argnums=(0, 1))


@functools.partial(jax.jit, donate_argnums=(0, 1))
def _several_steps_per_call(state, sums, images, labels, indices, dropout_key):
  """indices: (steps, batch). The steps run inside one program via lax.scan."""
  def body(carry, step_indices):
    return _step_on_device_data(*carry, images, labels, step_indices, dropout_key), None
  (state, sums), _ = jax.lax.scan(body, (state, sums), indices)
  return state, sums


def steps_per_call(train_cfg, backend: str) -> int:
  """How many train steps one jitted call runs: the loop strategy, decided here only.

  On CPU, one step per call: a scanned epoch ran 6x slower than a Python loop over a jitted
  step here (ENGINEERING.md; benchmarks/train_loop.py measures it again). On GPUs, scanning
  many steps per call removes the per-step dispatch that leaves a small model's GPU idle, but
  that has not been measured for this code yet, so 'auto' (0) still means 1 everywhere;
  set train.steps_per_call=K to force K.
  """
  del backend  # the measured choice is the same on every backend so far
  if train_cfg.steps_per_call < 0:
    raise ValueError(f'train.steps_per_call={train_cfg.steps_per_call} must be >= 0 '
                     f'(0 chooses per backend)')
  return train_cfg.steps_per_call or 1


@functools.partial(jax.jit, static_argnames='batch_size')
def _eval_batch_on_device_data(state, sums, split, batch_index, batch_size):
  batch = jax.tree_util.tree_map(
      lambda a: jax.lax.dynamic_slice_in_dim(a, batch_index * batch_size, batch_size), split)
  batch['image'] = to_float(batch['image'])
  return jax.tree_util.tree_map(jnp.add, sums, eval_step(state, batch))


def padded_on_device(split: data.Split, batch_size: int) -> dict[str, jax.Array]:
  """The split padded to whole eval batches, with a mask marking the real examples."""
  n = len(split)
  pad = -n % batch_size
  return jax.device_put({
      'image': np.concatenate([split.images, np.zeros((pad, *split.images.shape[1:]), np.uint8)]),
      'label': np.concatenate([split.labels, np.zeros(pad, np.int32)]),
      'mask': np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)]),
  })


def evaluate(state: TrainState, device_split: dict[str, jax.Array],
             batch_size: int) -> dict[str, float]:
  """Mean loss and error over a padded on-device split; one host sync at the end."""
  sums = {'loss': jnp.zeros(()), 'error': jnp.zeros(()), 'count': jnp.zeros(())}
  for i in range(device_split['label'].shape[0] // batch_size):
    sums = _eval_batch_on_device_data(state, sums, device_split, i, batch_size)
  sums = jax.device_get(sums)
  count = float(sums['count'])  # summed in float32 on the device, divided in float64 here
  return {'loss': float(sums['loss']) / count, 'error': float(sums['error']) / count}


def zero_sums(keys) -> dict[str, jax.Array]:
  return {k: jnp.zeros((), jnp.float32) for k in keys}


_LOG_KEYS = ('log_loss', 'log_error')
_EPOCH_KEYS = ('epoch_loss', 'epoch_error')


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains and evaluates as `config` says, writing TensorBoard events, checkpoints and
  results.json to `workdir`. Resumes from the workdir's checkpoint when there is one.
  Returns the results dict (also written to results.json)."""
  wall_start = time.time()
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  validate_train_config(config.train)
  optim.validate_optimizer_config(config.optimizer)
  steps_per_call(config.train, '')  # validates it before any data is read
  splits = data.load_splits(config.data)
  model = models.build_model(config.model, splits.image_shape)
  if config.model.num_classes != splits.num_classes:
    raise ValueError(f'model.num_classes={config.model.num_classes} but dataset '
                     f'{config.data.name!r} has {splits.num_classes} classes')
  num_train = len(splits.train)
  order = batches.ShuffledBatches(num_train, config.train.batch_size, config.seed)
  total_steps = batches.total_train_steps(config.train, num_train)
  steps_per_epoch = num_train / config.train.batch_size
  schedule = optim.make_schedule(config.optimizer, total_steps)

  init_key, dropout_key = jax.random.split(jax.random.key(config.seed))
  state = create_train_state(model, optim.make_optimizer(config.optimizer, total_steps),
                             init_key, splits.image_shape)
  num_params = models.count_params(state.params)
  logging.info('%s', summary.format_summary(summary.model_summary(model, state.params,
                                                                  splits.image_shape),
                                            config.model.name))
  check_same_config_as_before(workdir, config)
  restored = checkpoint.restore(workdir, state)
  history, train_seconds, first_step_seconds, earlier_wall_seconds = [], 0.0, None, 0.0
  if restored is not None:  # times add up over the processes that ran this run
    state, extra = restored
    history, train_seconds = extra['history'], extra['train_seconds']
    first_step_seconds = extra['first_step_seconds']
    earlier_wall_seconds = extra['wall_seconds']
    logging.info('Resuming from %s at step %d', checkpoint.path_in(workdir), int(state.step))

  writer = tensorboard_writer.MetricWriter(workdir)
  writer.write_hparams(tensorboard_writer.flatten_hparams(config))
  train_images = jax.device_put(splits.train.images)
  train_labels = jax.device_put(splits.train.labels)
  eval_batch_size = config.train.eval_batch_size
  eval_splits = {name: padded_on_device(split, eval_batch_size)
                 for name, split in splits.eval_splits().items()}
  sums = zero_sums(_LOG_KEYS + _EPOCH_KEYS)

  step = int(state.step)
  log_every = config.train.log_every_steps
  chunk = steps_per_call(config.train, jax.default_backend())
  logging.info('Training %s: %d parameters, %d steps of %d (%.2f epochs of %d), on %s',
               config.model.name, num_params, total_steps, config.train.batch_size,
               total_steps / steps_per_epoch, num_train, jax.default_backend())
  status, message = 'ok', ''
  log_window_start, epoch_start_step = step, step
  segment_start = time.time()
  try:
    while step < total_steps:
      num_steps = min(chunk, steps_to_next_boundary(step, total_steps, log_every, order))
      if chunk == 1:
        state, sums = _one_step_per_call(state, sums, train_images, train_labels,
                                         order.indices(step), dropout_key)
      else:
        indices = np.stack([order.indices(s) for s in range(step, step + num_steps)])
        state, sums = _several_steps_per_call(state, sums, train_images, train_labels,
                                              indices, dropout_key)
      step += num_steps
      if first_step_seconds is None:  # compile + first call; synced once, for the record
        jax.block_until_ready(sums)
        first_step_seconds = time.time() - segment_start
      is_epoch_end = (order.epochs_completed(step) > order.epochs_completed(step - num_steps)
                      or step == total_steps)
      if step % log_every == 0 or is_epoch_end:
        host_sums = jax.device_get(sums)  # the only host syncs: log steps and epoch ends
        now = time.time()
        segment_seconds, segment_start = now - segment_start, now
        train_seconds += segment_seconds
        window = step - log_window_start
        log_loss, log_error = host_sums['log_loss'] / window, host_sums['log_error'] / window
        _raise_if_not_finite(log_loss, f'train/loss averaged over steps {log_window_start + 1}'
                             f'-{step}')
        writer.write_scalars(step, {
            'train/loss': log_loss, 'train/error': log_error,
            'train/learning_rate': float(schedule(step - 1)),
            'train/examples_per_second': window * config.train.batch_size / segment_seconds,
        })
        sums = {**sums, **zero_sums(_LOG_KEYS)}
        log_window_start = step
      if is_epoch_end:
        epoch_steps = step - epoch_start_step
        record = {'epoch': round(step / steps_per_epoch, 4), 'step': step,
                  'train_loss': float(host_sums['epoch_loss'] / epoch_steps),
                  'train_error': float(host_sums['epoch_error'] / epoch_steps),
                  'train_seconds': round(train_seconds, 3)}
        record.update(_evaluate_and_write(state, eval_splits, eval_batch_size, writer, step))
        history.append(record)
        writer.flush()
        log_epoch(record, total_steps / steps_per_epoch, eval_splits)
        sums = {**sums, **zero_sums(_EPOCH_KEYS)}
        epoch_start_step = step
        every = config.train.checkpoint_every_epochs
        if every and (len(history) % every == 0 or step == total_steps):
          checkpoint.save(workdir, state, {
              'history': history, 'train_seconds': train_seconds,
              'first_step_seconds': first_step_seconds,
              'wall_seconds': earlier_wall_seconds + time.time() - wall_start})
        segment_start = time.time()  # evaluation and checkpointing are not training time
  except DivergedError as error:
    status, message = 'diverged', str(error)
    logging.error('Run diverged: %s. Try a smaller optimizer.learning_rate.', error)
  writer.close()

  run_results = results_dict(config, splits, status, message, history, num_params, step,
                              steps_per_epoch, train_seconds, first_step_seconds,
                              earlier_wall_seconds + time.time() - wall_start)
  path = results.write(workdir, run_results)
  logging.info('%s: status %s, test error %s, validation error %s; %.1f s training; %s',
               config.model.name, status, results.percent(run_results['test_error']),
               results.percent(run_results['val_error']), train_seconds, path)
  return run_results


def _evaluate_and_write(state, eval_splits, batch_size, writer, step) -> dict[str, float]:
  """Evaluates every eval split; returns {'<split>_loss': ..., '<split>_error': ...}."""
  record = {}
  for name, device_split in eval_splits.items():
    metrics = evaluate(state, device_split, batch_size)
    _raise_if_not_finite(metrics['loss'], f'eval/{name}/loss at step {step}')
    record[f'{name}_loss'], record[f'{name}_error'] = metrics['loss'], metrics['error']
    writer.write_scalars(step, {f'eval/{name}/loss': metrics['loss'],
                                f'eval/{name}/error': metrics['error']})
  return record


def results_dict(config, splits, status, message, history, num_params, step, steps_per_epoch,
                  train_seconds, first_step_seconds, wall_seconds) -> dict[str, Any]:
  """What results.json holds. A diverged run reports no error rates: they would be garbage."""
  final = history[-1] if history and status == 'ok' else {}
  return {
      'status': status, 'message': message,
      'test_error': final.get('test_error'), 'test_loss': final.get('test_loss'),
      'val_error': final.get('validation_error'), 'val_loss': final.get('validation_loss'),
      'params': num_params, 'steps': step, 'epochs': round(step / steps_per_epoch, 4),
      'train_seconds': round(train_seconds, 3),
      'first_step_seconds': first_step_seconds and round(first_step_seconds, 3),
      'wall_seconds': round(wall_seconds, 3),
      'num_examples': {'train': len(splits.train),
                       **{name: len(s) for name, s in splits.eval_splits().items()}},
      'backend': jax.default_backend(), 'device': jax.devices()[0].device_kind,
      'jax_version': jax.__version__,
      'history': history, 'config': json.loads(config.to_json()),
  }


def validate_train_config(train_cfg) -> None:
  for field in ('batch_size', 'log_every_steps', 'eval_batch_size'):
    value = getattr(train_cfg, field)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise ValueError(f'train.{field}={value!r} must be a positive integer')
  if train_cfg.checkpoint_every_epochs < 0:
    raise ValueError(f'train.checkpoint_every_epochs={train_cfg.checkpoint_every_epochs} must '
                     f'be >= 0 (0 turns checkpoints off)')


def steps_to_next_boundary(step, total_steps, log_every, order) -> int:
  """Steps until the next log step, epoch end or the last step, whichever comes first."""
  next_log = (step // log_every + 1) * log_every
  next_epoch = order.epochs_completed(step) + 1
  epoch_end = -(-next_epoch * order.num_examples // order.batch_size)  # first step past it
  return min(next_log, epoch_end, total_steps) - step


def _raise_if_not_finite(value: float, what: str) -> None:
  if not math.isfinite(value):
    raise DivergedError(f'{what} is {value}')


def log_epoch(record, total_epochs, eval_splits) -> None:
  evals = ' | '.join(f'{name} loss {record[name + "_loss"]:.4f} error '
                     f'{results.percent(record[name + "_error"])}' for name in eval_splits)
  logging.info('epoch %.2f/%.2f (step %d): train loss %.4f error %s | %s | %.1f s training so far',
               record['epoch'], total_epochs, record['step'], record['train_loss'],
               results.percent(record['train_error']), evals, record['train_seconds'])


def check_same_config_as_before(workdir: str, config) -> None:
  """A workdir belongs to one config: resuming under another would silently mix two runs."""
  path = os.path.join(workdir, 'config.json')
  current = json.loads(config.to_json())
  if os.path.exists(path) and os.path.exists(checkpoint.path_in(workdir)):
    with open(path) as f:
      previous = json.load(f)
    if previous != current:
      changed = sorted(_diff_keys(previous, current))
      raise WorkdirConflictError(f'{workdir} holds a run of a different config (changed: '
                       f'{", ".join(changed)}); use another --workdir to start a new run')
  with open(path, 'w') as f:
    json.dump(current, f, indent=2, sort_keys=True)


def _diff_keys(a, b, prefix=''):
  for key in sorted(set(a) | set(b)):
    if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
      yield from _diff_keys(a[key], b[key], f'{prefix}{key}.')
    elif a.get(key) != b.get(key):
      yield f'{prefix}{key}'
