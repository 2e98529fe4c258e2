"""What re-packing a vmapped group saves when members are stopped (pruned) early.

    TFDS_DATA_DIR=../shared/data/tfds python benchmarks/repack.py [--members=4] [--stopped=2]

A group of --members T2 runs differing in learning rate trains --steps steps with an
evaluation every --eval_every steps, twice, side by side: once with --stopped members stopped
at the first evaluation (the loop finishes them and rebuilds the group without them:
engine/loop.py), once with none stopped, which is what carrying the stopped members to the
end would cost. Whole loop.train wall time each; the difference is what re-packing saved,
its own cost (a new program: layer choice from the cache, compilation) included.
"""
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from cnn_jax import allocator  # pylint: disable=g-import-not-at-top,wrong-import-position

allocator.use_tcmalloc_if_available()

from cnn_jax import cli  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import logging  # pylint: disable=g-import-not-at-top,wrong-import-position

flags.DEFINE_integer('members', 4, 'Members of the vmapped group.')
flags.DEFINE_integer('stopped', 2, 'Members stopped at the first evaluation.')
flags.DEFINE_integer('steps', 600, 'Train steps.')
flags.DEFINE_integer('eval_every', 200, 'Steps between evaluations.')
FLAGS = flags.FLAGS


def configs():
  from experiments import default  # pylint: disable=g-import-not-at-top
  found = []
  for k in range(FLAGS.members):
    config = default.get_config()
    config.optimizer.learning_rate = 0.2 / (k + 1)
    config.train.update(dict(num_train_steps=FLAGS.steps, eval_every_steps=FLAGS.eval_every,
                             log_every_steps=FLAGS.eval_every, checkpoint_every_epochs=0,
                             pictures='none'))
    config.sweep.strategy = 'vmap'
    found.append(config)
  return found


def timed(stop: set) -> float:
  from cnn_jax.engine import loop  # pylint: disable=g-import-not-at-top
  from cnn_jax.engine import plan as plan_lib  # pylint: disable=g-import-not-at-top
  from cnn_jax.engine import observers  # pylint: disable=g-import-not-at-top

  class StopAtFirst(observers.Observer):
    def should_stop(self, event):
      return 'stopped by benchmarks/repack.py' if event.member in stop else None

  group = configs()
  with tempfile.TemporaryDirectory() as workdir:
    started = time.time()
    loop.train(plan_lib.make(group), [os.path.join(workdir, str(k)) for k in range(len(group))],
               [[StopAtFirst()] for _ in group])
    return time.time() - started


def main(_):
  logging.set_verbosity(logging.WARNING)
  import jax  # pylint: disable=g-import-not-at-top
  timed(set())  # compiles, and measures the layers once, for both timings below
  stop = set(range(FLAGS.members - FLAGS.stopped, FLAGS.members))
  repacked, carried = timed(stop), timed(set())
  print(f'T2, a vmapped group of {FLAGS.members}, {FLAGS.steps} steps, an evaluation every '
        f'{FLAGS.eval_every}; {jax.default_backend()} ({jax.devices()[0].device_kind}, '
        f'{len(os.sched_getaffinity(0))} cores), jax {jax.__version__}')
  print(f'{FLAGS.stopped} stopped at step {FLAGS.eval_every} and re-packed: {repacked:.1f} s; '
        f'none stopped (the cost of carrying them): {carried:.1f} s; re-packing saved '
        f'{carried - repacked:.1f} s ({100 * (carried - repacked) / carried:.0f}%)')


if __name__ == '__main__':
  cli.run(main)
