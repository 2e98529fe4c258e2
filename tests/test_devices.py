"""The loop on a mesh of 4 devices: XLA's CPU backend splits into 4 host devices under
XLA_FLAGS=--xla_force_host_platform_device_count=4, which must be set before JAX starts, so
the 4-device tests run in a pytest subprocess (test_on_four_devices) and are skipped in this
process."""
import copy
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from cnn_jax import cpu_threads
from cnn_jax import train
from cnn_jax.config import files
from cnn_jax.engine import checkpoint
from cnn_jax.engine import loop
from cnn_jax.engine import plan as plan_lib
from cnn_jax.errors import ConfigError
from cnn_jax.machine import patience
from tests.conftest import real_data_or_skip
from tests.test_batch_norm import read_state
from tests.test_train import read_params

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FOUR = os.environ.get('CNN_JAX_FOUR_DEVICES') == '1'
on_four_devices = pytest.mark.skipif(not FOUR, reason='runs in test_on_four_devices')


def test_on_four_devices():
  if FOUR:
    pytest.skip('this is the subprocess')
  env = dict(os.environ, CNN_JAX_FOUR_DEVICES='1',
             XLA_FLAGS='--xla_force_host_platform_device_count=4')
  env.pop('PJRT_NPROC', None)
  cpu_threads.size_pools_before_jax(env)  # as launch.py does: see test_t2_on_four_devices
  proc = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
                         os.path.abspath(__file__), '-k', 'not test_on_four_devices'],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=patience(900))
  assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-3000:]
  assert '6 passed' in proc.stdout, proc.stdout[-3000:]


def pin_layers(config):
  """XLA's own layers, whatever the layer cache holds: the runs compared here compute
  different per-device batches (8 on four devices, 32 on one) or member counts, each of which
  layer_impls/ measures and chooses for apart, and two choices agree only to float
  tolerance, which a near-tie of max pooling can turn into a different test error (88.28%
  against 88.67% in one run of the resume test)."""
  config.model.conv_impl = config.model.pool_impl = 'xla'
  return config


def assert_close(a, b):
  jax.tree_util.tree_map(lambda x, y: np.testing.assert_allclose(x, y, rtol=2e-4, atol=2e-5),
                         a, b)


@on_four_devices
def test_a_run_on_four_devices_matches_one_device(tmp_path, tiny_config, mock_mnist):
  assert jax.local_device_count() == 4
  # Dropout too: its masks must not depend on how the batch is split. 6 steps: later, a max
  # pooling tie broken the other way by a 1e-8 rounding difference (seen at step 8 on mock
  # data) sends the two runs apart, as any change of summation order can.
  tiny_config.model.hidden_dims, tiny_config.model.dense_dropout = (16,), 0.3
  tiny_config.train.num_train_steps = 6
  pin_layers(tiny_config)
  tiny_config.train.num_devices = 4  # data parallel: batch 32 as 4 x 8
  four = train.train_and_evaluate(tiny_config, str(tmp_path / 'four'))
  tiny_config.train.num_devices = 1
  one = train.train_and_evaluate(tiny_config, str(tmp_path / 'one'))
  assert four['executor']['devices'] == 4 and one['executor']['devices'] == 1
  assert four['steps'] == one['steps'] == 6
  assert_close(read_params(str(tmp_path / 'four')), read_params(str(tmp_path / 'one')))
  assert four['final']['test']['loss'] == pytest.approx(one['final']['test']['loss'], rel=1e-4)
  assert four['final']['test']['confusion'] == one['final']['test']['confusion']


