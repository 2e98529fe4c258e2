"""Runs one experiment: `python launch.py --config=experiments/pool.py [--config.X=Y ...]`.

Flags only; the work happens in cnn_jax.train.train_and_evaluate.
"""
import hashlib
import json
import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from cnn_jax import allocator

allocator.use_tcmalloc_if_available()  # before JAX starts: it halves CPU step times here

config_flags.DEFINE_config_file('config', None, 'Experiment config file.', lock_config=True)
flags.DEFINE_string('workdir', '', 'Where events, checkpoints and results.json go. Default: '
                    'runs/<experiment>-<hash of the config>, so re-running the same command '
                    'resumes (or re-reports) that run and any override gets a fresh directory.')
flags.mark_flags_as_required(['config'])
FLAGS = flags.FLAGS


def default_workdir(config_path: str, config) -> str:
  experiment = os.path.splitext(os.path.basename(config_path.split(':')[0]))[0]
  digest = hashlib.sha1(config.to_json(sort_keys=True).encode()).hexdigest()[:8]
  return os.path.join('runs', f'{experiment}-{digest}')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  from cnn_jax import train  # pylint: disable=g-import-not-at-top  (after the allocator)
  config = FLAGS.config
  workdir = FLAGS.workdir or default_workdir(flags.FLAGS['config'].config_filename, config)
  logging.info('Config:\n%s\nWorkdir: %s', config, workdir)
  run_results = train.train_and_evaluate(config, workdir)
  print(json.dumps({k: run_results[k] for k in (
      'status', 'test_error', 'val_error', 'params', 'steps', 'train_seconds')}))
  print(f'workdir: {workdir}')
  if run_results['status'] != 'ok':
    sys.exit(f'run {run_results["status"]}: {run_results["message"]}')


if __name__ == '__main__':
  app.run(main)
