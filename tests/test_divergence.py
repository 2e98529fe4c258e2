"""A run is diverged when its loss stops being finite or runs away (metrics.divergence): a
log window's mean train loss above 100 x max(ln C, the initialized model's loss)."""
import math
import os
import re

import pytest

from cnn_jax import train
from cnn_jax.engine import loop
from cnn_jax.engine import plan as plan_lib
from cnn_jax.engine import metrics
from cnn_jax.engine import results
from tests.test_groups import member_configs

LN10 = math.log(10)
RUNAWAY = (r'train/loss averaged over steps 1-4 is \S+, above \d+\.?\d* = 100 x max\(ln C, the '
           r"initialized model's loss\): a runaway loss")


def test_the_bound_starts_from_chance_or_from_where_the_run_starts():
  assert metrics.runaway_bound(10, 2.32) == pytest.approx(232.0)
  assert metrics.runaway_bound(10, 1.0) == pytest.approx(100 * LN10)  # chance, at least
  assert metrics.runaway_bound(10, 731.0) == pytest.approx(73_100)  # a large initialization
  assert metrics.runaway_bound(1, 0.0) == pytest.approx(100 * math.log(2))  # (never 0)
  assert metrics.runaway_bound(10, float('nan')) == pytest.approx(100 * LN10)


@pytest.mark.parametrize('loss, why', [
    (2.3, None), (136.9, None),  # T2 at SGD 20 then sat at chance: not a runaway
    (230.0, None),
    (231.0, r'is 231, above 230.3 = 100 x max\(ln C, .*\): a runaway loss'),
    (7e14, r'is 7e\+14, above 230.3'),  # learning rate 1e6
    (float('nan'), r'is nan$'), (float('inf'), r'is inf$'),
])
def test_a_train_window_diverges_on_nan_or_a_runaway_loss(loss, why):
  found = metrics.divergence({metrics.LOSS: loss}, 100 * LN10)
  assert found is None if why is None else re.match(why, found)
  if math.isfinite(loss):  # an evaluation is checked for NaN only
    assert metrics.divergence({metrics.LOSS: loss}) is None


def test_a_runaway_run_is_recorded_diverged_and_a_normal_one_is_not(tmp_path, tiny_config,
                                                                    mock_mnist):
  assert train.train_and_evaluate(tiny_config, str(tmp_path / 'ok'))['status'] == 'ok'
  tiny_config.optimizer.learning_rate = 1e6  # finite: 2e17 over the first 4 steps
  record = train.train_and_evaluate(tiny_config, str(tmp_path / 'runaway'))
  assert record['status'] == 'diverged' and record['steps'] == 4  # the first log step
  assert re.fullmatch(RUNAWAY, record['message'])
  assert results.read(str(tmp_path / 'runaway')) == record  # results.json, as for NaN


def test_each_member_of_a_group_has_its_own_bound(tmp_path, tiny_config, mock_mnist):
  """A large initialization starts far above chance (here a loss of about 11,000) and
  learns down from it: not a runaway. A group member's bound is its own start's."""
  tiny_config.model.kernel_init = 'normal'
  tiny_config.optimizer.name = 'adam'
  configs = member_configs(tiny_config, model__kernel_init_std=[0.1, 3.0, 0.1],
                           optimizer__learning_rate=[1e-3, 1e-3, 1e6])
  out = loop.train(plan_lib.make(configs), [str(tmp_path / f'm{k}') for k in range(3)])
  assert [r['status'] for r in out] == ['ok', 'ok', 'diverged']
  assert out[1]['history'][0]['train']['loss'] > 1_000 * LN10  # far above chance, yet ok
  assert re.fullmatch(RUNAWAY, out[2]['message'])
  assert os.path.exists(tmp_path / 'm2' / 'results.json')
