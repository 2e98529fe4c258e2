"""`python -m cnn_jax.report`: a run's report.md and pictures from what the run left, and a
sweep's report from its table."""
import csv
import os
import re
import shutil
import subprocess
import sys

import pytest

from cnn_jax import errors
from cnn_jax import train
from cnn_jax.config import files
from cnn_jax.data import datasets
from cnn_jax.engine import results
from cnn_jax.reports import run_report
from cnn_jax.reports import sweep_report

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def links_of(report_path: str) -> list[str]:
  """The targets of the markdown links and images in a report, each checked to exist."""
  with open(report_path) as f:
    text = f.read()
  targets = re.findall(r'\]\(([^)]+)\)', text)
  for target in targets:
    assert os.path.exists(os.path.join(os.path.dirname(report_path), target)), target
  return targets


def test_report_of_a_finished_run(tmp_path, tiny_config, mock_mnist):
  # tiny_config draws no pictures: the report draws them from the checkpoint
  workdir = str(tmp_path / 'run')
  files.record_origin(workdir, 'experiments/pool.py')
  record = train.train_and_evaluate(tiny_config, workdir)

  done = run_report_command(workdir)  # the command, as a user runs it
  assert done.returncode == 0, done.stderr
  path = done.stdout.strip()
  assert path == os.path.join(workdir, run_report.FILENAME)
  with open(path) as f:
    text = f.read()
  assert 'Status: **ok**.' in text and 'Missing' not in text
  # What differs from experiments/pool.py, and nothing that doesn't.
  assert '| train.batch_size | 64 | 32 |' in text
  assert '| model.conv_features | [8, 16] | [4, 8] |' in text
  assert '| seed |' not in text
  assert '| **total** | | **' + f'{record["params"]:,}' + '** | 100% |' in text
  assert f'{100 * record["final"]["test"]["error"]:.2f}%' in text
  assert '### Per-class accuracy and confusion matrix (test)' in text
  targets = links_of(path)
  assert {os.path.basename(t) for t in targets} == {
      f'{name}.png' for name in ('learning_curves', 'confusion_test', 'predictions',
                                 'confidently_wrong', 'filters', 'activations')}


def test_report_without_the_dataset_keeps_the_runs_own_pictures(tmp_path, tiny_config,
                                                                 mock_mnist, monkeypatch):
  tiny_config.train.pictures = 'end'
  workdir = str(tmp_path / 'run')
  train.train_and_evaluate(tiny_config, workdir)
  monkeypatch.setenv('TFDS_DATA_DIR', str(tmp_path / 'nothing here'))
  datasets.load_tfds_split.cache_clear()
  path = run_report.write(workdir)
  with open(path) as f:
    text = f.read()
  assert 'Status: **ok**. Pictures not drawn again from the checkpoint: ' in text
  assert 'pictures/predictions.png' in text and '## Model' in text
  links_of(path)


def test_report_says_what_is_missing(tmp_path, tiny_config, mock_mnist):
  unfinished = str(tmp_path / 'unfinished')
  train.train_and_evaluate(tiny_config, unfinished)
  os.remove(os.path.join(unfinished, results.FILENAME))  # as if stopped before the end
  with open(run_report.write(unfinished)) as f:
    text = f.read()
  assert 'Status: **unfinished**' in text
  assert 'the run has not finished (its checkpoint is at step 12)' in text
  assert 'Final figures' not in text

  no_checkpoint = str(tmp_path / 'no_checkpoint')
  tiny_config.train.checkpoint_every_epochs = 0
  tiny_config.train.pictures = 'end'
  train.train_and_evaluate(tiny_config, no_checkpoint)
  path = run_report.write(no_checkpoint)
  with open(path) as f:
    text = f.read()
  assert 'Missing: the checkpoint (train.checkpoint_every_epochs=0)' in text
  assert '## Model' not in text
  assert 'Final figures' in text  # results.json has them
  assert 'pictures/predictions.png' in text  # the run drew its own
  links_of(path)

  diverged = str(tmp_path / 'diverged')
  tiny_config.optimizer.learning_rate = 1e30
  tiny_config.train.checkpoint_every_epochs = 1  # (it diverges at step 4, before epoch 1 ends)
  train.train_and_evaluate(tiny_config, diverged)
  with open(run_report.write(diverged)) as f:
    text = f.read()
  assert 'Status: **diverged**' in text and 'final figures: the run is diverged: train/loss' in text
  assert 'the checkpoint (the run diverged before its first)' in text
  assert 'Final figures' not in text and 'pictures/predictions.png' not in text

  with pytest.raises(errors.UserError, match='holds no run'):
    run_report.write(str(tmp_path))


def test_report_of_a_sweep_with_trial_reports(tmp_path, tiny_config, mock_mnist):
  sweep = tmp_path / 'sweep'
  rows = []
  for index, seed in enumerate((0, 1)):
    name = f'{index:03d}-seed={seed}'
    tiny_config.seed = seed
    record = train.train_and_evaluate(tiny_config, str(sweep / name))
    rows.append({'index': index, 'trial': name, 'seed': seed, 'status': record['status'],
                 'val_error': '', 'test_error': record['final']['test']['error'],
                 'params': record['params'], 'seconds': record['wall_seconds'],
                 'message': ''})
  with open(sweep / sweep_report.TABLE, 'w', newline='') as f:
    writer = csv.DictWriter(f, list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)

  path = sweep_report.write(str(sweep))
  targets = links_of(path)
  assert sweep_report.PLOT in targets
  assert [t for t in targets if t.endswith('report.md')] == [
      '000-seed=0/report.md', '001-seed=1/report.md']
  for target in targets:
    if target.endswith('report.md'):
      links_of(str(sweep / target))


def test_report_of_an_archived_sweep_table(tmp_path):
  shutil.copytree(os.path.join(REPO, 'docs', 'sweeps', 'pool-questions'), tmp_path / 'sweep')
  path = sweep_report.write(str(tmp_path / 'sweep'))
  with open(path) as f:
    text = f.read()
  assert '16 trials over model.activation, model.pool_type, seed; 16 finished.' in text
  assert '| 6 | sigmoid | avg-avg | 0 | ok | n/a | 3.63% |' in text
  links_of(path)


def run_report_command(workdir: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, '-m', 'cnn_jax.report', f'--workdir={workdir}'],
                        capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=REPO),
                        cwd=REPO, check=False)


def test_report_command_line_refuses_a_directory_without_a_run(tmp_path):
  bad = run_report_command(str(tmp_path / 'nowhere'))
  assert bad.returncode == 2
  assert bad.stderr.strip().splitlines()[-1].startswith('error: --workdir=')


def test_a_config_json_from_before_newer_fields_differs_in_nothing_it_did_not_set(tmp_path):
  """docs/examples/pool-seed0 ran experiments/pool.py as it is; its config.json predates the
  augment, precision and other fields, and holds fields that have since gone."""
  import json  # pylint: disable=g-import-not-at-top
  example = os.path.join(REPO, 'docs', 'examples', 'pool-seed0')
  with open(os.path.join(example, 'config.json')) as f:
    saved = json.load(f)
  assert 'augment' not in saved  # (what makes this example a test of old files)
  assert run_report.config_differences(example, saved) == ('experiments/pool.py', [])
  saved['model']['activation'] = 'tanh'
  assert run_report.config_differences(example, saved)[1] == [
      ('model.activation', 'relu', 'tanh')]
