"""Sweeps: declaration, checks before running, per-trial runs, tables, HParams, resumption."""
import collections
import csv
import glob
import os

import pytest
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from cnn_jax import train
from cnn_jax.config import files as experiment_files
from cnn_jax.config import validation
from cnn_jax.engine import metrics
from cnn_jax.engine import results
from cnn_jax.sweeps import declaration
from cnn_jax.sweeps import pbt
from cnn_jax.sweeps import executors
from cnn_jax.sweeps import hyper as h
from cnn_jax.sweeps import study as study_lib
from cnn_jax.sweeps import study_storage
from cnn_jax.sweeps import runner
from cnn_jax.sweeps import tables
from cnn_jax.sweeps import trials as trials_lib

REPO = experiment_files.REPO_ROOT

TOY_EXPERIMENT = '''
from experiments import default

def get_config():
  config = default.get_config()
  config.model.conv_features = (4, 8)
  config.train.update(dict(batch_size=32, num_train_steps=8, log_every_steps=4,
                           eval_batch_size=128))
  config.optimizer.learning_rate = 0.1
  config.sweep.strategy = 'sequential'
  config.sweep.heartbeat_seconds = 1
  return config

def get_sweep(h, arg=None):
  return h.chain([
      h.product([h.sweep('model.activation', ['relu', 'tanh']), h.sweep('seed', [0, 1])]),
      h.sweep('optimizer.learning_rate', [1e6]),  # a finite loss that runs away: diverged
  ])
'''
# (A trial that cannot work stops the whole grid before anything runs:
# tests/test_sweep_checks.py.)


@pytest.fixture
def toy_experiment(tmp_path):
  path = tmp_path / 'toy.py'
  path.write_text(TOY_EXPERIMENT)
  return str(path)


def test_hyper_helpers():
  assert h.product([h.sweep('a', [1, 2]), h.sweep('b', ['x'])]) == [
      {'a': 1, 'b': 'x'}, {'a': 2, 'b': 'x'}]
  assert h.zip([h.sweep('a', [1, 2]), h.sweep('b', [3, 4])]) == [{'a': 1, 'b': 3}, {'a': 2, 'b': 4}]
  assert h.chain([h.sweep('a', [1]), h.sweep('b', [2])]) == [{'a': 1}, {'b': 2}]
  assert h.product([h.sweep('a', [1, 2]), h.fixed('b', 0)]) == [{'a': 1, 'b': 0},
                                                                 {'a': 2, 'b': 0}]
  with pytest.raises(ValueError, match='equal length'):
    h.zip([h.sweep('a', [1, 2]), h.sweep('b', [3])])
  with pytest.raises(ValueError, match=r"swept twice in one trial: \['a'\]"):
    h.product([h.sweep('a', [1]), h.sweep('a', [2])])


def experiment_sweeps():
  """Every (experiment file, sweep argument) in experiments/ that declares a sweep."""
  specs = []
  for path in sorted(glob.glob(os.path.join(REPO, 'experiments', '*.py'))):
    module = experiment_files.load_module(path)
    if hasattr(module, 'get_sweep'):
      for name in getattr(module, 'SWEEPS', (None,)):
        specs.append(os.path.relpath(path, REPO) + (f':sweep={name}' if name else ''))
  return specs


@pytest.mark.parametrize('spec', experiment_sweeps())
def test_every_experiment_sweep_is_well_formed(spec, mnist_described):
  sweep = declaration.load(os.path.join(REPO, spec))
  if sweep.search is not None:  # checked by load: every path, value type and field
    assert sweep.search.objective.startswith('validation/')
    return
  if sweep.pbt is not None:  # checked by load too, and each member's config can run
    assert sweep.pbt.objective.startswith('validation/')
    for member in pbt.initial_configs(sweep.pbt, sweep.base):
      validation.validate(member)
    return
  trials = sweep.grid
  assert len(trials) >= 2
  assert len({t.name for t in trials}) == len(trials)
  for trial in trials:
    validation.validate(trial.config)  # every trial can run


def test_pool_sweeps_ask_the_tutorial_questions(mnist_described):
  questions = declaration.load(os.path.join(REPO, 'experiments/pool.py')).grid
  assert {t.overrides['model.activation'] for t in questions} == {
      'relu', 'sigmoid', 'leaky_relu', 'tanh'}
  assert {t.overrides['model.pool_type'] for t in questions} == {('max', 'max'), ('avg', 'avg')}
  assert len(questions) == 16
  arch = declaration.load(os.path.join(REPO, 'experiments/pool.py:sweep=arch')).grid
  assert {t.config.model.conv_strides for t in arch} == {(1, 1), (2, 1)}
  assert len({t.config.model.conv_features for t in arch}) == 2
  assert all(t.config.optimizer.learning_rate == 0.2 for t in questions + arch)  # the recipe


