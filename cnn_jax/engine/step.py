"""The training step and the evaluation step of one member, written once, as pure functions.

A member is one run: its parameters, optimizer state and dropout key, and its traced
hyperparameters (the numeric fields that may differ between members of a vmapped group:
engine/program.py decides which). A single run jits these functions; a group runs the very
same functions under jax.vmap. Nothing here knows about devices, members or the loop.

The whole dataset sits on the device as uint8; a step gathers its batch by index and scales
it to [0, 1] there, so the loop never runs an input pipeline.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import optax

from cnn_jax.engine import metrics
from cnn_jax.engine import optimizers
from cnn_jax.model import cnn
from cnn_jax.model import layer_choice

Traced = dict  # {'model': {field: value}, 'optimizer': {field: value}}
NO_TRACED: Traced = {'model': {}, 'optimizer': {}}


def to_float(images_uint8: jax.Array) -> jax.Array:
  return images_uint8.astype(jnp.float32) / 255.0


def init_params(model: cnn.CNN, init_key: jax.Array, image_shape) -> dict:
  """A model's initial parameters, written once: what `init` gives a member, and, under
  jax.eval_shape (param_shapes), the structure a checkpoint's parameters are read into."""
  return model.init(init_key, jnp.zeros((1, *image_shape), jnp.float32), train=False)['params']


def param_shapes(model_cfg, image_shape) -> dict:
  """The parameters' tree of jax.ShapeDtypeStruct, computing nothing."""
  return jax.eval_shape(lambda key: init_params(cnn.build_model(model_cfg), key, image_shape),
                        jax.random.key(0))


@dataclasses.dataclass(frozen=True)
class MemberFunctions:
  """init / train_step / eval_step for members built from `config` (a validated config whose
  shape-determining fields every member shares) with their own traced values."""
  config: ml_collections.ConfigDict
  total_steps: int
  layer_impls: layer_choice.LayerImpls | None = None  # None: XLA's own layers

  def parts(self, traced: Traced):
    model = cnn.build_model(self.config.model, traced['model'], self.layer_impls)
    tx = optimizers.make_optimizer(self.config.optimizer, self.total_steps,
                                   traced['optimizer'])
    return model, tx

  def init(self, member_config: ml_collections.ConfigDict, image_shape):
    """(params, opt_state, dropout_key) of a member from its own concrete config, one member
    at a time, so every member starts exactly as it would alone. Jitted: one program that
    the persistent compilation cache keeps (eagerly, each of init's ops compiles on its own,
    4-5 s here); tests check it gives the eager parameters bit for bit."""
    def init():
      init_key, dropout_key = jax.random.split(jax.random.key(member_config.seed))
      model = cnn.build_model(member_config.model)
      tx = optimizers.make_optimizer(member_config.optimizer, self.total_steps)
      params = init_params(model, init_key, image_shape)
      return params, tx.init(params), dropout_key
    return jax.jit(init)()

  def train_step(self, params, opt_state, traced: Traced, dropout_key, step, images, labels,
                 indices):
    """One optimizer step on the batch images[indices]. Returns the new parameters and
    optimizer state, and the batch's metric sums (taken before the update)."""
    model, tx = self.parts(traced)
    batch_images, batch_labels = to_float(images[indices]), labels[indices]
    rng = jax.random.fold_in(dropout_key, step)

    def loss_fn(p):
      logits = model.apply({'params': p}, batch_images, train=True, rngs={'dropout': rng})
      return metrics.cross_entropy(logits, batch_labels).mean(), logits

    (_, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    return params, opt_state, metrics.batch_sums(metrics.TRAIN, logits, batch_labels)

  def eval_step(self, params, traced: Traced, images_uint8, labels, weights):
    """The metric sums of one evaluation batch; `weights` is 0 on padding examples."""
    model, _ = self.parts(traced)
    logits = model.apply({'params': params}, to_float(images_uint8), train=False)
    return metrics.batch_sums(metrics.EVAL, logits, labels, weights)
