"""Cost of augmentation per train step: each transform alone and all together, on a batch of
the experiment's size (T2: 64 of 28x28x1), alone and inside a jitted train step.

    python benchmarks/augment.py                       # T2 (experiments/pool.py)
    python benchmarks/augment.py --repeats=11 --calls=50

Columns: the augmentation of one batch alone (jitted, a new key each call), and one SGD step
of the experiment's model (forward, backward, update; XLA's own layers) with that
augmentation inside the same jitted program: what a run would pay, fusion included. Times
are medians over --repeats rounds of --calls calls each, after a compiling call; each round
times every row in turn, so a neighbour's load on a shared machine falls on all rows alike.
The strengths are typical MNIST values (VARIANTS); the cost depends on which transforms are
on, not on how strong they are. With dm-pix installed, two more rows time its per-example
warps on the same batch (dm_pix.affine_transform, dm_pix.elastic_deformation): the
measurement behind resampling with jax.scipy.ndimage instead (cnn_jax/data/augment.py).
"""
import functools
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# pylint: disable=g-import-not-at-top,wrong-import-position
from cnn_jax import allocator

allocator.use_tcmalloc_if_available()  # as a run: it halves CPU step times here

from cnn_jax import cli  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags
import jax
import jax.numpy as jnp
from ml_collections import config_flags
import numpy as np
import optax

from cnn_jax.data import augment
from cnn_jax.engine import metrics
from cnn_jax.model import cnn

config_flags.DEFINE_config_file('config', 'experiments/pool.py', 'Experiment whose batch and '
                                'model to time.', lock_config=True)
flags.DEFINE_integer('repeats', 7, 'Timed repeats (median).')
flags.DEFINE_integer('calls', 20, 'Calls per repeat.')
FLAGS = flags.FLAGS

# Each transform at a typical MNIST strength (Simard et al.'s elastic alpha 34, sigma 4).
VARIANTS = {
    'none': {},
    'translate': dict(translate=2.0),
    'rotate': dict(rotate=15.0),
    'scale': dict(scale=0.1),
    'affine (all three)': dict(translate=2.0, rotate=15.0, scale=0.1),
    'elastic': dict(elastic_alpha=34.0, elastic_sigma=4.0),
    'erase': dict(erase_prob=0.5, erase_max_area=0.2),
    'all': dict(translate=2.0, rotate=15.0, scale=0.1, elastic_alpha=34.0, elastic_sigma=4.0,
                erase_prob=0.5, erase_max_area=0.2),
}


def timed_ms(functions: dict, *args) -> dict:
  """{name: median ms per call of function(step, *args)}, after one compiling call each."""
  for function in functions.values():
    jax.block_until_ready(function(0, *args))
  times = {name: [] for name in functions}
  for repeat in range(FLAGS.repeats):
    for name, function in functions.items():
      start = time.perf_counter()
      for call in range(FLAGS.calls):
        out = function(1 + repeat * FLAGS.calls + call, *args)
      jax.block_until_ready(out)
      times[name].append((time.perf_counter() - start) / FLAGS.calls * 1e3)
  return {name: statistics.median(values) for name, values in times.items()}


def dm_pix_rows(key) -> dict:
  """dm-pix's own warps per example, for comparison; {} without dm-pix."""
  try:
    import dm_pix as pix
  except ImportError:
    return {}

  def affine(step, images):
    def one(k, image):
      settings = augment.Settings(translate=2.0, rotate=15.0, scale=0.1)
      matrix = augment._draw_affine(k, image.shape, settings)  # pylint: disable=protected-access
      homogeneous = jnp.zeros((3, 4)).at[:2, :2].set(matrix[:, :2]).at[:2, 3].set(
          matrix[:, 2]).at[2, 2].set(1.0)
      return pix.affine_transform(image, homogeneous, mode='constant', cval=0.0)
    keys = jax.random.split(augment.key_for_step(key, step), images.shape[0])
    return jax.vmap(one)(keys, images.astype(jnp.float32) / 255)

  def elastic(step, images):
    keys = jax.random.split(augment.key_for_step(key, step), images.shape[0])
    return jax.vmap(lambda k, image: pix.elastic_deformation(
        k, image, 34.0, 4.0, mode='constant', cval=0.0))(keys, images.astype(jnp.float32) / 255)

  return {'dm_pix.affine_transform (affine)': jax.jit(affine),
          'dm_pix.elastic_deformation (elastic)': jax.jit(elastic)}


