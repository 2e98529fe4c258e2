"""A population (h.pbt) trained by the loop as one program (sweeps/population_sweep.py,
engine/population_run.py): ranked at each interval, the bottom taking a top member's state,
explored numbers in their space, one compilation of the step and of exploit-and-explore for
the whole run, its lineage in population.json and TensorBoard, and an interrupted population
resumed bit for bit (a killed process, a SIGTERM); the best member's history, written as a
config of segments, replayed to the same parameters bit for bit."""
import json
import logging
import os
import signal

import flax.serialization
import jax
import numpy as np
import pytest

from cnn_jax import interrupts
from cnn_jax import train
from cnn_jax.config import files
from cnn_jax.engine import checkpoint
from cnn_jax.engine import observers as observers_lib
from cnn_jax.engine import plan as plan_lib
from cnn_jax.engine import population_run
from cnn_jax.sweeps import population_sweep
from cnn_jax.sweeps import runner
from cnn_jax.data import datasets
from cnn_jax.errors import ConfigError
from tests.conftest import train_until_first_checkpoint
from tests.test_train import read_scalars

MEMBERS = 4
# The tiny T2 on random labels (their validation errors differ): 192 training images of 32
# is 6 steps an epoch, 12 in all; ranked every 2 steps, at steps 2, 4, ..., 10.
EXPERIMENT = '''
from tests.conftest import tiny

def get_config(arg=None):
  config = tiny()
  config.data.validation, config.data.num_validation = 'train_random', 64
  config.train.num_epochs, config.train.log_every_steps = 2, 2
  config.model.dense_dropout, config.optimizer.name = 0.3, 'momentum'
  return config

def get_sweep(h, arg=None):
  return h.pbt({'optimizer.learning_rate': h.loguniform(0.01, 0.5),
                'model.dense_dropout': h.uniform(0.1, 0.6)},
               population=4, interval_steps=2, quantile=0.25, seed=3)
'''
BOUNDS = {'optimizer.learning_rate': (0.01, 0.5), 'model.dense_dropout': (0.1, 0.6)}
INTERVALS = [2, 4, 6, 8, 10]


class _Compilations(logging.Handler):
  """Counts JAX's 'Compiling jit(<name>)' lines (jax_log_compiles) by name."""

  def __init__(self):
    super().__init__()
    self.counts = {}

  def emit(self, record):
    message = record.getMessage()
    if message.startswith('Compiling jit('):
      name = message[len('Compiling jit('):].split(')')[0]
      self.counts[name] = self.counts.get(name, 0) + 1


def run_population(tmp_path_factory, name, data_dir, experiment_text=EXPERIMENT):
  """Runs the experiment's population into a fresh directory; (its path, compilations)."""
  root = tmp_path_factory.mktemp(name)
  experiment = root / 'experiment.py'
  experiment.write_text(experiment_text)
  compilations = _Compilations()
  jax_logger = logging.getLogger('jax')
  jax_logger.addHandler(compilations)
  jax.config.update('jax_log_compiles', True)
  try:
    with pytest.MonkeyPatch.context() as patch:
      patch.setenv('TFDS_DATA_DIR', data_dir)
      datasets.load_tfds_split.cache_clear()
      runner.run(str(experiment), str(root / 'sweep'))
  finally:
    jax.config.update('jax_log_compiles', False)
    jax_logger.removeHandler(compilations)
  return root / 'sweep', compilations.counts


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory, mock_mnist_files):
  return run_population(tmp_path_factory, 'uninterrupted', mock_mnist_files[0])


def read_population(sweep_dir):
  return json.loads((sweep_dir / population_run.FILENAME).read_text())


def final_states(sweep_dir):
  """Each member's checkpointed state at the end, as saved."""
  states = []
  for k in range(MEMBERS):
    with open(checkpoint.path_in(str(sweep_dir / f'member-{k}')), 'rb') as f:
      states.append(flax.serialization.msgpack_restore(f.read())['state'])
  return states


