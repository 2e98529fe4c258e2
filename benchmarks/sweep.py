"""Sweep throughput of the trial strategies on this backend: K trials of a tutorial model
(differing in seed) one after another, as one vmapped group, and as parallel processes
(what a sweep's --workers=N gets; benchmarks/search.py times the workers themselves).

    TFDS_DATA_DIR=../shared/data/tfds python benchmarks/sweep.py \
        --config=experiments/pool.py --ks=1,4,8,16 --steps=60

Each strategy trains every trial for --steps steps through the real code paths
(train.train_and_evaluate; engine/loop.train with K members; --processes worker processes,
each pinned to its own core and running its share of the trials one after another). Rates
leave out each run's first step (compilation) and the evaluations, and are projected to the
config's full length to print trials per hour; the speedup is over one-after-another.

The vmap speedups are recorded for this machine (cnn_jax/sweeps/planning.py: MEASUREMENTS,
keyed by backend, processor and core count; --record=False leaves them alone), and a
worker's sweep.strategy=auto follows them from then on; 'auto picks' names what it chooses
here for a group of K with these figures.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from cnn_jax import allocator  # pylint: disable=g-import-not-at-top,wrong-import-position

allocator.use_tcmalloc_if_available()

from cnn_jax import cli  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import logging  # pylint: disable=g-import-not-at-top,wrong-import-position
from ml_collections import config_flags  # pylint: disable=g-import-not-at-top,wrong-import-position

config_flags.DEFINE_config_file('config', 'experiments/pool.py', 'Experiment to time.',
                                lock_config=True)
flags.DEFINE_list('ks', ['1', '4', '8', '16'], 'Numbers of trials.')
flags.DEFINE_integer('steps', 60, 'Train steps per trial.')
flags.DEFINE_list('strategies', ['sequential', 'vmap', 'processes'], 'Strategies to time.')
flags.DEFINE_integer('processes', 0, 'Worker processes for the processes strategy '
                     '(0: one per CPU core, at most K).')
flags.DEFINE_bool('record', True, "Record the speedups as this machine's measurement for "
                  "sweep.strategy=auto.")
flags.DEFINE_string('worker_seeds', '', 'Internal: run these seeds sequentially, print JSON.')
FLAGS = flags.FLAGS


def short_config(seed: int):
  config = FLAGS.config
  with config.unlocked():
    config.seed = seed
    config.train.num_train_steps = FLAGS.steps
    config.train.log_every_steps = FLAGS.steps  # one host sync, at the end
    config.train.checkpoint_every_epochs = 0
    config.train.pictures = 'none'  # strategies compared on training alone
  return config.copy_and_resolve_references()


def steady_seconds(out) -> float:
  """Seconds of the steps after the first (which includes compilation)."""
  return out['train_seconds'] - out['first_step_seconds']


def run_sequential(seeds) -> float:
  """Trial-steps per second, one trial after another."""
  from cnn_jax import train  # pylint: disable=g-import-not-at-top
  seconds = 0.0
  for seed in seeds:
    with tempfile.TemporaryDirectory() as workdir:
      seconds += steady_seconds(train.train_and_evaluate(short_config(seed), workdir))
  return len(seeds) * (FLAGS.steps - 1) / seconds


def run_vmap(seeds) -> float:
  from cnn_jax import train  # pylint: disable=g-import-not-at-top
  with tempfile.TemporaryDirectory() as workdir:
    outs = train.train_group([short_config(s) for s in seeds],
                      [os.path.join(workdir, str(s)) for s in seeds])
  return len(seeds) * (FLAGS.steps - 1) / steady_seconds(outs[0])


def run_processes(seeds) -> float:
  """Workers in parallel, each pinned to one core; their rates add up while they overlap."""
  cores = sorted(os.sched_getaffinity(0))
  count = min(FLAGS.processes or len(cores), len(seeds))
  shares = [seeds[i::count] for i in range(count)]
  argv = [a for a in sys.argv[1:] if not a.startswith(('--ks', '--strategies', '--worker'))]
  workers = [subprocess.Popen(
      ['taskset', '-c', str(cores[i % len(cores)]), sys.executable, os.path.abspath(__file__),
       *argv, f'--worker_seeds={",".join(map(str, share))}'],
      stdout=subprocess.PIPE, text=True) for i, share in enumerate(shares)]
  rates = []
  for worker in workers:
    out, _ = worker.communicate()
    if worker.returncode:
      raise RuntimeError(f'worker failed with exit code {worker.returncode}')
    rates.append(json.loads(out.strip().splitlines()[-1])['trial_steps_per_second'])
  return sum(rates)


def main(_):
  logging.set_verbosity(logging.WARNING)
  if FLAGS.worker_seeds:
    seeds = [int(s) for s in FLAGS.worker_seeds.split(',')]
    print(json.dumps({'trial_steps_per_second': run_sequential(seeds)}))
    return
  import jax  # pylint: disable=g-import-not-at-top
  from cnn_jax.data import batches  # pylint: disable=g-import-not-at-top
  from cnn_jax.sweeps import planning  # pylint: disable=g-import-not-at-top
  from cnn_jax import machine  # pylint: disable=g-import-not-at-top
  runners = {'sequential': run_sequential, 'vmap': run_vmap, 'processes': run_processes}
  full_steps = batches.total_train_steps(FLAGS.config.train, 60_000)
  table = []
  started = time.time()
  for k in map(int, FLAGS.ks):
    seeds = list(range(k))
    # A group of one is the same program as a single run (engine/program.py): no vmap row.
    rates = {name: runners[name](seeds) for name in FLAGS.strategies
             if not (name == 'vmap' and k == 1)}
    table.append((k, rates))
  print(f'\n{FLAGS.config.model.name}: K trials differing in seed, {FLAGS.steps} steps each, '
        f'projected to {full_steps} steps per trial; backend {jax.default_backend()} '
        f'({jax.devices()[0].device_kind}, {os.cpu_count()} CPU cores), jax {jax.__version__}; '
        f'benchmark took {time.time() - started:.0f} s')
  measurement = {}
  for k, rates in table:
    base = rates.get('sequential')
    if base and k == 1 and 'processes' in rates:
      measurement['pinned_worker_share'] = round(rates['processes'] / base, 3)
    if base and k > 1 and 'vmap' in rates:
      measurement.setdefault('vmap_speedup', {})[str(k)] = round(rates['vmap'] / base, 3)
  if FLAGS.record and measurement:
    planning.write_measurement(jax.default_backend(), measurement)
    print(f'recorded for {machine.machine_key(jax.default_backend())} in '
          f'{planning.MEASUREMENTS}: {measurement}')
  names = FLAGS.strategies
  print('| K | ' + ' | '.join(f'{n} trials/h' for n in names) + ' | '
        + ' | '.join(f'{n} speedup' for n in names if n != 'sequential') + ' | auto picks |')
  print('|' + ' --- |' * (1 + len(names) + len(names)))
  for k, rates in table:
    per_hour = [f'{3600 * rates[n] / full_steps:.1f}' if n in rates else '-' for n in names]
    base = rates.get('sequential')
    speedups = [f'{rates[n] / base:.2f}x' if base and n in rates else '-'
                for n in names if n != 'sequential']
    auto = planning.resolve('auto', jax.default_backend(), k,
                            measurement or planning.read_measurement(jax.default_backend()))
    print(f'| {k} | ' + ' | '.join(per_hour) + ' | ' + ' | '.join(speedups) + f' | {auto} |')


if __name__ == '__main__':
  cli.run(main)
