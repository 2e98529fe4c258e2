"""A population-based training declaration (h.pbt, sweeps/pbt.py) is checked before anything
runs: each bad field is one line naming it, and through launch.py exit status 2."""
import dataclasses
import os
import subprocess
import sys

import pytest

from cnn_jax.engine import grouping
from cnn_jax.engine import population
from cnn_jax.errors import ConfigError
from cnn_jax.sweeps import declaration
from cnn_jax.sweeps import pbt
from cnn_jax.sweeps import trials as trials_lib
from cnn_jax.machine import patience
from tests.test_sweep_checks import ROOT
from tests.test_sweep_checks import write

SPACE = "{'optimizer.learning_rate': h.loguniform(0.01, 0.5), 'model.dense_dropout': " \
        "h.uniform(0.1, 0.6)}"
GOOD = f'h.pbt({SPACE}, population=4, interval_steps=50)'


@pytest.fixture(autouse=True)
def described_mnist(mnist_described):
  """Values are validated against MNIST's sizes (its dataset_info.json); no image is read."""


BAD = [
    ("h.pbt({'model.conv_features': h.uniform(4, 8)}, interval_steps=50)",
     "space path 'model.conv_features' is a program field: it changes the program"),
    ("h.pbt({'seed': h.uniform(0, 8)}, interval_steps=50)",
     "space path 'seed' only seeds a member"),
    ("h.pbt({'model.nothing': h.uniform(0, 8)}, interval_steps=50)",
     "space path 'model.nothing' is not a config field"),
    ("h.pbt({'optimizer.learning_rate': h.choice([0.1, 0.2])}, interval_steps=50)",
     "space path 'optimizer.learning_rate' needs h.uniform(low, high) or h.loguniform"),
    ("h.pbt({'optimizer.weight_decay': h.uniform(0.0, 0.01)}, interval_steps=50)",
     "space path 'optimizer.weight_decay' needs low > 0 (got 0.0)"),
    ("h.pbt({'model.dense_dropout': h.uniform(0.1, 1.0)}, interval_steps=50)",
     "h.pbt's model.dense_dropout (the high end of h.uniform(0.1, 1.0)): model.dense_dropout=1.0 "
     "must lie in [0, 1)"),
    (f'h.pbt({SPACE}, population=1, interval_steps=50)', 'population=1 must be an integer >= 2'),
    (f'h.pbt({SPACE})', 'give exactly one of interval_steps'),
    (f'h.pbt({SPACE}, interval_steps=5, interval_epochs=1)', 'give exactly one of'),
    (f'h.pbt({SPACE}, interval_steps=-3)', 'interval_steps=-3 must be an integer >= 1'),
    (f'h.pbt({SPACE}, interval_epochs=-1)', 'interval_epochs=-1 must be a number > 0'),
    (f"h.pbt({SPACE}, interval_steps=5, objective='test/error')",
     "objective='test/error' selects on the test split"),
    (f'h.pbt({SPACE}, interval_steps=5, quantile=0.7)', 'quantile=0.7 must lie in (0, 0.5]'),
    (f'h.pbt({SPACE}, interval_steps=5, factors=[0.8, -1])', 'factors=(0.8, -1) must be a list'),
    (f'h.pbt({SPACE}, interval_steps=5, resample_probability=2)',
     'resample_probability=2 must lie in [0, 1]'),
    (f'h.pbt({SPACE}, interval_steps=5, budget=3)', "h.pbt got unknown fields ['budget']"),
]


@pytest.mark.parametrize('sweep, message', BAD, ids=[m[:40] for _, m in BAD])
def test_a_bad_declaration_is_one_line_naming_the_field(tmp_path, sweep, message):
  with pytest.raises(ConfigError) as error:
    declaration.load(write(tmp_path, sweep))
  assert message in str(error.value) and '\n' not in str(error.value)


def test_a_good_declaration_checks_and_gives_its_rule(tmp_path):
  declared, base = trials_lib.read_declaration(write(tmp_path, GOOD), None)
  checked = pbt.check(declared, base, 'experiment.py')
  assert checked.direction == 'minimize'  # validation/error
  assert pbt.rule(checked) == population.Rule(
      bounds=(population.Bounds('optimizer', 'learning_rate', 0.01, 0.5, True),
              population.Bounds('model', 'dense_dropout', 0.1, 0.6, False)),
      quantile=0.25, factors=(0.8, 1.2), resample_probability=0.25, maximize=False)
  sweep = declaration.load(write(tmp_path, GOOD))
  assert sweep.kind == 'pbt' and sweep.pbt == checked


def test_a_bad_declaration_through_launch_is_one_line_and_status_2(tmp_path):
  workdir = tmp_path / 'sweep'
  proc = subprocess.run(
      [sys.executable, 'launch.py', f'--config={write(tmp_path, BAD[0][0])}', '--sweep',
       f'--workdir={workdir}'],
      cwd=ROOT, capture_output=True, text=True, timeout=patience(120), env=dict(os.environ))
  assert proc.returncode == 2, proc.stderr[-3000:]
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith('error: ') and BAD[0][1] in lines[0], lines
  assert not workdir.exists()


def test_the_initial_population_shares_one_program_with_every_path_traced(tmp_path):
  declared, base = trials_lib.read_declaration(write(tmp_path, GOOD), None)
  checked = pbt.check(declared, base, 'experiment.py')
  members = pbt.initial_configs(checked, base)
  assert [m.seed for m in members] == [base.seed + k for k in range(4)]
  rates = [m.optimizer.learning_rate for m in members]
  dropouts = [m.model.dense_dropout for m in members]
  assert all(0.01 <= r <= 0.5 for r in rates) and all(0.1 <= d <= 0.6 for d in dropouts)
  assert len(set(rates)) == len(set(dropouts)) == 4
  grouping.check_shared(members)
  traced = grouping.traced_values(members)
  assert set(traced['optimizer']) == {'learning_rate'} and set(traced['model']) == {
      'dense_dropout'}
  # The same declaration draws the same population; another seed another one.
  assert [m.to_json() for m in pbt.initial_configs(checked, base)] == [
      m.to_json() for m in members]
  other = pbt.initial_configs(dataclasses.replace(checked, seed=1), base)
  assert [m.optimizer.learning_rate for m in other] != rates
