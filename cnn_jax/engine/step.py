"""The training step and the evaluation step of one member, written once, as pure functions.

A member is one run, and its whole state is one pytree (MemberState): the parameters, the
model's own state (batch statistics; {} for a model without), the optimizer state, its key,
its traced values (the numeric fields that may differ between members of a vmapped group:
engine/grouping.py decides which; cnn_jax/member_view.py applies them) and its running train
metric sums. A single run jits these functions; a group runs the very same functions under
jax.vmap. Nothing here knows about devices, members or the loop.

The whole dataset sits on the device as uint8; a step gathers its batch by index, scales it
to [0, 1] and augments it (data/augment.py) there, so the loop never runs an input pipeline.
"""
from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import ml_collections
import optax

from cnn_jax import member_view
from cnn_jax.data import augment
from cnn_jax.engine import metrics
from cnn_jax.layer_impls import choice
from cnn_jax.model import cnn
from cnn_jax.optim import optimizers

# A member's state: what a checkpoint holds (CHECKPOINTED: its traced values too, which
# population-based training changes as it goes) plus the train sums of the current log window.
#   params       the trainable parameters
#   model_state  the model's other variables, e.g. {'batch_stats': ...}; {} without
#   opt_state    the optimizer's state
#   key          the member's random key as raw uint32 key data (dropout, augmentation):
#                fixed for the run, folded with the step, so a resumed run draws alike
#   traced       {'model': {...}, 'optimizer': {...}, 'train': {...}, 'augment': {...}}:
#                the member's traced values, read through member_view.Member
#   sums         the train metric sums since the last log step
MemberState = dict
CHECKPOINTED = ('params', 'model_state', 'opt_state', 'key', 'traced')
NOTHING_TRACED = {'model': {}, 'optimizer': {}, 'train': {}, 'augment': {}}


def member_keys(seed) -> tuple[jax.Array, jax.Array]:
  """(the key of a member's initial parameters, the key its state keeps: dropout and
  augmentation), both from its seed."""
  init_key, rng = jax.random.split(jax.random.key(seed))
  return init_key, rng


def to_float(images_uint8: jax.Array) -> jax.Array:
  return images_uint8.astype(jnp.float32) / 255.0


def init_variables(model: cnn.CNN, init_key: jax.Array, image_shape) -> tuple[dict, dict]:
  """A model's initial (params, model_state), written once: what `init` gives a member, and,
  under jax.eval_shape (variable_shapes), the structure a checkpoint is read into."""
  variables = dict(model.init(init_key, jnp.zeros((1, *image_shape), jnp.float32),
                              train=False))
  params = variables.pop('params')
  return params, variables


def variable_shapes(model_cfg, image_shape) -> tuple[dict, dict]:
  """(params, model_state) as trees of jax.ShapeDtypeStruct, computing nothing."""
  return jax.eval_shape(
      lambda key: init_variables(cnn.build_model(model_cfg), key, image_shape),
      jax.random.key(0))


def smoothed_cross_entropy(logits, labels, smoothing) -> jax.Array:
  """The training loss with label smoothing (the metrics keep the unsmoothed loss)."""
  targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1]), smoothing)
  return optax.softmax_cross_entropy(logits, targets)


_INITS = {}  # MemberFunctions.init's compiled inits, by the config without its seed


