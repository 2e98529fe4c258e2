"""Batch normalization and the state pytree it lives in: batch statistics in training, running
averages in evaluation and prediction, per member in a vmapped group, bit-identical resume
(old checkpoints without model state included), and the summary's non-trainable count.
(On 4 devices against 1: tests/test_devices.py.)"""
import flax.serialization
import jax
import numpy as np
import pytest

from cnn_jax import train
from cnn_jax import trained
from cnn_jax.data import datasets
from cnn_jax.engine import checkpoint
from cnn_jax.engine import loop
from cnn_jax.engine import plan as plan_lib
from cnn_jax.engine import program
from cnn_jax.model import cnn
from cnn_jax.model import shapes
from cnn_jax.model import summary
from tests.conftest import train_until_first_checkpoint
from tests.test_groups import member_configs


@pytest.fixture
def bn_config(tiny_config):
  tiny_config.model.batch_norm = 'after'
  tiny_config.model.hidden_dims = (16,)
  # Every run of these tests computes the same layers, whatever this machine's cache holds.
  tiny_config.model.conv_impl = tiny_config.model.pool_impl = 'xla'
  return tiny_config


def read_state(workdir):
  with open(checkpoint.path_in(workdir), 'rb') as f:
    return flax.serialization.msgpack_restore(f.read())['state']


def assert_close(a, b):
  jax.tree_util.tree_map(lambda x, y: np.testing.assert_allclose(x, y, rtol=2e-4, atol=2e-5),
                         a, b)


def test_a_group_trains_each_member_with_its_own_statistics(tmp_path, bn_config, mock_mnist):
  # One step through the loop: each member's checkpoint holds its own statistics and
  # parameters, as its run alone. (Longer runs are compared step by step below: this tiny
  # model's training turns a rounding difference into a different run.)
  bn_config.train.num_train_steps = 1
  configs = member_configs(bn_config, seed=[0, 1], model__batch_norm_momentum=[0.9, 0.5])
  grouped = loop.train(plan_lib.make(configs), [str(tmp_path / f'g{k}') for k in range(2)])
  states = []
  for k, config in enumerate(configs):
    alone = train.train_and_evaluate(config, str(tmp_path / f'alone{k}'))
    group_state, alone_state = read_state(str(tmp_path / f'g{k}')), read_state(
        str(tmp_path / f'alone{k}'))
    assert_close(group_state['model_state'], alone_state['model_state'])
    assert_close(group_state['params'], alone_state['params'])
    assert grouped[k]['final']['test']['loss'] == pytest.approx(
        alone['final']['test']['loss'], rel=1e-5)
    states.append(group_state)
  means = [s['model_state']['batch_stats']['conv0_bn']['mean'] for s in states]
  assert not np.allclose(means[0], means[1])  # two members, two sets of statistics


def test_every_step_of_a_group_is_each_member_s_step_alone(bn_config):
  """Along a 12-step group run, each step of each member, taken from the group's state, gives
  what that member's own program gives from the same state.

  The whole runs are not compared: on one of this project's CPUs the group's member ended 15%
  away from its run alone after 12 steps, while every step agreed to 3e-7 (relative); a run
  alone whose parameters start one float32 ulp away ends further still (ReLU and max-pool
  kinks, and batch norm of nearly constant channels, turn rounding into a different run)."""
  configs = member_configs(bn_config, seed=[0, 1], model__batch_norm_momentum=[0.9, 0.5])
  rng = np.random.default_rng(0)
  images = jax.numpy.asarray(rng.integers(0, 256, (256, 28, 28, 1), dtype=np.uint8))
  labels = jax.numpy.asarray(rng.integers(0, 10, 256).astype(np.int32))
  group = program.Program(plan_lib.arrange(configs, (28, 28, 1), 256))
  alone = [program.Program(plan_lib.arrange([config], (28, 28, 1), 256)) for config in configs]
  state = group.init()
  for step in range(12):
    indices = np.stack([rng.permutation(256)[:32] for _ in configs])
    before = jax.device_get(state)
    state = group.train(state, step, images, labels, indices)
    after = jax.device_get(state)
    for k, member in enumerate(alone):
      one = member.train(member.assemble([program.Program.member_state(before, k)]), step,
                         images, labels, indices[k:k + 1])
      # (The traced values are the group's: its momenta, constants of each run alone.)
      untraced = lambda s: {key: v for key, v in s.items() if key != 'traced'}
      jax.tree_util.tree_map(
          lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6),
          untraced(program.Program.member_state(after, k)),
          untraced(program.Program.member_state(jax.device_get(one), 0)))
  means = [program.Program.member_state(after, k)['model_state']['batch_stats']['conv0_bn']
           ['mean'] for k in range(2)]
  assert not np.allclose(means[0], means[1])