def test_the_population_is_ranked_at_each_interval_in_one_compiled_program(uninterrupted):
  sweep_dir, compilations = uninterrupted
  recorded = read_population(sweep_dir)
  assert [i['step'] for i in recorded['intervals']] == INTERVALS
  # One program for the steps and one for exploit-and-explore, whatever the interval count.
  assert compilations.get('train_step') == 1, compilations
  assert compilations.get('exploit_and_explore_on_device') == 1, compilations
  before = recorded['start']
  moves = 0
  for interval in recorded['intervals']:
    scores, source = np.asarray(interval['scores']), interval['source']
    order = np.argsort(scores, kind='stable')  # error: lower is better
    top, bottom = set(order[:1].tolist()), set(order[-1:].tolist())
    for k in range(MEMBERS):
      if k in bottom:
        assert source[k] in top, interval
      else:
        assert source[k] == k, interval
      for path, (low, high) in BOUNDS.items():
        value = interval['values'][path][k]
        assert low <= value <= high, (path, value)
        if source[k] == k:  # a member that keeps its state keeps its numbers
          assert value == before[path][k], (path, interval)
    moves += sum(s != k for k, s in enumerate(source))
    before = interval['values']
  assert moves == len(INTERVALS)  # one member of 4 at the bottom quantile, every interval
  rows = (sweep_dir / 'sweep.md').read_text()
  assert rows.startswith('Best member: member-') and 'reported apart' in rows, rows
  # Each member's TensorBoard events: its numbers, score and whose state it took, per interval.
  for k in range(MEMBERS):
    scalars, _ = read_scalars(str(sweep_dir / f'member-{k}'))
    rates = scalars['population/optimizer.learning_rate']
    assert [step for step, _ in rates] == INTERVALS
    np.testing.assert_allclose(
        [v for _, v in rates],
        [i['values']['optimizer.learning_rate'][k] for i in recorded['intervals']], rtol=1e-6)
    assert [int(v) for _, v in scalars['population/took_state_of']] == [
        i['source'][k] for i in recorded['intervals']]


def test_the_checkpoint_holds_each_member_s_explored_numbers(uninterrupted):
  sweep_dir, _ = uninterrupted
  last = read_population(sweep_dir)['intervals'][-1]['values']
  for k, state in enumerate(final_states(sweep_dir)):
    assert float(state['traced']['optimizer']['learning_rate']) == pytest.approx(
        last['optimizer.learning_rate'][k], rel=1e-7)
    assert float(state['traced']['model']['dense_dropout']) == pytest.approx(
        last['model.dense_dropout'][k], rel=1e-7)


def assert_same_population(sweep_dir, resumed_dir):
  assert read_population(resumed_dir)['intervals'] == read_population(sweep_dir)['intervals']
  for one, other in zip(final_states(sweep_dir), final_states(resumed_dir)):
    jax.tree_util.tree_map(np.testing.assert_array_equal, one, other)


def test_a_killed_population_resumes_bit_for_bit(tmp_path_factory, mock_mnist_files,
                                                 uninterrupted):
  """Killed right after its first checkpoint (step 6, an interval and an epoch end), the
  same command finishes the population exactly as the uninterrupted one did."""
  real_save = checkpoint.save
  saved = []

  def save_then_die(*args, **kwargs):
    real_save(*args, **kwargs)
    saved.append(1)
    if len(saved) == MEMBERS:  # every member's checkpoint of that step written
      raise KeyboardInterrupt
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(checkpoint, 'save', save_then_die)
    with pytest.raises(KeyboardInterrupt):
      run_population(tmp_path_factory, 'killed', mock_mnist_files[0])
  killed_dir = tmp_path_factory.getbasetemp() / 'killed0' / 'sweep'
  assert [i['step'] for i in read_population(killed_dir)['intervals']] == [2, 4, 6]
  experiment = killed_dir.parent / 'experiment.py'
  with pytest.MonkeyPatch.context() as patch:
    patch.setenv('TFDS_DATA_DIR', mock_mnist_files[0])
    datasets.load_tfds_split.cache_clear()
    runner.run(str(experiment), str(killed_dir))
  assert_same_population(uninterrupted[0], killed_dir)


def test_a_sigterm_mid_epoch_resumes_bit_for_bit(tmp_path_factory, mock_mnist_files,
                                                 uninterrupted):
  """SIGTERM after the ranking at step 4: a checkpoint of every member at the next step
  (step 5, mid-epoch), then Interrupted, and the same command resumes it exactly."""
  real_select = population_run.PopulationRun.select

  def select_then_signal(self, group, state, step, evaluations):
    state = real_select(self, group, state, step, evaluations)
    if step == 4:
      os.kill(os.getpid(), signal.SIGTERM)
    return state
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(population_run.PopulationRun, 'select', select_then_signal)
    with pytest.raises(interrupts.Interrupted, match='SIGTERM at step 5 of 12'):
      run_population(tmp_path_factory, 'signalled', mock_mnist_files[0])
  signalled_dir = tmp_path_factory.getbasetemp() / 'signalled0' / 'sweep'
  assert [i['step'] for i in read_population(signalled_dir)['intervals']] == [2, 4]
  with pytest.MonkeyPatch.context() as patch:
    patch.setenv('TFDS_DATA_DIR', mock_mnist_files[0])
    datasets.load_tfds_split.cache_clear()
    runner.run(str(signalled_dir.parent / 'experiment.py'), str(signalled_dir))
  assert_same_population(uninterrupted[0], signalled_dir)


