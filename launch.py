"""Runs one experiment, or the sweep its file declares.

    python launch.py --config=experiments/pool.py [--config.X=Y ...]
    python launch.py --config=experiments/pool.py:sweep=arch --workdir=D --sweep
    python launch.py --config=experiments/pool.py:sweep=search --workdir=D --sweep --workers=2
    python launch.py --config=... --workdir=D --sweep --storage=postgresql://USER@HOST/DB
    python launch.py --config=experiments/pool.py --workdir=D --trial=3     # one trial
    python launch.py --config=experiments/pool.py --list_trials
    python launch.py --config=... --distributed=explicit --coordinator=HOST:PORT \\
        --num_processes=N --process_id=I [--sweep]   # over N processes (docs/DISTRIBUTED.md)

Flags only; the work happens in cnn_jax.train and cnn_jax.sweeps. Command-line overrides
apply to every trial of a sweep. A config that cannot work prints one line, `error: ...`, and
exits with status 2 (--verbose shows the traceback).
"""
import hashlib
import json
import os
import sys

from absl import flags
from absl import logging
from ml_collections import config_flags

from cnn_jax import startup
from cnn_jax import cli

startup.before_jax()  # thread pools and tcmalloc: see startup.py

config_flags.DEFINE_config_file('config', None, 'Experiment config file.', lock_config=True)
flags.DEFINE_string('workdir', '', 'Where events, checkpoints and results.json go. Default: '
                    'runs/<experiment>-<hash of the config>, so re-running the same command '
                    'resumes (or re-reports) that run and any override gets a fresh directory.')
flags.DEFINE_bool('sweep', False, "Run the file's get_sweep (a grid, a search or a "
                  'population) into --workdir, with --workers workers on the study in '
                  '--storage.')
flags.DEFINE_string('storage', '', "Where the sweep's study lives (an SQLAlchemy URL, e.g. "
                    'postgresql://USER@HOST/DB, the password from ~/.pgpass or $PGPASSWORD): '
                    'the same command on another machine joins it. Default: an SQLite file '
                    'in --workdir, for the workers of this machine.')
flags.DEFINE_integer('workers', 1, 'Sweep workers to start here (0: one per GPU, else one per '
                     'CPU core; docs/SWEEPS.md); 1 works in this process.')
flags.DEFINE_integer('trial', None, 'Run only this trial of the sweep (for array jobs).')
flags.DEFINE_bool('list_trials', False, 'Print the sweep\'s trials and exit.')
flags.DEFINE_enum('distributed', 'off', ['off', 'auto', 'explicit'],
                  'One run over several processes (cnn_jax/engine/distributed.py): auto finds '
                  'them as JAX does (SLURM, Open MPI, TPU pods); explicit takes --coordinator, '
                  '--num_processes and --process_id.')
flags.DEFINE_string('coordinator', '', 'HOST:PORT of process 0, for --distributed=explicit.')
flags.DEFINE_integer('num_processes', 0, 'How many processes, for --distributed=explicit.')
flags.DEFINE_integer('process_id', -1, 'This process\'s number (0 to N - 1), for '
                     '--distributed=explicit.')
flags.DEFINE_integer('distributed_timeout', 60, 'Seconds to wait for every process to join, '
                     'and for a process that stopped answering, before ending with an error.')
flags.mark_flags_as_required(['config'])
FLAGS = flags.FLAGS


def default_workdir(config_path: str, config, sweep: bool) -> str:
  experiment = os.path.splitext(os.path.basename(config_path.split(':')[0]))[0]
  # A sweep's directory also depends on its declaration's argument (':sweep=search,...').
  described = config.to_json(sort_keys=True) + (config_path if sweep else '')
  digest = hashlib.sha1(described.encode()).hexdigest()[:8]
  return os.path.join('runs', f'{experiment}-{"sweep-" if sweep else ""}{digest}')


