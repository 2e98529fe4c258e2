"""Every tutorial model has the exact parameter counts and shapes of ../shared/TUTORIALS.md."""
import jax
import jax.numpy as jnp
import pytest

from cnn_jax.config import architectures
from cnn_jax.model import cnn as models
from cnn_jax.model import shapes
from cnn_jax.model import summary

# (total, per-layer counts of the layers with parameters), from TUTORIALS.md.
EXPECTED_PARAMS = {
    'cntk_conv': (11_274, [208, 3_216, 7_850]),
    'cntk_pool': (5_994, [208, 3_216, 2_570]),
    'cntk_pool_slides': (4_874, [208, 3_216, 1_450]),
    'keras_cnn': (1_199_882, [320, 18_496, 1_179_776, 1_290]),
    'lenet_small': (38_390, [260, 5_020, 32_100, 1_010]),
    'tf_softmax': (7_850, [7_850]),
    'tf_deep_cnn': (3_274_634, [832, 51_264, 3_212_288, 10_250]),
}


def init(model_cfg):
  model = models.build_model(model_cfg)
  params = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)), train=False)['params']
  return model, params


@pytest.mark.parametrize('name', sorted(EXPECTED_PARAMS))
def test_parameter_counts(name):
  model, params = init(architectures.TUTORIAL_MODELS[name]())
  total, per_layer = EXPECTED_PARAMS[name]
  assert models.count_params(params) == total
  assert shapes.count_params(architectures.TUTORIAL_MODELS[name]()) == total  # the estimate
  rows = summary.model_summary(model, params)
  assert [r.params for r in rows if r.params] == per_layer
  assert sum(r.params for r in rows) == total


def test_t1_tensor_count():
  _, params = init(architectures.cntk_conv())
  assert len(jax.tree_util.tree_leaves(params)) == 6


@pytest.mark.parametrize('name', sorted(EXPECTED_PARAMS))
def test_static_shapes_match_the_real_model(name):
  model_cfg = architectures.TUTORIAL_MODELS[name]()
  model, params = init(model_cfg)
  static = [(l.name, (None, *l.output_shape)) for l in shapes.infer_layer_shapes(model_cfg)]
  real = [(r.name, r.output_shape) for r in summary.model_summary(model, params)]
  assert static == real


def test_summary_shapes_t1_and_t2():
  model, params = init(architectures.cntk_conv())
  assert [(r.name, r.output_shape) for r in summary.model_summary(model, params)] == [
      ('conv0', (None, 14, 14, 8)), ('conv1', (None, 7, 7, 16)), ('flatten', (None, 784)),
      ('logits', (None, 10))]
  model, params = init(architectures.cntk_pool())
  assert [(r.name, r.output_shape) for r in summary.model_summary(model, params)] == [
      ('conv0', (None, 28, 28, 8)), ('pool0', (None, 14, 14, 8)), ('conv1', (None, 14, 14, 16)),
      ('pool1', (None, 4, 4, 16)), ('flatten', (None, 256)), ('logits', (None, 10))]
  text = summary.format_summary(summary.model_summary(model, params), 'cntk_pool')
  assert '(None, 4, 4, 16)' in text and '5,994' in text.splitlines()[-1]


def test_deep_cnn_initialisation_follows_tf1():
  _, params = init(architectures.tf_deep_cnn())
  kernel = params['dense0']['kernel']
  assert float(jnp.max(jnp.abs(kernel))) <= 0.2 + 1e-6   # truncated at two std devs of 0.1
  assert 0.07 < float(jnp.std(kernel)) < 0.1               # truncation narrows it to ~0.088
  assert bool(jnp.all(params['conv0']['bias'] == 0.1))


def test_softmax_regression_starts_at_zero():
  _, params = init(architectures.tf_softmax())
  assert all(bool(jnp.all(p == 0)) for p in jax.tree_util.tree_leaves(params))


def test_last_dense_share_with_and_without_pooling():
  """T2's question: pooling shrinks the features the classifier sees, and with them its
  share of the parameters (2,570 of 5,994 with pooling; 125,450 of 128,874 without)."""
  pooled_cfg = architectures.cntk_pool()
  unpooled_cfg = architectures.cntk_pool()
  unpooled_cfg.pool_type = ('none', 'none')
  shares = []
  for cfg in (pooled_cfg, unpooled_cfg):
    model, params = init(cfg)
    rows = summary.model_summary(model, params)
    shares.append((rows[-1].params, models.count_params(params)))
  assert shares == [(2_570, 5_994), (125_450, 128_874)]
  assert [round(100 * last / total, 1) for last, total in shares] == [42.9, 97.3]