def cpu_model() -> str:
  try:
    lines = subprocess.run(['lscpu'], capture_output=True, text=True, check=True).stdout
  except (OSError, subprocess.CalledProcessError):
    return 'unknown CPU (no lscpu)'
  fields = dict(line.split(':', 1) for line in lines.splitlines() if ':' in line)
  return f'{fields.get("Model name", "?").strip()}, {fields.get("CPU(s)", "?").strip()} CPUs'


def main(_):
  config = FLAGS.config
  batch = config.train.batch_size
  rng = np.random.default_rng(0)
  # Random digits: no warp's cost depends on what it moves.
  images = jnp.asarray(rng.integers(0, 256, (batch, 28, 28, 1), dtype=np.uint8))
  labels = jnp.asarray(rng.integers(0, 10, batch).astype(np.int32))
  model = cnn.build_model(config.model)
  tx = optax.sgd(config.optimizer.learning_rate)
  params = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)), train=False)['params']
  opt_state = tx.init(params)
  key = jax.random.key(config.seed)

  alone, steps = {}, {}
  for name, strengths in VARIANTS.items():
    section = config.augment.copy_and_resolve_references()
    section.update(strengths)
    settings = augment.Settings.from_config(section)

    def augment_only(step, images, labels, settings=settings):
      del labels
      return augment.augment(augment.key_for_step(key, step), images.astype(jnp.float32) / 255,
                             settings)

    def train_step(step, params, opt_state, images, labels, settings=settings):
      batch_images = augment.augment(augment.key_for_step(key, step),
                                     images.astype(jnp.float32) / 255, settings)
      def loss_fn(p):
        logits = model.apply({'params': p}, batch_images, train=True,
                             rngs={'dropout': jax.random.fold_in(key, step)})
        return metrics.cross_entropy(logits, labels).mean()
      grads = jax.grad(loss_fn)(params)
      updates, new_state = tx.update(grads, opt_state, params)
      return optax.apply_updates(params, updates), new_state

    alone[name] = jax.jit(augment_only)
    steps[name] = functools.partial(
        lambda step, images, labels, jitted: jitted(step, params, opt_state, images, labels),
        jitted=jax.jit(train_step))
  references = {name: (lambda step, images, labels, f=f: f(step, images))
                for name, f in dm_pix_rows(key).items()}
  times = timed_ms({**{('alone', n): f for n, f in alone.items()},
                    **{('step', n): f for n, f in steps.items()},
                    **{('alone', n): f for n, f in references.items()}}, images, labels)

  print(f'\n{config.model.name}, batch {batch} of 28x28x1, backend {jax.default_backend()} '
        f'({jax.devices()[0].device_kind}), {cpu_model()}, jax {jax.__version__}, '
        f'LD_PRELOAD={os.environ.get("LD_PRELOAD", "")}; medians of {FLAGS.repeats} x '
        f'{FLAGS.calls} calls')
  print('| augmentation | augment alone ms | train step with it ms | step vs none |')
  print('| --- | --- | --- | --- |')
  base = times[('step', 'none')]
  for name in VARIANTS:
    step = times[('step', name)]
    print(f'| {name} | {times[("alone", name)]:.3f} | {step:.3f} | {step / base:.2f}x |')
  for name in references:
    print(f'| {name} | {times[("alone", name)]:.3f} | | |')


if __name__ == '__main__':
  cli.run(main)
