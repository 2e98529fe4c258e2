"""The train and eval steps of one member, and the whole loop (train_and_evaluate) on mock
data."""
import functools
import json
import os

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.util import tensor_util

from cnn_jax import errors
from cnn_jax import train
from cnn_jax.config import validation
from cnn_jax.engine import checkpoint
from cnn_jax.engine import metrics as metrics_lib
from cnn_jax.engine import results
from cnn_jax.engine import step
from experiments import default


def member_functions(config):
  validation.validate(config)
  return step.MemberFunctions(config, total_steps=10)


def zero_train_sums():
  return jax.tree_util.tree_map(lambda a: a[0], metrics_lib.zero_sums(metrics_lib.TRAIN, 10, 1))


def member_state(functions, config):
  """One member's whole state, as the program builds it for a run without traced values."""
  return {**functions.init(config, (28, 28, 1)), 'traced': step.NOTHING_TRACED,
          'sums': zero_train_sums()}


def test_train_steps_lower_the_loss_on_a_fixed_batch(mnist_described):
  config = default.get_config()
  functions = member_functions(config)
  state = member_state(functions, config)
  rng = np.random.default_rng(0)
  images = jnp.asarray(rng.integers(0, 256, (32, 28, 28, 1)), jnp.uint8)
  labels = jnp.asarray(rng.integers(0, 10, 32), jnp.int32)
  train_step = jax.jit(functools.partial(functions.train_step, images=images, labels=labels,
                                         indices=jnp.arange(32)))
  losses = []
  for i in range(5):
    state = train_step(state, step=i)
    sums, state['sums'] = state['sums'], zero_train_sums()
    assert float(sums['count']) == 32
    losses.append(float(sums['loss']) / 32)
    assert float(sums['error']) + float(sums['accuracy']) == pytest.approx(32)
  assert all(np.isfinite(losses))
  assert losses[-1] < losses[0] - 0.1


def test_eval_step_ignores_padding(mnist_described):
  config = default.get_config()
  functions = member_functions(config)
  state = member_state(functions, config)
  images = jnp.asarray(np.random.default_rng(0).integers(0, 256, (8, 28, 28, 1)), jnp.uint8)
  labels = jnp.arange(8) % 10
  evaluate = lambda *args: functions.eval_step(state, *args)[0]  # (the sums)
  full = evaluate(images, labels, jnp.ones(8))
  half = evaluate(images, labels, jnp.asarray([1.] * 4 + [0.] * 4))
  alone = evaluate(images[:4], labels[:4], jnp.ones(4))
  probabilities = functions.eval_step(state, images, labels, jnp.ones(8))[1]
  np.testing.assert_allclose(probabilities.sum(axis=-1), np.ones(8), rtol=1e-5)
  assert float(full['count']) == 8 and float(half['count']) == 4
  np.testing.assert_allclose(float(half['loss']), float(alone['loss']), rtol=1e-5)
  np.testing.assert_array_equal(half['confusion'], alone['confusion'])
  assert float(jnp.sum(half['confusion'])) == 4
  assert float(jnp.trace(half['confusion'])) == pytest.approx(float(half['accuracy']))


def read_params(workdir):
  with open(checkpoint.path_in(workdir), 'rb') as f:
    return flax.serialization.msgpack_restore(f.read())['state']['params']


def read_scalars(workdir):
  """{tag: [(step, value), ...]} of the scalars in a run's event files, and the accumulator."""
  accumulator = event_accumulator.EventAccumulator(workdir, size_guidance={'tensors': 0})
  accumulator.Reload()
  scalar_tags = accumulator.PluginTagToContent('scalars')  # TF2 scalars are stored as tensors
  scalars = {tag: [(e.step, tensor_util.make_ndarray(e.tensor_proto).item())
                   for e in accumulator.Tensors(tag)] for tag in scalar_tags}
  return scalars, accumulator


