"""Optimizer and learning-rate schedule from the `optimizer` config, through optax."""
from __future__ import annotations

import optax

from cnn_jax import member_view

# optimizer.name's choices (config/fields.py reads them here), each with its state's slots
# per parameter (momentum, second moments ...): validation's memory estimate counts them.
STATE_SLOTS = {'sgd': 0, 'momentum': 1, 'nesterov': 1, 'adagrad': 1, 'rmsprop': 1, 'adam': 2,
               'adamw': 2}
OPTIMIZERS = tuple(STATE_SLOTS)
SCHEDULES = ('constant', 'cosine')


def make_schedule(opt_cfg, total_steps: int) -> optax.Schedule:
  """Learning rate as a function of the step: constant, or cosine decay to 0 at the end.

  Both take an optional linear warm-up over optimizer.warmup_steps. The peak is a traced
  value where `opt_cfg` is a member's view (member_view.Section) that traces it.
  """
  peak = opt_cfg.learning_rate
  warmup = opt_cfg.warmup_steps
  if opt_cfg.schedule == 'cosine':
    return optax.warmup_cosine_decay_schedule(0.0 if warmup else peak, peak, warmup,
                                              max(total_steps, warmup + 1))
  if warmup:
    return optax.join_schedules(
        [optax.linear_schedule(0.0, peak, warmup), optax.constant_schedule(peak)], [warmup])
  return optax.constant_schedule(peak)


def make_optimizer(opt_cfg, total_steps: int) -> optax.GradientTransformation:
  """The optax transformation for a validated `optimizer` config.

  Defaults follow the frameworks the tutorials used where optax differs: RMSprop adds its
  epsilon outside the square root, as Keras/TensorFlow do. weight_decay is decoupled for
  adamw and an L2 term added to the gradient for every other optimizer.

  `opt_cfg` may be one member's view of the section (member_view.Section), whose traced
  fields are traced arrays. The optimizer state has the same structure either way, so a
  member's checkpoint is an ordinary single-run checkpoint.
  """
  opt_cfg = member_view.section(opt_cfg)
  uses_decay = opt_cfg.is_on('weight_decay')  # structure from the config, never a traced value
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
  if uses_decay:
    tx = optax.chain(optax.add_decayed_weights(opt_cfg.weight_decay), tx)
  return tx

