"""Every value a sweep can give a config is checked before anything runs: each trial of a
grid, each choice and each range's ends of a search's space, and its seeds, by the one
validation of a config (config/validation.py). A bad one is one error line naming the trial
or path, the field and what it allows; no study is made, nothing is written."""
import os
import re
import subprocess
import sys

import pytest

from cnn_jax.engine import results
from cnn_jax.errors import ConfigError
from cnn_jax.model import cnn
from cnn_jax.sweeps import declaration
from cnn_jax.sweeps import executors
from cnn_jax.sweeps import runner
from cnn_jax.sweeps import trials as trials_lib
from cnn_jax.machine import patience

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# model.activation's choices in a refusal, as model/cnn.py implements them (a new one is one
# entry there, not an edit here).
ACTIVATIONS = ', '.join(cnn.ACTIVATIONS)

# T2 with pool.py's search recipe: a 10,000-image validation split of MNIST's 60,000.
EXPERIMENT = '''
from experiments import pool

def get_config(arg=None):
  return pool.get_config('sweep=search')

def get_sweep(h, arg=None):
  return SWEEP
'''
GOOD = "'optimizer.learning_rate': h.loguniform(0.01, 1.0)"


@pytest.fixture(autouse=True)
def described_mnist(mnist_described):
  """Values are validated against MNIST's sizes (its dataset_info.json); no image is read."""


def write(tmp_path, sweep: str) -> str:
  path = tmp_path / 'experiment.py'
  path.write_text(EXPERIMENT.replace('SWEEP', sweep.replace('GOOD', GOOD)))
  return str(path)


BAD_SEARCHES = [
    # An activation that does not exist among a choice's values.
    ("h.search({GOOD, 'model.activation': h.choice(['relu', 'swish'])}, trials=4)",
     r"experiment.py: the search's model.activation \(value 2 of h.choice\('relu', 'swish'\)\): "
     r"model.activation='swish' is not supported; allowed values: "
     + re.escape(ACTIVATIONS) + '$'),
    # Float ranges with an end outside the field's range, on a linear and a log scale.
    ("h.search({'model.dense_dropout': h.uniform(0.0, 1.0)}, trials=4)",
     r"the search's model.dense_dropout \(the high end of h.uniform\(0.0, 1.0\)\): "
     r'model.dense_dropout=1.0 must lie in \[0, 1\) \(a dropout rate\)$'),
    ("h.search({GOOD, 'optimizer.momentum': h.loguniform(0.5, 1.5)}, trials=4)",
     r"\(the high end of h.loguniform\(0.5, 1.5\)\): optimizer.momentum=1.5 must lie in \[0, 1\)"),
    ("h.search({'augment.translate': h.uniform(0.0, 28.0)}, trials=4)",  # the image's side
     r'augment.translate=28.0 must lie in \[0, 28\)'),
    # Negative integers: a range's low end, a choice's value.
    ("h.search({'train.batch_size': h.integer(-32, 128)}, trials=4)",
     r"the search with each path at its first value \{'train.batch_size': -32\}: "
     r'train.batch_size=-32 must be between 1 and 50000 \(the 50000 training images\)'),
    ("h.search({'train.num_train_steps': h.choice([100, -5])}, trials=4)",
     r'train.num_train_steps=-5 must be a positive integer, or -1 \(the default'),
    # A range whose ends are allowed but which holds 0.
    ("h.search({'train.num_train_steps': h.integer(-1, 100)}, trials=4)",
     r"\(0 in h.integer\(-1, 100\)\): train.num_train_steps=0 must be a positive integer"),
    # Wrong types: inside a tuple (all an override's type check sees is the tuple), a bool.
    ("h.search({'model.conv_features': h.choice([(8, 16), (8, '32')])}, trials=4)",
     r"model.conv_features\[1\]='32' must be an integer"),
    ("h.search({'data.download': h.choice([False, 'yes'])}, trials=4)",
     r"data.download='yes' must be of type bool"),
    # The seeds every configuration runs with.
    ("h.search({GOOD}, trials=4, seeds=[0, 2**32])",
     r'h.search\(seeds=\[0, 4294967296\]\): seed=4294967296 must be between 0 and 4294967295'),
]