def test_train_and_evaluate_end_to_end(tmp_path, tiny_config, mock_mnist):
  tiny_config.data.validation = 'train_random'
  tiny_config.data.num_validation = 56  # 200 images left to train on: 4 epochs of 32 = 25 steps
  tiny_config.train.num_epochs = 4.0
  out = train.train_and_evaluate(tiny_config, str(tmp_path))

  saved = results.read(str(tmp_path))
  assert saved == json.loads(json.dumps(out))
  assert saved['status'] == 'ok' and saved['steps'] == 25
  assert saved['schema_version'] == results.SCHEMA_VERSION
  for split, size in (('test', 256), ('validation', 56)):
    final = saved['final'][split]
    assert 0.0 <= final['error'] <= 1.0 and final['accuracy'] == pytest.approx(1 - final['error'])
    confusion = np.array(final['confusion'])
    assert confusion.shape == (10, 10) and confusion.sum() == size  # true label by predicted
    assert np.trace(confusion) / size == pytest.approx(final['accuracy'])
  layer_impls = saved['executor'].pop('layers')
  assert saved['executor'] == {'members': 1, 'devices': 1, 'steps_per_call': 1}
  assert set(layer_impls) == {'conv0', 'conv1', 'pool0', 'pool1'}
  assert saved['params'] == 208 // 2 + (5 * 5 * 4 * 8 + 8) + (4 * 4 * 8 * 10 + 10)
  assert saved['train_seconds'] > 0 and saved['config']['model']['conv_features'] == [4, 8]
  assert saved['num_examples'] == {'train': 200, 'validation': 56, 'test': 256}
  assert [round(h['epoch']) for h in saved['history']] == [1, 2, 3, 4]

  scalars, accumulator = read_scalars(str(tmp_path))
  for tag in ('train/loss', 'train/error', 'train/accuracy', 'train/learning_rate',
              'train/examples_per_second', 'eval/validation/loss', 'eval/validation/error',
              'eval/validation/accuracy', 'eval/test/loss', 'eval/test/error',
              'eval/test/accuracy'):
    assert tag in scalars, tag
  assert not any('confusion' in tag for tag in scalars)  # counts go to results.json only
  assert [s for s, _ in scalars['eval/test/error']] == [7, 13, 19, 25]
  assert scalars['eval/test/error'][-1][1] == pytest.approx(saved['final']['test']['error'])
  assert [h['test']['error'] for h in saved['history']][-1] == saved['final']['test']['error']
  assert all(lr == pytest.approx(0.1) for _, lr in scalars['train/learning_rate'])
  hparams = accumulator.PluginTagToContent('hparams')
  assert hparams, 'the run records its hyperparameters for the HParams dashboard'
  from tensorboard.plugins.hparams import plugin_data_pb2  # pylint: disable=g-import-not-at-top
  session = plugin_data_pb2.HParamsPluginData.FromString(
      hparams['_hparams_/session_start_info']).session_start_info
  assert session.hparams['model.activation'].string_value == 'relu'
  assert session.hparams['optimizer.learning_rate'].number_value == pytest.approx(0.1)


def test_same_seed_same_parameters_bit_for_bit(tmp_path, tiny_config, mock_mnist):
  # The layers are left to 'auto': runs of one config and batch choose alike, the first
  # measuring (if the cache lacks them) and the others reading its entries.
  tiny_config.model.dense_dropout = 0.5  # dropout keys must be reproducible too
  tiny_config.model.hidden_dims = (16,)
  train.train_and_evaluate(tiny_config, str(tmp_path / 'a'))
  train.train_and_evaluate(tiny_config, str(tmp_path / 'b'))
  tiny_config.seed = 1
  train.train_and_evaluate(tiny_config, str(tmp_path / 'c'))
  a, b, c = (read_params(str(tmp_path / d)) for d in 'abc')
  jax.tree_util.tree_map(np.testing.assert_array_equal, a, b)
  assert not np.array_equal(a['logits']['kernel'], c['logits']['kernel'])