@pytest.mark.parametrize('overrides, message', [
    ({'model.activaton': 'tanh'}, r"'model.activaton' is not a config field; fields there: .*activation"),
    ({'modle.activation': 'tanh'}, r"'modle.activation' is not a config field \('modle' is not a section\)"),
    ({'model.conv_features': 8}, r'model.conv_features=8 must be a tuple'),
    ({'seed': 'zero'}, r"seed='zero' must be of type int"),
    ({'optimizer.learning_rate': 'fast'}, r"learning_rate='fast' must be of type float"),
])
def test_bad_sweep_keys_and_values_fail_before_any_trial(overrides, message):
  base = experiment_files.load_config(os.path.join(REPO, 'experiments/pool.py'))
  with pytest.raises(ValueError, match=message):
    trials_lib.apply_overrides(base, overrides, 'trial 0')


def read_events(logdir):
  accumulator = event_accumulator.EventAccumulator(logdir)
  accumulator.Reload()
  return accumulator.PluginTagToContent('hparams')


def test_sweep_runs_records_and_resumes(toy_experiment, tmp_path, mock_mnist, monkeypatch):
  workdir = str(tmp_path / 'sweep')
  real_train = train.train_group
  calls, killed = [], []
  def train_then_maybe_die(configs, run_dirs, observers=None, **kwargs):
    calls.append(os.path.basename(run_dirs[0]))
    if len(calls) == 3 and not killed:
      killed.append(True)
      raise KeyboardInterrupt  # the sweep is stopped (Ctrl-C) during its third trial
    return real_train(configs, run_dirs, observers, **kwargs)
  monkeypatch.setattr(train, 'train_group', train_then_maybe_die)
  with pytest.raises(KeyboardInterrupt):
    runner.run(toy_experiment, workdir)
  assert len(calls) == 3

  calls.clear()
  rows = runner.run(toy_experiment, workdir)  # the same command again
  # Finished ones are not repeated; the stopped trial was handed back to the study and runs
  # first.
  assert [c[:3] for c in calls] == ['002', '003', '004']
  statuses = {r['index']: r['status'] for r in rows}
  assert statuses == {0: 'ok', 1: 'ok', 2: 'ok', 3: 'ok', 4: 'diverged'}
  diverged = results.read(os.path.join(workdir, rows[-1]['trial']))
  assert 'a runaway loss' in diverged['message']  # settled like a NaN (the study, below)

  ok_errors = [r['val_error'] if r['val_error'] is not None else r['test_error']
               for r in rows if r['status'] == 'ok']
  assert ok_errors == sorted(ok_errors) and [r['status'] for r in rows][-1] == 'diverged'
  with open(os.path.join(workdir, 'sweep.csv')) as f:
    table = list(csv.DictReader(f))
  assert [int(r['index']) for r in table] == [r['index'] for r in rows]
  assert {'model.activation', 'seed', 'status', 'test_error', 'params', 'seconds'} <= set(table[0])
  markdown = open(os.path.join(workdir, 'sweep.md')).read()
  assert '| # | model.activation | seed |' in markdown and 'diverged' in markdown

  # HParams: the experiment (swept keys, metrics) once at the top, each trial's values below.
  # The grid went through the study: one settled trial per grid trial, the stopped one's
  # first attempt failed and retried.
  sweep = declaration.load(toy_experiment)
  study = declaration.open_study(sweep, workdir, study_storage.url_for(workdir))
  states = sorted(study_lib.state_of(t) for t in study.get_trials())
  assert states == ['complete'] * 4 + ['diverged', 'failed']

  experiment = plugin_data_pb2.HParamsPluginData.FromString(
      read_events(workdir)['_hparams_/experiment']).experiment
  assert {i.name for i in experiment.hparam_infos} == {
      'model.activation', 'seed', 'optimizer.learning_rate'}
  assert 'eval/test/error' in {m.name.tag for m in experiment.metric_infos}
  session = plugin_data_pb2.HParamsPluginData.FromString(read_events(
      os.path.join(workdir, '003-activation=tanh,seed=1'))['_hparams_/session_start_info'])
  assert session.session_start_info.hparams['model.activation'].string_value == 'tanh'
  assert session.session_start_info.hparams['seed'].number_value == 1

  calls.clear()
  runner.run(toy_experiment, workdir)
  assert calls == []  # everything finished: nothing runs again


