"""Ensembles: the mean of the members' probabilities, for a vmapped group of seeds (its
results.json) and for finished runs (python -m cnn_jax.evaluate --workdir=D1,D2)."""
import os

import numpy as np
import pytest

from cnn_jax.data import datasets
from cnn_jax.engine import ensembles
from cnn_jax.engine import loop
from cnn_jax.engine import plan as plan_lib
from cnn_jax.engine import metrics
from cnn_jax.engine import results
from tests.test_groups import member_configs
from tests.test_trained import evaluate_command


def test_the_ensemble_averages_the_members_probabilities():
  labels = np.array([0, 1, 2])
  # Each member is wrong on one example, confidently on none: their mean is right on all.
  a = np.array([[0.6, 0.4, 0.0], [0.0, 0.4, 0.6], [0.0, 0.0, 1.0]])
  b = np.array([[0.4, 0.6, 0.0], [0.0, 1.0, 0.0], [0.0, 0.2, 0.8]])
  assert ensembles.figures(a[None], labels)['error'] == pytest.approx(1 / 3)
  assert ensembles.figures(b[None], labels)['error'] == pytest.approx(1 / 3)
  both = ensembles.figures(np.stack([a, b]), labels)
  assert both['error'] == 0.0 and both['accuracy'] == 1.0
  assert both['loss'] == pytest.approx(-np.mean(np.log([0.5, 0.7, 0.9])))


@pytest.fixture(scope='module')
def seed_group(tmp_path_factory, mock_mnist_files):
  from tests import conftest  # pylint: disable=g-import-not-at-top
  root, _ = mock_mnist_files
  with pytest.MonkeyPatch.context() as patch:
    patch.setenv('TFDS_DATA_DIR', root)
    datasets.load_tfds_split.cache_clear()
    config = conftest.tiny()
    config.model.conv_impl = config.model.pool_impl = 'xla'
    configs = member_configs(config, seed=[0, 1, 2])
    workdirs = [str(tmp_path_factory.mktemp('group') / f'seed{k}') for k in range(3)]
    records = loop.train(plan_lib.make(configs), workdirs)
    labels = datasets.load_splits(config.data).test.labels
    datasets.load_tfds_split.cache_clear()
  return workdirs, records, labels


def test_a_group_of_seeds_records_its_ensemble(seed_group):
  workdirs, records, labels = seed_group
  kept = [ensembles.read(w)[0] for w in workdirs]
  for workdir in workdirs:
    np.testing.assert_array_equal(ensembles.read(workdir)[1], labels)
  for record, probabilities in zip(records, kept):
    # The kept probabilities are the run's own final test evaluation.
    assert probabilities.shape == (len(labels), 10)
    assert np.mean(np.argmax(probabilities, -1) != labels) == pytest.approx(
        record['final']['test']['error'])
    assert record['ensemble']['members'] == ['seed0', 'seed1', 'seed2']
    assert record['ensemble']['test'] == pytest.approx(
        ensembles.figures(np.stack(kept), labels))
  assert results.read(workdirs[0])['ensemble'] == records[0]['ensemble']
  assert ensembles.of_runs(workdirs) == pytest.approx(records[0]['ensemble']['test'])


def test_the_evaluate_command_scores_an_ensemble_of_runs(seed_group, mock_mnist_files):
  workdirs, records, labels = seed_group
  proc = evaluate_command([f'--workdir={",".join(workdirs[:2])}'], mock_mnist_files[0])
  assert proc.returncode == 0, proc.stderr[-3000:]
  last = proc.stdout.strip().splitlines()[-1]
  assert last.startswith('ensemble of 2 runs (the mean of their probabilities), test: ')
  kept = np.stack([ensembles.read(w)[0] for w in workdirs[:2]])
  error = ensembles.figures(kept, labels)['error']
  shown = float(last.split('error ')[1].split('%')[0]) / 100
  assert shown == pytest.approx(error, abs=1 / len(labels) + 1e-4)  # XLA layers vs the group's
  for workdir in workdirs[:2]:
    assert workdir in proc.stdout


def test_the_sweep_table_scores_each_configuration_once_per_seed(seed_group, tmp_path):
  from cnn_jax.sweeps import tables  # pylint: disable=g-import-not-at-top
  from cnn_jax.sweeps import trials as trials_lib  # pylint: disable=g-import-not-at-top
  workdirs, _, labels = seed_group
  from tests import conftest  # pylint: disable=g-import-not-at-top
  # Trials 0 and 1 are seeds 0 and 1; trial 2 repeats trial 1 (a search may queue one twice):
  # the ensemble is of seeds 0 and 1, not of seed 1 counted twice.
  trials = []
  for index, (seed, source) in enumerate([(0, workdirs[0]), (1, workdirs[1]), (1, workdirs[1])]):
    config = conftest.tiny()
    config.seed = seed
    trial = trials_lib.Trial(index, {'seed': seed}, config)
    os.symlink(source, tmp_path / trial.name)
    trials.append(trial)
  lines = tables.ensemble_lines(str(tmp_path), trials)
  assert len(lines) == 5 and lines[-1].startswith('| base | 0: ')
  assert lines[-1].count(': ') == 2  # two seeds in the row
  pair = ensembles.figures(np.stack([ensembles.read(w)[0] for w in workdirs[:2]]), labels)
  assert lines[-1].endswith(f'| {metrics.show(metrics.ERROR, pair["error"])} |')