@on_four_devices
def test_t2_on_four_devices_trains_as_on_one(tmp_path, monkeypatch):
  """The real T2 on real MNIST, its gradients all-reduced over 4 CPU devices on the 2 cores:
  300 steps, which aborted in XLA's all-reduce rendezvous before cpu_threads.py sized the
  thread pools (the tiny model of the tests above had never hit it), must finish and learn;
  and its first 20 steps must be one device's, as two runs of different summation order can
  be. Measured on 2026-12-05, the parameters of 4 and 1 devices were 4.5e-8 apart (absolute;
  9e-8 relative, as a norm) after 20 steps with jax 0.10.2 and 6e-8 (1e-7) with 0.11.2;
  5.6e-7 and 2.7e-6 after 30; then a max-pooling tie broken the other way sent them 2e-3
  apart by step 35 on both, 2-3% (as a norm) by step 100; after 300 steps their test losses
  were 0.1152 (4 devices) and 0.1195 (1) with 0.11.2, 3.6% apart. So the runs are compared
  at 20 steps, and the 300-step run only finishes and learns."""
  assert int(os.environ['PJRT_NPROC']) >= 8
  monkeypatch.setenv('TFDS_DATA_DIR', real_data_or_skip())
  config = pin_layers(files.load_config(os.path.join(ROOT, 'experiments', 'pool.py')))
  config.train.pictures = 'none'
  config.train.num_train_steps, config.train.num_devices = 300, 4
  long = train.train_and_evaluate(config, str(tmp_path / 'long'))
  assert long['status'] == 'ok' and long['executor']['devices'] == 4 and long['steps'] == 300
  assert long['final']['test']['error'] < 0.06  # it learned (3.70%, 3.58% with 0.11.2)
  config.train.num_train_steps = 20
  results = {}
  for count in (4, 1):
    config.train.num_devices = count
    results[count] = train.train_and_evaluate(config, str(tmp_path / str(count)))
    assert results[count]['executor']['devices'] == count
  # (With 4 devices reading one wrong example of each 64, a mutation tried and reverted, the
  # parameters were 0.036 apart at step 20.)
  assert_close(read_params(str(tmp_path / '4')), read_params(str(tmp_path / '1')))
  assert results[4]['final']['test']['loss'] == pytest.approx(
      results[1]['final']['test']['loss'], rel=1e-4)


@pytest.mark.skipif(FOUR, reason='runs in the main process')
def test_too_small_thread_pools_are_refused_before_training(monkeypatch):
  monkeypatch.setenv('PJRT_NPROC', '4')
  with pytest.raises(ConfigError, match='PJRT_NPROC=8'):
    cpu_threads.check(4, 'cpu')
  cpu_threads.check(4, 'gpu')  # GPUs have no such pools
  cpu_threads.check(1, 'cpu')
  monkeypatch.setenv('PJRT_NPROC', '8')
  cpu_threads.check(4, 'cpu')


@pytest.mark.skipif(FOUR, reason='runs in the main process')
def test_pools_are_sized_from_the_forced_device_count():
  env = {'XLA_FLAGS': '--xla_force_host_platform_device_count=4'}
  cpu_threads.size_pools_before_jax(env)
  assert env['PJRT_NPROC'] == '8' or cpu_threads.cores() >= 8
  env = {'XLA_FLAGS': '--xla_force_host_platform_device_count=4', 'PJRT_NPROC': '16'}
  cpu_threads.size_pools_before_jax(env)
  assert env['PJRT_NPROC'] == '16'  # the user's choice stays
  env = {}
  cpu_threads.size_pools_before_jax(env)
  assert 'PJRT_NPROC' not in env  # one device: XLA's default


@on_four_devices
def test_batch_statistics_on_four_devices_are_those_of_the_whole_batch(tmp_path, tiny_config,
                                                                      mock_mnist):
  # Each device holds 8 of the batch's 32 examples; the statistics must be over all 32, or
  # the parameters and running averages part from the 1-device run's at once.
  tiny_config.model.batch_norm, tiny_config.model.hidden_dims = 'before', (16,)
  tiny_config.model.conv_impl = tiny_config.model.pool_impl = 'xla'
  tiny_config.train.num_train_steps = 6
  results = {}
  for count in (4, 1):
    tiny_config.train.num_devices = count
    results[count] = train.train_and_evaluate(tiny_config, str(tmp_path / str(count)))
  states = [read_state(str(tmp_path / str(count))) for count in (4, 1)]
  assert_close(states[0]['model_state'], states[1]['model_state'])
  assert_close(states[0]['params'], states[1]['params'])
  assert results[4]['final']['test']['loss'] == pytest.approx(
      results[1]['final']['test']['loss'], rel=1e-4)