def test_interrupted_run_resumes_to_the_same_result(tmp_path, tiny_config, mock_mnist, monkeypatch):
  # 'auto' layers: the resumed run has the same batch and devices, so it reads the choice
  # the first run made (test_devices pins them where the resumed run's batch differs).
  tiny_config.train.num_epochs = 3.0
  whole = train.train_and_evaluate(tiny_config, str(tmp_path / 'whole'))

  real_save = checkpoint.save
  def save_then_die(*args, **kwargs):
    real_save(*args, **kwargs)
    raise KeyboardInterrupt  # as if the run were killed right after its first checkpoint
  monkeypatch.setattr(checkpoint, 'save', save_then_die)
  with pytest.raises(KeyboardInterrupt):
    train.train_and_evaluate(tiny_config, str(tmp_path / 'split'))
  monkeypatch.setattr(checkpoint, 'save', real_save)
  resumed = train.train_and_evaluate(tiny_config, str(tmp_path / 'split'))

  assert resumed['steps'] == whole['steps'] == 24
  assert [h['test'] for h in resumed['history']] == [h['test'] for h in whole['history']]
  assert resumed['final'] == whole['final']
  jax.tree_util.tree_map(np.testing.assert_array_equal, read_params(str(tmp_path / 'whole')),
                         read_params(str(tmp_path / 'split')))


def test_diverging_run_stops_with_a_recorded_status(tmp_path, tiny_config, mock_mnist):
  tiny_config.optimizer.learning_rate = 1e30
  out = train.train_and_evaluate(tiny_config, str(tmp_path))
  assert out['status'] == 'diverged'
  assert 'train/loss' in out['message'] and ('nan' in out['message'] or 'inf' in out['message'])
  assert out['final'] == {} and out['steps'] == tiny_config.train.log_every_steps
  assert results.read(str(tmp_path))['status'] == 'diverged'


def test_corrupt_checkpoint_is_reported(tmp_path, tiny_config, mock_mnist):
  train.train_and_evaluate(tiny_config, str(tmp_path))
  with open(checkpoint.path_in(str(tmp_path)), 'wb') as f:
    f.write(b'\x93not a checkpoint')
  with pytest.raises(errors.CorruptCheckpointError, match=r'checkpoint.msgpack could not be read'):
    train.train_and_evaluate(tiny_config, str(tmp_path))


def test_workdir_of_another_config_is_refused(tmp_path, tiny_config, mock_mnist):
  train.train_and_evaluate(tiny_config, str(tmp_path))
  tiny_config.model.activation = 'tanh'
  with pytest.raises(errors.WorkdirConflictError, match=r'different config \(changed: model.activation\)'):
    train.train_and_evaluate(tiny_config, str(tmp_path))


def test_invalid_config_fails_before_training(tmp_path, tiny_config, mock_mnist):
  tiny_config.model.pool_type = ('max', 'mean')
  with pytest.raises(ValueError, match=r'model.pool_type\[1\]'):
    train.train_and_evaluate(tiny_config, str(tmp_path))
  assert not os.path.exists(checkpoint.path_in(str(tmp_path)))


def test_several_steps_per_call_match_one_step_per_call(tmp_path, tiny_config, mock_mnist):
  """The accelerator loop (lax.scan over K steps) trains exactly as the CPU loop does."""
  tiny_config.train.num_epochs = 2.0  # 16 steps; log every 4; epochs end after steps 8, 16
  # XLA's own layers: see test_groups.test_a_group_scans_several_steps_per_call_as_it_steps_one.
  tiny_config.model.conv_impl = tiny_config.model.pool_impl = 'xla'
  one = train.train_and_evaluate(tiny_config, str(tmp_path / 'one'))
  tiny_config.train.steps_per_call = 3  # chunks of 3 must still stop at every boundary
  scanned = train.train_and_evaluate(tiny_config, str(tmp_path / 'scanned'))
  assert scanned['steps'] == one['steps'] == 16
  assert [h['step'] for h in scanned['history']] == [h['step'] for h in one['history']] == [8, 16]
  for a, b in zip(one['history'], scanned['history']):
    assert a['train']['loss'] == pytest.approx(b['train']['loss'], rel=1e-4)
    assert a['test']['error'] == pytest.approx(b['test']['error'], abs=1 / 256)
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
                         read_params(str(tmp_path / 'one')), read_params(str(tmp_path / 'scanned')))
  steps = [s for s, _ in read_scalars(str(tmp_path / 'scanned'))[0]['train/loss']]
  assert steps == [4, 8, 12, 16]