@dataclasses.dataclass(frozen=True)
class MemberFunctions:
  """init / train_step / eval_step for members built from `config` (a validated config whose
  shape-determining fields every member shares) with their own traced values."""
  config: ml_collections.ConfigDict
  total_steps: int
  layer_impls: choice.LayerImpls | None = None  # None: XLA's own layers

  def view(self, traced: dict) -> member_view.Member:
    """The member's config as its step reads it: this config with `traced` in place."""
    return member_view.Member(self.config, traced)

  def parts(self, view: member_view.Member):
    model = cnn.build_model(view.model, self.layer_impls)
    return model, optimizers.make_optimizer(view.optimizer, self.total_steps)

  def init(self, member_config: ml_collections.ConfigDict, image_shape) -> MemberState:
    """The CHECKPOINTED part of a member's state from its own concrete config, one member at
    a time, so every member starts exactly as it would alone. Jitted: one program that the
    persistent compilation cache keeps (eagerly, each of init's ops compiles on its own,
    4-5 s here); tests check it gives the eager parameters bit for bit. The seed is an
    argument, and members whose configs differ only in it share one compiled init: a
    distributed run's processes other than 0 get nothing from the persistent cache (JAX
    writes it from process 0 only, for process 0's devices), and compiled one init per
    member, 5 s each here."""
    flat = json.loads(member_config.to_json())
    flat.pop('seed')
    key = (json.dumps(flat, sort_keys=True), self.total_steps, tuple(image_shape))
    if key not in _INITS:
      def init(seed):
        init_key, rng = member_keys(seed)
        model = cnn.build_model(member_config.model)
        tx = optimizers.make_optimizer(member_config.optimizer, self.total_steps)
        params, model_state = init_variables(model, init_key, image_shape)
        return {'params': params, 'model_state': model_state, 'opt_state': tx.init(params),
                'key': jax.random.key_data(rng)}
      _INITS[key] = jax.jit(init)
    return _INITS[key](np.uint32(member_config.seed))

  def train_step(self, state: MemberState, step, images, labels, indices) -> MemberState:
    """One optimizer step on the batch images[indices]: the new state, its sums grown by the
    batch's metric sums (taken before the update)."""
    view = self.view(state['traced'])
    model, tx = self.parts(view)
    batch_images, batch_labels = to_float(images[indices]), labels[indices]
    key = jax.random.wrap_key_data(state['key'])
    rng = jax.random.fold_in(key, step)
    if augment.active(view.augment):  # structure from the config; strengths traced
      batch_images = augment.augment(augment.key_for_step(key, step), batch_images,
                                     augment.Settings.from_config(view.augment))
    mutable = list(state['model_state'])

    def loss_fn(params):
      logits, new_model_state = model.apply(
          {'params': params, **state['model_state']}, batch_images, train=True,
          rngs={'dropout': rng}, mutable=mutable)
      logits = logits.astype(jnp.float32)  # the loss in float32 whatever the compute dtype
      if view.train.is_on('label_smoothing'):  # 0 adds nothing to the program
        loss = smoothed_cross_entropy(logits, batch_labels, view.train.label_smoothing)
      else:
        loss = metrics.cross_entropy(logits, batch_labels)
      return loss.mean(), (logits, new_model_state)

    (_, (logits, model_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state['params'])
    updates, opt_state = tx.update(grads, state['opt_state'], state['params'])
    return {**state, 'params': optax.apply_updates(state['params'], updates),
            'model_state': dict(model_state), 'opt_state': opt_state,
            'sums': metrics.add(state['sums'],
                                metrics.batch_sums(metrics.TRAIN, logits, batch_labels))}

  def eval_logits(self, state: MemberState, images_uint8):
    """float32 logits of one batch in evaluation: batch statistics are the running averages
    training kept."""
    model, _ = self.parts(self.view(state['traced']))
    logits = model.apply({'params': state['params'], **state['model_state']},
                         to_float(images_uint8), train=False)
    return logits.astype(jnp.float32)

  def eval_step(self, state: MemberState, images_uint8, labels, weights):
    """The metric sums of one evaluation batch (`weights` is 0 on padding examples) and its
    softmax (an ensemble's input), from one forward pass; a caller that does not keep the
    softmax leaves XLA nothing of it to compute."""
    logits = self.eval_logits(state, images_uint8)
    return (metrics.batch_sums(metrics.EVAL, logits, labels, weights),
            jax.nn.softmax(logits))