BAD_GRIDS = [
    ("h.product([h.sweep('model.activation', ['relu', 'swish']), h.sweep('seed', [0, 1])])",
     r"experiment.py trial 2 \{'model.activation': 'swish', 'seed': 0\}: model.activation="
     r"'swish' is not supported; allowed values: relu, sigmoid"),
    ("h.sweep('train.num_train_steps', [100, -5])",
     r"trial 1 \{'train.num_train_steps': -5\}: train.num_train_steps=-5 must be a positive "
     r'integer, or -1'),
    ("h.sweep('augment.rotate', [10.0, 200.0])", r'augment.rotate=200.0 must lie in \[0, 180\]'),
    ("h.sweep('model.pool_type', [('max', 'max'), ('max', 3)])",
     r"model.pool_type\[1\]=3 is not supported; allowed values: max, avg, none"),
    ("h.sweep('optimizer.learning_rate', [0.1, float('inf')])",
     r'optimizer.learning_rate=inf must be a finite number'),
    # A trial is checked whole: fields fine alone, a model that shrinks pool1 to nothing.
    ("h.sweep('model.pool_window', [(2, 3), (2, 20)])",
     r"trial 1 \{'model.pool_window': \(2, 20\)\}: model: layer pool1 .* gets a 14x14 input"),
]


@pytest.mark.parametrize('sweep, message', BAD_SEARCHES + BAD_GRIDS)
def test_every_value_of_a_sweep_is_checked_when_it_is_loaded(tmp_path, sweep, message):
  with pytest.raises(ConfigError, match=message) as error:
    declaration.load(write(tmp_path, sweep))
  assert '\n' not in str(error.value)


@pytest.mark.parametrize('sweep', [BAD_SEARCHES[0][0], BAD_GRIDS[0][0]], ids=['search', 'grid'])
def test_a_bad_value_stops_the_sweep_before_anything_is_written(tmp_path, sweep):
  workdir = tmp_path / 'sweep'
  with pytest.raises(ConfigError, match="model.activation='swish' is not supported"):
    runner.run(write(tmp_path, sweep), str(workdir))
  assert not workdir.exists()  # no study, no trial, no table


def test_sweeps_that_can_run_load(tmp_path):
  search = declaration.load(write(tmp_path, (
      "h.search({GOOD, 'train.num_train_steps': h.integer(1, 100), 'model.activation': "
      "h.choice(['relu', 'gelu'])}, trials=4, seeds=[0, 1])")))
  assert set(search.search.space) == {'optimizer.learning_rate', 'train.num_train_steps',
                                      'model.activation'}
  # Each value is checked beside the others' first values, not the base's: a search over
  # three-layer models from T2's two layers loads.
  three = {'conv_features': [(4, 8, 16), (8, 16, 32)], 'conv_kernel_size': [(3, 3, 3)],
           'conv_strides': [(1, 1, 1)], 'conv_padding': [('SAME',) * 3],
           'pool_type': [('max', 'max', 'none'), ('avg', 'avg', 'none')],
           'pool_window': [(2, 2, 1)], 'pool_strides': [(2, 2, 1)],
           'pool_padding': [('VALID',) * 3]}
  space = ', '.join(f"'model.{k}': h.choice({v!r})" for k, v in three.items())
  declaration.load(write(tmp_path, f'h.search({{{space}}}, trials=4)'))
  grid = declaration.load(write(tmp_path, "h.sweep('train.num_train_steps', [-1, 100])"))
  assert [t.config.train.num_train_steps for t in grid.grid] == [-1, 100]


def test_a_bad_choice_through_launch_is_one_line_and_status_2(tmp_path):
  workdir = tmp_path / 'sweep'
  proc = subprocess.run(
      [sys.executable, 'launch.py', f'--config={write(tmp_path, BAD_SEARCHES[0][0])}',
       '--sweep', f'--workdir={workdir}'],
      cwd=ROOT, capture_output=True, text=True, timeout=patience(120), env=dict(os.environ))
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert proc.stderr.strip().splitlines() == [
      f"error: {tmp_path / 'experiment.py'}: the search's model.activation (value 2 of "
      "h.choice('relu', 'swish')): model.activation='swish' is not supported; allowed values: "
      + ACTIVATIONS]
  assert not workdir.exists()


def test_a_sampled_combination_that_cannot_work_is_recorded_invalid(tmp_path):
  """What the check before the sweep cannot see (two paths' values each fine, wrong
  together) is still recorded, not trained."""
  base = declaration.load(write(tmp_path, f'h.search({{{GOOD}}}, trials=1)')).base
  overrides = {'model.conv_strides': (2, 1), 'model.pool_window': (2, 14)}  # 28 -> 14 -> 7 < 14
  trial = trials_lib.Trial(0, overrides, trials_lib.apply_overrides(base, overrides, 'trial 0'))
  recorded = []
  observer = type('Observer', (), {'recorded': lambda self, record: recorded.append(record)})()
  executors.run_alone(trial, str(tmp_path / trial.name), [observer])
  saved = results.read(str(tmp_path / trial.name))
  assert saved['status'] == 'invalid' and 'layer pool1' in saved['message']
  assert recorded == [saved]