@on_four_devices
def test_a_four_member_group_on_four_devices_matches_its_members_alone(tmp_path, tiny_config,
                                                                      mock_mnist):
  pin_layers(tiny_config)
  configs = []
  for seed, rate in zip(range(4), (0.1, 0.05, 0.1, 0.2)):
    config = copy.deepcopy(tiny_config)
    config.seed, config.optimizer.learning_rate = seed, rate
    configs.append(config)
  grouped = loop.train(plan_lib.make(configs), [str(tmp_path / f'g{k}') for k in range(4)])
  assert {g['executor']['devices'] for g in grouped} == {4}  # one member per device
  for k, config in enumerate(configs):
    config.train.num_devices = 1
    alone = train.train_and_evaluate(config, str(tmp_path / f'alone{k}'))
    assert_close(read_params(str(tmp_path / f'g{k}')), read_params(str(tmp_path / f'alone{k}')))
    assert grouped[k]['final']['test']['error'] == pytest.approx(
        alone['final']['test']['error'], abs=1 / 256 + 1e-9)


@on_four_devices
def test_a_checkpoint_written_on_four_devices_resumes_on_one(tmp_path, tiny_config,
                                                             mock_mnist, monkeypatch):
  tiny_config.train.num_epochs = 3.0
  tiny_config.train.num_devices = 4
  pin_layers(tiny_config)  # the resumed run computes batches of 32, not 4 x 8
  whole = train.train_and_evaluate(tiny_config, str(tmp_path / 'whole'))
  real_save = checkpoint.save
  def save_then_die(*args, **kwargs):
    real_save(*args, **kwargs)
    raise KeyboardInterrupt  # killed right after its first checkpoint
  monkeypatch.setattr(checkpoint, 'save', save_then_die)
  with pytest.raises(KeyboardInterrupt):
    train.train_and_evaluate(tiny_config, str(tmp_path / 'split'))
  monkeypatch.setattr(checkpoint, 'save', real_save)
  assert checkpoint.saved_step(str(tmp_path / 'split')) == 8
  tiny_config.train.num_devices = 1
  resumed = train.train_and_evaluate(tiny_config, str(tmp_path / 'split'))
  assert resumed['executor']['devices'] == 1 and resumed['steps'] == whole['steps'] == 24
  assert [h['step'] for h in resumed['history']] == [8, 16, 24]
  assert_close(read_params(str(tmp_path / 'split')), read_params(str(tmp_path / 'whole')))


@on_four_devices
def test_a_population_on_four_devices_ranks_and_trains_as_on_one(tmp_path_factory,
                                                                 mock_mnist_files):
  """A population of 4 (tests/test_population_run.py's) with a member on each device: the
  same rankings, numbers and parameters as on one device, exploit-and-explore compiled
  once for the mesh."""
  from tests import test_population_run as population_test  # pylint: disable=g-import-not-at-top
  pinned = population_test.EXPERIMENT.replace(
      "  return config\n", "  config.model.conv_impl = config.model.pool_impl = 'xla'\n"
      "  config.train.num_devices = DEVICES\n  return config\n")
  runs = {}
  for devices in (4, 1):
    sweep_dir, compilations = population_test.run_population(
        tmp_path_factory, f'devices{devices}', mock_mnist_files[0],
        pinned.replace('DEVICES', str(devices)))
    assert compilations.get('exploit_and_explore_on_device') == 1, compilations
    runs[devices] = sweep_dir
  four, one = (population_test.read_population(runs[d]) for d in (4, 1))
  assert [i['source'] for i in four['intervals']] == [i['source'] for i in one['intervals']]
  for a, b in zip(four['intervals'], one['intervals']):
    np.testing.assert_allclose(a['scores'], b['scores'], atol=1 / 64 + 1e-9)
    for path in a['values']:
      np.testing.assert_allclose(a['values'][path], b['values'][path], rtol=1e-6)
  for a, b in zip(*(population_test.final_states(runs[d]) for d in (4, 1))):
    assert_close(a['params'], b['params'])
  assert json.loads((runs[4] / 'member-0' / 'results.json').read_text())[
      'executor']['devices'] == 4