def test_single_trial(toy_experiment, tmp_path, mock_mnist):
  rows = runner.run(toy_experiment, str(tmp_path), trial_index=2)
  assert {r['index']: r['status'] for r in rows}[2] == 'ok'
  assert sum(r['status'] == 'pending' for r in rows) == 4
  # The whole sweep later trains the others and only settles trial 2, which it finds done.
  rows = runner.run(toy_experiment, str(tmp_path))
  assert [r['status'] for r in sorted(rows, key=lambda r: r['index'])] == [
      'ok', 'ok', 'ok', 'ok', 'diverged']
  with pytest.raises(ValueError, match=r'--trial=9: the sweep has trials 0 to 4'):
    runner.run(toy_experiment, str(tmp_path), trial_index=9)


def base_config_with(toy_experiment, **sweep_fields):
  config = experiment_files.load_config(toy_experiment)
  config.sweep.update(sweep_fields)
  return config


def test_sweep_trains_same_program_trials_as_vmapped_groups(toy_experiment, tmp_path,
                                                            mock_mnist, monkeypatch):
  base = base_config_with(toy_experiment, strategy='vmap')
  validated = collections.Counter()
  real_validate = validation.validate

  def counted_validate(config, *args, **kwargs):
    validated[config.to_json()] += 1
    return real_validate(config, *args, **kwargs)

  monkeypatch.setattr(validation, 'validate', counted_validate)
  rows = runner.run(toy_experiment, str(tmp_path), base=base)
  assert {r['index']: r['status'] for r in rows} == {
      0: 'ok', 1: 'ok', 2: 'ok', 3: 'ok', 4: 'diverged'}
  # Each trial's config is validated once, when the grid is declared: neither the worker nor
  # the plans of its groups validate it again.
  assert len(validated) == 5 and set(validated.values()) == {1}, validated.values()
  ran_by = {r['index']: results.read(os.path.join(str(tmp_path), r['trial']))['executor']
            for r in rows}
  # relu seeds 0 and 1 and the diverging learning rate share a program; tanh is another.
  assert [ran_by[i]['members'] for i in (0, 1, 4)] == [3, 3, 3]
  assert [ran_by[i]['members'] for i in (2, 3)] == [2, 2]
  # The members that trained to the end are scored together (the diverged one is not).
  record = {r['index']: results.read(os.path.join(str(tmp_path), r['trial'])) for r in rows}
  assert record[0]['ensemble'] == record[1]['ensemble']
  assert record[0]['ensemble']['members'] == [r['trial'] for r in sorted(
      rows, key=lambda r: r['index']) if r['index'] in (0, 1)]
  assert 'ensemble' not in record[4]
  # sweep.md gives each configuration's seeds and their ensemble.
  table = (tmp_path / 'sweep.md').read_text().split(tables.ENSEMBLES_TITLE)[1]
  ensemble_rows = [line for line in table.splitlines() if line.startswith('| activation=')]
  assert [row.split(' | ')[0] for row in ensemble_rows] == ['| activation=relu',
                                                             '| activation=tanh']
  assert metrics.show('error', record[0]['ensemble']['test']['error']) in ensemble_rows[0]


def test_a_trial_locked_by_another_process_is_skipped(toy_experiment, tmp_path, mock_mnist):
  import fcntl  # pylint: disable=g-import-not-at-top
  trial = declaration.load(toy_experiment).grid[0]
  run_dir = tmp_path / trial.name
  run_dir.mkdir()
  with open(run_dir / '.lock', 'w') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    executors.run_alone(trial, str(run_dir))
  assert results.read(str(run_dir)) is None
  executors.run_alone(trial, str(run_dir))
  assert results.read(str(run_dir))['status'] == 'ok'


@pytest.mark.realdata
def test_a_grid_in_two_worker_processes_on_real_data(toy_experiment, tmp_path, monkeypatch):
  from tests.conftest import real_data_or_skip  # pylint: disable=g-import-not-at-top
  monkeypatch.setenv('TFDS_DATA_DIR', real_data_or_skip())  # the workers read it too
  rows = runner.run(toy_experiment, str(tmp_path), workers=2)
  assert {r['index']: r['status'] for r in rows} == {
      0: 'ok', 1: 'ok', 2: 'ok', 3: 'ok', 4: 'diverged'}
  assert all(r['test_error'] < 0.9 for r in rows if r['status'] == 'ok')