def test_a_resumed_run_is_bit_identical_and_old_checkpoints_resume(tmp_path, bn_config,
                                                                   mock_mnist):
  bn_config.train.num_epochs = 3.0
  bn_config.model.dense_dropout = 0.3  # the key in the state must survive too
  whole = train.train_and_evaluate(bn_config, str(tmp_path / 'whole'))
  for name in ('split', 'no_key'):
    train_until_first_checkpoint(bn_config, str(tmp_path / name))
  # A checkpoint as written before the state held the key: the seed derives the same one.
  path = checkpoint.path_in(str(tmp_path / 'no_key'))
  with open(path, 'rb') as f:
    payload = flax.serialization.msgpack_restore(f.read())
  del payload['state']['key']
  with open(path, 'wb') as f:
    f.write(flax.serialization.msgpack_serialize(payload))

  for name in ('split', 'no_key'):
    resumed = train.train_and_evaluate(bn_config, str(tmp_path / name))
    assert resumed['steps'] == whole['steps'] == 24 and resumed['final'] == whole['final']
    jax.tree_util.tree_map(np.testing.assert_array_equal, read_state(str(tmp_path / 'whole')),
                           read_state(str(tmp_path / name)))


def test_evaluation_and_prediction_use_the_running_averages(tmp_path, bn_config, mock_mnist):
  result = train.train_and_evaluate(bn_config, str(tmp_path / 'run'))
  run = trained.load(str(tmp_path / 'run'))
  stats = run.model_state['batch_stats']
  assert set(stats) == {'conv0_bn', 'conv1_bn', 'dense0_bn'}
  assert not np.allclose(stats['conv0_bn']['var'], 1.0)  # they moved from their start
  test = datasets.load_splits(bn_config.data).test
  assert run.evaluate(test)['confusion'] == result['final']['test']['confusion']
  # With running averages an image's output does not depend on the rest of its batch.
  np.testing.assert_allclose(run.logits(test.images[:1])[0], run.logits(test.images[:50])[0],
                             rtol=1e-5, atol=1e-5)
  # And they are what it uses: the same parameters with fresh statistics predict otherwise.
  fresh = jax.tree_util.tree_map(lambda s: np.ones_like(s) if s.ndim else s, stats)
  other = trained.TrainedRun.from_params(run.config, run.params, run.image_shape,
                                         model_state={'batch_stats': fresh})
  assert not np.allclose(other.logits(test.images[:20]), run.logits(test.images[:20]),
                         atol=1e-3)


@pytest.mark.parametrize('placement', ['before', 'after'])
def test_the_summary_counts_the_running_averages_as_non_trainable(bn_config, placement):
  bn_config.model.batch_norm = placement
  model = cnn.build_model(bn_config.model)
  variables = model.init(jax.random.key(0), np.zeros((1, 28, 28, 1), np.float32), train=False)
  rows = summary.model_summary(model, variables['params'], (28, 28, 1),
                               {'batch_stats': variables['batch_stats']})
  assert [r.name for r in rows][:3] == ['conv0', 'conv0_bn', 'pool0']
  bn_rows = [r for r in rows if r.name.endswith('_bn')]
  assert [(r.params, r.trainable_params) for r in bn_rows] == [(16, 8), (32, 16), (64, 32)]
  trainable, frozen = shapes.param_counts(bn_config.model)
  assert trainable == cnn.count_params(variables['params'])
  assert frozen == cnn.count_params(variables['batch_stats']) == 56
  lines = {line.rsplit(' ', 1)[0].strip(): line.rsplit(' ', 1)[1]
           for line in summary.format_summary(rows).splitlines()[-3:]}
  assert lines == {'total params': f'{trainable + frozen:,}',
                   'trainable params': f'{trainable:,}', 'non-trainable params': '56'}