def main(argv):
  del argv  # cli.parse_flags refuses arguments that are not flags
  config = FLAGS.config
  experiment = flags.FLAGS['config'].config_filename  # 'path.py' or 'path.py:arg'
  sweeping = FLAGS.sweep or FLAGS.trial is not None
  from cnn_jax.errors import InputError  # pylint: disable=g-import-not-at-top
  from cnn_jax.engine import distributed  # pylint: disable=g-import-not-at-top
  if FLAGS.distributed != 'off' and FLAGS.workers != 1:
    raise InputError(f'--workers={FLAGS.workers} with --distributed: the processes of a '
                     'distributed command are one sweep worker; for more workers start more '
                     'distributed commands on one --storage (docs/DISTRIBUTED.md)')
  if FLAGS.distributed != 'off':
    distributed.supervise(f'process {FLAGS.process_id}' if FLAGS.distributed == 'explicit'
                          else 'this process')
  # Before anything starts JAX's backends (a sweep's base config: its workers inherit it).
  startup.use_deterministic_ops(bool(config.train.get('deterministic', False)))
  distributed.initialize(FLAGS.distributed, FLAGS.coordinator, FLAGS.num_processes,
                         FLAGS.process_id, FLAGS.distributed_timeout)
  if FLAGS.workers < 0:
    raise InputError(f'--workers={FLAGS.workers}: allowed are 0 (one per GPU, or per CPU '
                     'core without GPUs) or a positive count')
  if not sweeping and (FLAGS.workers != 1 or FLAGS.storage):
    raise InputError('--workers and --storage are for sweeps: add --sweep (or --trial=N)')
  if FLAGS.list_trials:
    from cnn_jax.sweeps import declaration  # pylint: disable=g-import-not-at-top
    sweep = declaration.load(experiment, config)
    if sweep.pbt is not None:
      from cnn_jax.config import paths  # pylint: disable=g-import-not-at-top
      from cnn_jax.sweeps import pbt  # pylint: disable=g-import-not-at-top
      print(f'a population of {sweep.pbt.population} ({sweep.pbt.objective} '
            f'{sweep.pbt.direction}d), its members at the start:')
      for k, member in enumerate(pbt.initial_configs(sweep.pbt, config)):
        print(f'member-{k}', json.dumps({p: paths.value_at(member, p) for p in
                                         ('seed', *sweep.pbt.space)}))
      return
    if sweep.grid is None:
      print(f'a search ({sweep.search.sampler}, pruner {sweep.search.pruner}, '
            f'{sweep.search.trials or "unlimited"} trials, {sweep.search.objective} '
            f'{sweep.search.direction}d) over:')
      for path, distribution in sweep.search.space.items():
        print(f'  {path}: {distribution}')
      return
    for trial in sweep.grid:
      print(trial.name, json.dumps(trial.overrides))
    return
  workdir = FLAGS.workdir or default_workdir(experiment, config, sweeping)
  from cnn_jax.config import files  # pylint: disable=g-import-not-at-top
  if sweeping:
    from cnn_jax.sweeps import runner  # pylint: disable=g-import-not-at-top  (after the allocator)
    rows = runner.run(experiment, workdir, FLAGS.trial, config, FLAGS.storage, FLAGS.workers)
    if not distributed.is_writer():  # process 0 prints the table
      return
    with open(os.path.join(workdir, 'sweep.md')) as f:
      print(f.read())
    print(f'workdir: {workdir}')
    if any(r['status'] in ('pending', 'running', 'failed') for r in rows) and FLAGS.trial is None:
      sys.exit('some trials did not finish')
    return
  # pylint: disable=g-import-not-at-top  (JAX only after the allocator)
  from cnn_jax import atomic_files
  from cnn_jax import console
  from cnn_jax import train
  from cnn_jax.engine import metrics
  from cnn_jax.engine import plan as plan_lib
  from cnn_jax.engine import results
  plan = plan_lib.make([config])  # validated first: the log shows no config that cannot run
  if distributed.is_writer():
    atomic_files.writable_directory(workdir, '--workdir')
    files.record_origin(workdir, experiment)  # for cnn_jax.report's config differences
  logging.info('Config:\n%s\nWorkdir: %s', config, workdir)
  with console.progress_visible():
    record = train.train_plan(plan, [workdir])[0]
  if not distributed.is_writer():  # process 0 prints the figures
    sys.exit(0 if record['status'] == 'ok' else 1)
  print(json.dumps({
      'status': record['status'],
      'test_error': results.final_metric(record, 'test', metrics.ERROR),
      'val_error': results.final_metric(record, 'validation', metrics.ERROR),
      **{k: record[k] for k in ('params', 'steps', 'train_seconds')}}))
  print(f'workdir: {workdir}')
  if record['status'] != 'ok':
    sys.exit(f'run {record["status"]}: {record["message"]}')


if __name__ == '__main__':
  cli.run(main)
