"""Population-based training's exploit and explore on a vmapped group's state, on the device
(engine/population.py): exactly the chosen member's state is copied, explored numbers stay in
their space, and every interval runs the same compiled program."""
import jax
import numpy as np
import pytest

from cnn_jax.engine import plan as plan_lib
from cnn_jax.engine import population
from cnn_jax.engine import program as program_lib
from tests.test_groups import member_configs

LEARNING_RATES = [0.05, 0.1, 0.2, 0.4]
RULE = population.Rule(
    bounds=(population.Bounds('optimizer', 'learning_rate', 0.01, 0.5, log=True),
            population.Bounds('model', 'dense_dropout', 0.05, 0.6)),
    quantile=0.25, factors=(0.8, 1.2), resample_probability=0.25)


@pytest.fixture(scope='module')
def group_state():
  """A trained-for-two-steps group of 4 (batch norm, dropout, momentum) as the loop holds it."""
  from tests.conftest import tiny  # pylint: disable=g-import-not-at-top
  config = tiny()
  config.model.batch_norm, config.model.hidden_dims = 'after', (16,)
  config.model.conv_impl = config.model.pool_impl = 'xla'
  config.optimizer.name = 'momentum'
  configs = member_configs(config, seed=[0, 1, 2, 3], optimizer__learning_rate=LEARNING_RATES,
                           model__dense_dropout=[0.1, 0.2, 0.3, 0.5])
  program = program_lib.Program(plan_lib.arrange(configs, (28, 28, 1), 256))
  state = program.init()
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (256, 28, 28, 1), dtype=np.uint8)
  labels = rng.integers(0, 10, 256, dtype=np.int32)
  for step in range(2):
    indices = np.stack([rng.permutation(256)[:config.train.batch_size] for _ in configs])
    state = program.train(state, step, images, labels, indices)
  return jax.device_get(state)


def run(state, key, scores, rule=RULE):
  return jax.device_get(population.compiled(rule)(
      population.selection_key(0, key), jax.device_put(state), np.asarray(scores, np.float32)))


def test_the_bottom_copies_exactly_a_top_member_s_state_and_keeps_its_own_key(group_state):
  # Member 2 scores worst (an error), member 0 best: with 4 members and quantile 0.25 member
  # 2 copies member 0, and the others keep their own state.
  new, source = run(group_state, 0, [0.1, 0.3, 0.9, 0.5])
  assert source.tolist() == [0, 1, 0, 3]
  for part in ('params', 'model_state', 'opt_state'):
    assert jax.tree_util.tree_leaves(group_state[part]), part
    jax.tree_util.tree_map(lambda old, now: np.testing.assert_array_equal(now[2], old[0]),
                           group_state[part], new[part])
    for kept in (0, 1, 3):
      jax.tree_util.tree_map(lambda old, now, k=kept: np.testing.assert_array_equal(
          now[k], old[k]), group_state[part], new[part])
  np.testing.assert_array_equal(new['key'], group_state['key'])  # its own dropout, data
  jax.tree_util.tree_map(np.testing.assert_array_equal, new['sums'], group_state['sums'])
  # The copied member's traced numbers are the winner's, explored; the others' unchanged.
  lr = new['traced']['optimizer']['learning_rate']
  assert lr[[0, 1, 3]].tolist() == pytest.approx([0.05, 0.1, 0.4])
  assert lr[2] != pytest.approx(0.2) and 0.01 <= lr[2] <= 0.5


def test_a_diverged_member_ranks_last_and_maximize_reverses_the_ranking(group_state):
  _, source = run(group_state, 1, [0.2, float('nan'), 0.3, 0.1])
  assert source.tolist() == [0, 3, 2, 3]
  accuracy = population.Rule(RULE.bounds, quantile=0.5, maximize=True)
  _, source = run(group_state, 2, [0.9, 0.1, 0.95, 0.2], accuracy)
  assert set(source[[1, 3]].tolist()) <= {0, 2} and source[[0, 2]].tolist() == [0, 2]


def test_explored_numbers_stay_within_their_space():
  rule = population.Rule(RULE.bounds, quantile=0.5, factors=(0.5, 3.0),
                         resample_probability=0.3)
  traced = {'optimizer': {'learning_rate': np.full(64, 0.45, np.float32)},
            'model': {'dense_dropout': np.full(64, 0.06, np.float32)}, 'train': {}}
  moved = np.arange(64) % 2 == 0
  seen = []
  for key in range(20):
    out = jax.device_get(jax.jit(population.explore, static_argnums=3)(
        jax.random.key(key), traced, moved, rule))
    for bounds in rule.bounds:
      value = out[bounds.section][bounds.field]
      assert (value >= bounds.low).all() and (value <= bounds.high).all(), bounds
      np.testing.assert_array_equal(value[~moved], traced[bounds.section][bounds.field][~moved])
      seen.append(value[moved])
  # Both the factors (clipped at a bound) and draws from the space happen.
  assert np.isin(0.5, seen[0::2]).any() and np.isin(np.float32(0.45 * 0.5), seen[0::2]).any()
  assert len(np.unique(np.concatenate(seen[0::2]))) > 3


def test_every_interval_runs_one_compiled_program(group_state):
  step = population.compiled(RULE)
  state = jax.device_put(group_state)
  for key, scores in enumerate(([0.1, 0.3, 0.9, 0.5], [0.5, 0.2, 0.1, 0.7],
                                [0.3, 0.3, 0.3, float('nan')])):
    state, _ = step(population.selection_key(0, key), state, np.asarray(scores, np.float32))
  assert step._cache_size() == 1  # pylint: disable=protected-access
