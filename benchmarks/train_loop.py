"""Training throughput of the loop strategies (steps per jitted call) on this backend.

    TFDS_DATA_DIR=../shared/data/tfds python benchmarks/train_loop.py \
        --config=experiments/pool.py --steps=1000 --steps_per_call=1,10,100

Runs train_and_evaluate for --steps steps per strategy (real data, no checkpoints; at least
two calls, rounded up to whole calls) and prints steps per second and seconds per
60,000-image epoch, leaving out the first call (compilation). The strategy train.steps_per_call=0 picks for a backend should be the
fastest row here.
"""
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from cnn_jax import startup  # pylint: disable=g-import-not-at-top,wrong-import-position

startup.before_jax()

from cnn_jax import cli  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import logging  # pylint: disable=g-import-not-at-top,wrong-import-position
from ml_collections import config_flags  # pylint: disable=g-import-not-at-top,wrong-import-position

config_flags.DEFINE_config_file('config', 'experiments/pool.py', 'Experiment to time.',
                                lock_config=True)
flags.DEFINE_integer('steps', 1000, 'Train steps per strategy.')
flags.DEFINE_list('steps_per_call', ['1', '10', '100'], 'Strategies to compare (epoch: '
                  'the steps of one epoch).')
FLAGS = flags.FLAGS


def main(_):
  import jax  # pylint: disable=g-import-not-at-top
  from cnn_jax import train  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.WARNING)
  config = FLAGS.config
  rows = []
  for k in FLAGS.steps_per_call:
    if k == 'epoch':  # a whole epoch per call: the loop scanned over the epoch
      from cnn_jax.data import datasets  # pylint: disable=g-import-not-at-top
      k = datasets.info(config.data).split_sizes['train'] // config.train.batch_size
    k = int(k)
    # Whole calls, two at least: the first call (compilation) is left out of the rate.
    steps = max(2, -(-FLAGS.steps // k)) * k
    with config.unlocked():
      config.train.num_train_steps = steps
      config.train.steps_per_call = k
      config.train.log_every_steps = steps  # one sync at the end, as in real runs
      config.train.checkpoint_every_epochs = 0
      config.train.pictures = 'none'
    with tempfile.TemporaryDirectory() as workdir:
      out = train.train_and_evaluate(config, workdir)
    timed_steps = steps - k
    seconds = out['train_seconds'] - out['first_step_seconds']
    rows.append((k, timed_steps / seconds, out['first_step_seconds']))
  batch = config.train.batch_size
  print(f'\n{config.model.name}, batch {batch}, {FLAGS.steps} steps or two calls, backend '
        f'{jax.default_backend()} ({jax.devices()[0].device_kind}), jax {jax.__version__}, '
        f'LD_PRELOAD={os.environ.get("LD_PRELOAD", "")}')
  print('| steps per call | steps/s | s per 60k epoch | first call (compile) s | vs 1 |')
  print('| --- | --- | --- | --- | --- |')
  base = rows[0][1]
  for k, rate, first in rows:
    print(f'| {k} | {rate:.1f} | {60_000 / batch / rate:.1f} | {first:.1f} | {rate / base:.2f}x |')


if __name__ == '__main__':
  cli.run(main)