def test_the_best_member_s_history_replays_to_its_parameters_bit_for_bit(uninterrupted,
                                                                         tmp_path, mock_mnist):
  """best_member.py: the member's weights traced back through whose state it took, each
  stretch a segment with the traced values and seed of the member that trained it. Trained as
  one of the population's number of copies (segments.group_size), it runs the population's
  program: the member's parameters and optimizer state bit for bit, one run's directory,
  also when killed and resumed. Alone (group_size 1, a single program), to float tolerance."""
  sweep_dir, _ = uninterrupted
  config = files.load_config(str(sweep_dir / population_sweep.REPLAY))
  recorded = read_population(sweep_dir)
  best = (sweep_dir / 'sweep.md').read_text().split('Best member: ')[1].split(',')[0]
  stretches = population_sweep.history(recorded, int(best.split('-')[1]))
  # A history worth replaying: the weights changed hands, so the data order and key did too.
  assert len(config.segments.starts) == len(stretches) >= 2
  assert len(set(config.segments.seeds)) >= 2, config.segments
  assert config.seed == stretches[0][1]  # (members' seeds are the base's 0 + k)
  assert config.segments.group_size == MEMBERS
  member = final_states(sweep_dir)[int(best.split('-')[1])]
  # Killed after its first checkpoint and resumed: the copies restore from the run's.
  train_until_first_checkpoint(config, str(tmp_path / 'replay'))
  record = train.train_and_evaluate(config, str(tmp_path / 'replay'))
  assert record['executor']['members'] == MEMBERS
  assert sorted(p.name for p in tmp_path.iterdir()) == ['replay']
  replayed = flax.serialization.msgpack_restore(
      (tmp_path / 'replay' / checkpoint.FILENAME).read_bytes())['state']
  for part in ('params', 'opt_state', 'traced'):
    jax.tree_util.tree_map(np.testing.assert_array_equal, replayed[part], member[part])
  config.segments.group_size = 1
  train.train_and_evaluate(config, str(tmp_path / 'alone'))
  alone = flax.serialization.msgpack_restore(
      (tmp_path / 'alone' / checkpoint.FILENAME).read_bytes())['state']
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
                         alone['params'], member['params'])


class _StopAtFirstEpoch(observers_lib.Observer):
  def should_stop(self, event):
    return 'stopped at its first epoch'


def test_copies_of_a_run_leave_with_it(tiny_config, tmp_path, mock_mnist, caplog):
  """A pruner tells the run alone; its copies (segments.group_size) go with it, and nothing
  of them is shown or written."""
  tiny_config.segments.group_size = 3
  caplog.set_level(logging.INFO)
  record, = train.train_group([tiny_config], [str(tmp_path / 'run')], [[_StopAtFirstEpoch()]])
  assert record['status'] == 'pruned' and record['steps'] == 8
  assert 'Going on with' not in caplog.text  # (the copies were not re-packed to train on)
  assert caplog.text.count('Stopped at step 8') == 1
  assert sorted(p.name for p in tmp_path.iterdir()) == ['run']


def test_copies_join_no_group_of_other_runs(tiny_config):
  tiny_config.segments.group_size = 2
  with pytest.raises(ConfigError, match=r'^segments.group_size=2 trains one run as a group'):
    plan_lib.make([tiny_config, tiny_config])


def test_a_member_that_diverges_stays_and_takes_a_better_member_s_state(tmp_path_factory,
                                                                       mock_mnist_files):
  """Learning rates up to 1,000: the members drawn high diverge; they stay in the program
  (its size is the population's), score nothing (null) at the next interval, rank last and
  take a better member's state there, and train on to the end as it does."""
  wild = EXPERIMENT.replace("h.loguniform(0.01, 0.5)", "h.loguniform(0.01, 1000.0)")
  sweep_dir, compilations = run_population(tmp_path_factory, 'diverging', mock_mnist_files[0],
                                           wild)
  recorded = read_population(sweep_dir)
  unscored = [(i['step'], k) for i in recorded['intervals'] for k, s in enumerate(i['scores'])
              if s is None]
  assert unscored, recorded['intervals']  # some member diverged
  for step, k in unscored:
    interval = next(i for i in recorded['intervals'] if i['step'] == step)
    scored = [s for s in interval['scores'] if s is not None]
    if interval['source'][k] != k:  # ranked last: it took a member's state from the top
      assert interval['scores'][interval['source'][k]] == min(scored)
  assert compilations.get('train_step') == 1  # nobody left the program: no re-pack
  statuses = [json.loads((sweep_dir / f'member-{k}' / 'results.json').read_text())['status']
              for k in range(MEMBERS)]
  assert statuses.count('ok') >= 3, statuses
