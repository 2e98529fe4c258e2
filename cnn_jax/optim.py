"""Optimizer and learning-rate schedule from the `optimizer` config, through optax."""
from __future__ import annotations

import optax

OPTIMIZERS = ('sgd', 'momentum', 'nesterov', 'adagrad', 'rmsprop', 'adam', 'adamw')
SCHEDULES = ('constant', 'cosine')


def validate_optimizer_config(opt_cfg) -> None:
  if opt_cfg.name not in OPTIMIZERS:
    raise ValueError(f'optimizer.name={opt_cfg.name!r} is not supported; '
                     f'allowed values: {", ".join(OPTIMIZERS)}')
  if opt_cfg.schedule not in SCHEDULES:
    raise ValueError(f'optimizer.schedule={opt_cfg.schedule!r} is not supported; '
                     f'allowed values: {", ".join(SCHEDULES)}')
  if not opt_cfg.learning_rate > 0:
    raise ValueError(f'optimizer.learning_rate={opt_cfg.learning_rate!r} must be > 0')
  if opt_cfg.warmup_steps < 0:
    raise ValueError(f'optimizer.warmup_steps={opt_cfg.warmup_steps!r} must be >= 0')
  if opt_cfg.weight_decay < 0:
    raise ValueError(f'optimizer.weight_decay={opt_cfg.weight_decay!r} must be >= 0')


def make_schedule(opt_cfg, total_steps: int) -> optax.Schedule:
  """Learning rate as a function of the step: constant, or cosine decay to 0 at the end.

  Both take an optional linear warm-up over optimizer.warmup_steps.
  """
  peak, warmup = opt_cfg.learning_rate, opt_cfg.warmup_steps
  if opt_cfg.schedule == 'cosine':
    return optax.warmup_cosine_decay_schedule(0.0 if warmup else peak, peak, warmup,
                                              max(total_steps, warmup + 1))
  if warmup:
    return optax.join_schedules(
        [optax.linear_schedule(0.0, peak, warmup), optax.constant_schedule(peak)], [warmup])
  return optax.constant_schedule(peak)


def make_optimizer(opt_cfg, total_steps: int) -> optax.GradientTransformation:
  """The optax transformation for the config (validated first).

  Defaults follow the frameworks the tutorials used where optax differs: RMSprop adds its
  epsilon outside the square root, as Keras/TensorFlow do. weight_decay is decoupled for
  adamw and an L2 term added to the gradient for every other optimizer.
  """
  validate_optimizer_config(opt_cfg)
  lr = make_schedule(opt_cfg, total_steps)
  name = opt_cfg.name
  if name == 'sgd':
    tx = optax.sgd(lr)
  elif name in ('momentum', 'nesterov'):
    tx = optax.sgd(lr, momentum=opt_cfg.momentum, nesterov=name == 'nesterov')
  elif name == 'adagrad':
    tx = optax.adagrad(lr, initial_accumulator_value=opt_cfg.initial_accumulator, eps=opt_cfg.eps)
  elif name == 'rmsprop':
    tx = optax.rmsprop(lr, decay=opt_cfg.rms_decay, eps=opt_cfg.eps, eps_in_sqrt=False)
  elif name == 'adam':
    tx = optax.adam(lr, b1=opt_cfg.b1, b2=opt_cfg.b2, eps=opt_cfg.eps)
  else:
    return optax.adamw(lr, b1=opt_cfg.b1, b2=opt_cfg.b2, eps=opt_cfg.eps,
                       weight_decay=opt_cfg.weight_decay)
  if opt_cfg.weight_decay:
    tx = optax.chain(optax.add_decayed_weights(opt_cfg.weight_decay), tx)
  return tx
