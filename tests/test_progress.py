"""The console between epoch ends: the progress line at log steps, its ETA, and the lines
reaching the console when the library is called from plain Python (console.py)."""
import logging as python_logging
import re

from absl import flags
from absl import logging
import pytest

from cnn_jax import console
from cnn_jax import train
from cnn_jax.engine import clock
from cnn_jax.engine import loop
from cnn_jax.engine import plan as plan_lib
from cnn_jax.engine import metrics
from tests.test_groups import member_configs

PROGRESS = re.compile(r'^(?P<who>.*?)step (?P<step>\d+)/(?P<total>\d+) \(epoch (?P<epoch>[\d.]+)/'
                      r'(?P<epochs>[\d.]+)\): train loss [\d.]+ error [\d.]+% \| \d+ examples/s'
                      r' \| ETA (?P<eta>unknown|\d+s|\d+m \d\ds|\d+h \d\dm)$')


def progress_lines(caplog):
  return [match for r in caplog.records if r.name == 'absl'
          for match in [PROGRESS.match(r.getMessage())] if match]


def test_seconds_left_uses_the_timed_steps_only():
  assert clock.seconds_left(100, 0, 0.0) is None  # only the first call so far: unknown
  assert clock.seconds_left(100, 40, 2.0) == pytest.approx(5.0)
  assert clock.seconds_left(0, 40, 2.0) == 0.0


def test_progress_line_and_durations():
  values = {'loss': 0.1, 'error': 0.0281, 'accuracy': 0.9719, 'learning_rate': 0.2,
            'examples_per_second': 6543.4}
  line = metrics.progress_line(250, values, total_steps=1000, steps_per_epoch=125.0,
                               eta_seconds=None, who='003-seed=3: ')
  assert line == ('003-seed=3: step 250/1000 (epoch 2.00/8.00): train loss 0.1000 error 2.81% '
                  '| 6543 examples/s | ETA unknown')
  assert metrics.progress_line(250, values, 1000, 125.0, 725.2).endswith('| ETA 12m 05s')
  assert [metrics.duration(s) for s in (0, 42.4, 59.6, 725, 3599.7, 7380)] == [
      '0s', '42s', '1m 00s', '12m 05s', '1h 00m', '2h 03m']


def test_a_run_prints_progress_at_log_steps_but_not_at_epoch_ends(tmp_path, tiny_config,
                                                                  mock_mnist, caplog):
  """12 steps of 8 per epoch, logging every step: progress lines at steps 1-7 and 9-11, the
  epoch lines at 8 and 12. No level is set here: train_and_evaluate itself makes its INFO
  lines visible, absl's flags being unparsed under pytest."""
  tiny_config.train.log_every_steps = 1
  before = logging.get_verbosity(), logging.get_absl_logger().level
  train.train_and_evaluate(tiny_config, str(tmp_path))
  assert (logging.get_verbosity(), logging.get_absl_logger().level) == before

  lines = progress_lines(caplog)
  assert [int(m['step']) for m in lines] == [1, 2, 3, 4, 5, 6, 7, 9, 10, 11]
  assert {(m['total'], m['epochs'], m['who']) for m in lines} == {('12', '1.50', '')}
  assert [m['epoch'] for m in lines] == [f'{step / 8:.2f}' for step in (*range(1, 8), 9, 10, 11)]
  # The first window is the first call alone (compilation): no speed to estimate from yet.
  assert [m['eta'] for m in lines][0] == 'unknown'
  assert 'unknown' not in [m['eta'] for m in lines][1:]
  epochs = [r.getMessage() for r in caplog.records if r.getMessage().startswith('epoch ')]
  assert [re.search(r'\(step (\d+)\)', e)[1] for e in epochs] == ['8', '12']


def test_group_members_print_their_own_progress(tmp_path, tiny_config, mock_mnist, caplog):
  """A vmapped group's lines name the member; a diverged member prints no more of them."""
  tiny_config.train.log_every_steps = 2
  tiny_config.model.conv_impl = tiny_config.model.pool_impl = 'xla'  # no layer timing here
  configs = member_configs(tiny_config, optimizer__learning_rate=[0.1, 1e30])
  with caplog.at_level(python_logging.INFO, logger='absl'):
    out = loop.train(plan_lib.make(configs), [str(tmp_path / 'good'), str(tmp_path / 'bad')])
  assert [r['status'] for r in out] == ['ok', 'diverged']
  lines = progress_lines(caplog)
  assert [(m['who'], int(m['step'])) for m in lines] == [
      ('good: ', 2), ('good: ', 4), ('good: ', 6), ('good: ', 10)]


@pytest.fixture
def fresh_absl():
  """absl as a fresh interpreter has it (flags unparsed, verbosity WARNING, its logger's
  level unset under a WARNING root); everything put back afterwards."""
  absl_logger, root = logging.get_absl_logger(), python_logging.getLogger()
  verbosity = flags.FLAGS['verbosity']
  before = verbosity.value, absl_logger.level, root.level
  verbosity.value = logging.WARNING
  absl_logger.setLevel(python_logging.NOTSET)
  root.setLevel(python_logging.WARNING)
  try:
    yield absl_logger
  finally:
    verbosity.value = before[0]
    absl_logger.setLevel(before[1])
    root.setLevel(before[2])


def test_progress_visible_only_where_absl_is_not_set_up(fresh_absl, monkeypatch):
  given = flags.FLAGS['verbosity'].using_default_value
  assert not fresh_absl.isEnabledFor(python_logging.INFO)
  with console.progress_visible():
    assert fresh_absl.isEnabledFor(python_logging.INFO)
    assert logging.get_verbosity() == logging.INFO  # what sweep workers start with
  assert not fresh_absl.isEnabledFor(python_logging.INFO)
  assert fresh_absl.level == python_logging.NOTSET
  assert logging.get_verbosity() == logging.WARNING
  assert flags.FLAGS['verbosity'].using_default_value == given  # app.run would still raise it

  # Under app.run the flags are parsed and the user's --verbosity holds.
  monkeypatch.setattr(type(flags.FLAGS), 'is_parsed', lambda self: True)
  with console.progress_visible():
    assert not fresh_absl.isEnabledFor(python_logging.INFO)