def test_a_finished_run_re_reports_its_results(tmp_path, tiny_config, mock_mnist):
  first = train.train_and_evaluate(tiny_config, str(tmp_path))
  again = train.train_and_evaluate(tiny_config, str(tmp_path))  # resumes at the last step
  assert again['final'] == first['final'] and again['history'] == first['history']
  assert again['steps'] == first['steps']


def test_execution_fields_may_change_between_resumptions(tmp_path, tiny_config, mock_mnist):
  train.train_and_evaluate(tiny_config, str(tmp_path))
  tiny_config.train.steps_per_call = 2  # how it is computed, not which run it is
  tiny_config.sweep.strategy = 'sequential'
  assert train.train_and_evaluate(tiny_config, str(tmp_path))['status'] == 'ok'


def test_a_metric_declared_once_reaches_every_output(tmp_path, tiny_config, mock_mnist,
                                                     monkeypatch):
  from cnn_jax.engine import metrics  # pylint: disable=g-import-not-at-top
  top_logit = metrics.Metric(
      'top_logit', 'mean largest logit', 'mean', (metrics.TRAIN, metrics.EVAL),
      lambda logits, labels, w: jnp.sum(jnp.max(logits, -1) * w), console=True, hparams=True)
  monkeypatch.setattr(metrics, 'METRICS', metrics.METRICS + (top_logit,))
  monkeypatch.setattr(metrics, 'BY_NAME', {m.name: m for m in metrics.METRICS})
  out = train.train_and_evaluate(tiny_config, str(tmp_path))
  assert np.isfinite(out['final']['test']['top_logit'])
  assert 'top_logit' in out['history'][-1]['train'] and 'top_logit' in out['history'][-1]['test']
  scalars, _ = read_scalars(str(tmp_path))
  assert {'train/top_logit', 'eval/test/top_logit'} <= set(scalars)
  assert 'eval/test/top_logit' in metrics.hparams_tags()
  assert 'top_logit' in metrics.console_line(out['history'][-1], 1.5)


@pytest.mark.parametrize('model, optimizer', [('cntk_pool', 'sgd'), ('keras_cnn', 'adam'),
                                              ('tf_deep_cnn', 'momentum')])
def test_the_jitted_init_gives_the_eager_parameters_bit_for_bit(model, optimizer):
  from cnn_jax.config import architectures  # pylint: disable=g-import-not-at-top
  from cnn_jax.model import cnn  # pylint: disable=g-import-not-at-top
  from cnn_jax.optim import optimizers  # pylint: disable=g-import-not-at-top
  config = default.get_config()
  config.model = architectures.TUTORIAL_MODELS[model]()
  config.optimizer.name = optimizer
  state = step.MemberFunctions(config, 100).init(config, (28, 28, 1))
  params, opt_state = state['params'], state['opt_state']
  init_key, _ = jax.random.split(jax.random.key(config.seed))
  eager = cnn.build_model(config.model).init(init_key, jnp.zeros((1, 28, 28, 1)),
                                             train=False)['params']
  eager_opt = optimizers.make_optimizer(config.optimizer, 100).init(eager)
  jax.tree_util.tree_map(np.testing.assert_array_equal, (params, opt_state), (eager, eager_opt))


def test_per_class_accuracy_reads_the_confusion_rows():
  from cnn_jax.engine import metrics  # pylint: disable=g-import-not-at-top
  confusion = [[5, 1, 0], [0, 0, 0], [2, 0, 8]]  # true label by row
  assert metrics.per_class_accuracy(confusion) == [5 / 6, None, 0.8]
  table = metrics.confusion_markdown(confusion).splitlines()
  assert len(table) == 5 and table[2] == '| **0** | 5 | 1 | 0 | 83.33% |'
  assert table[3].endswith('| n/a |')
