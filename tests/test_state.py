"""The state pytree: one builder makes a run's and a group's Program alike, and a checkpoint
written before the state held the model state and the key ({'step', 'params', 'opt_state'})
still resumes, to the same result as a run never interrupted."""
import flax.serialization
import jax
import numpy as np
import pytest

from cnn_jax import train
from cnn_jax.engine import checkpoint
from cnn_jax.engine import program as program_lib
from cnn_jax.engine import plan as plan_lib
from cnn_jax.engine import step as step_lib
from tests.conftest import train_until_first_checkpoint
from tests.test_batch_norm import read_state
from tests.test_groups import member_configs


def test_a_run_and_a_group_build_the_same_program(tiny_config, mock_mnist):
  tiny_config.model.batch_norm, tiny_config.model.dense_dropout = 'after', 0.2
  tiny_config.model.hidden_dims = (16,)
  tiny_config.model.conv_impl = tiny_config.model.pool_impl = 'xla'
  configs = member_configs(tiny_config, seed=[0, 1], optimizer__learning_rate=[0.1, 0.2])
  run = program_lib.Program(plan_lib.arrange(configs[:1], (28, 28, 1), 256))
  group = program_lib.Program(plan_lib.arrange(configs, (28, 28, 1), 256))
  assert run.total_steps == group.total_steps == 12
  run_state, group_state = jax.device_get(run.init()), jax.device_get(group.init())
  # One tree, the same leaves; the group's member axis holds 2 where the run's holds 1.
  assert set(run_state) == set(group_state) == {*step_lib.CHECKPOINTED, 'sums'}
  # (The traced values are the group's: which fields differ; they are compared below.)
  kept = [k for k in step_lib.CHECKPOINTED if k != 'traced']
  tree = lambda s: jax.tree_util.tree_structure({k: s[k] for k in kept})
  assert tree(run_state) == tree(group_state)
  jax.tree_util.tree_map(lambda a, b: (a.shape[1:] == b.shape[1:] and a.shape[0] == 1
                                       and b.shape[0] == 2) or pytest.fail('shapes'),
                         {k: run_state[k] for k in kept}, {k: group_state[k] for k in kept})
  # Member 0 of the group starts exactly as the run alone.
  jax.tree_util.tree_map(np.testing.assert_array_equal,
                         {k: run.member_state(run_state, 0)[k] for k in kept},
                         {k: group.member_state(group_state, 0)[k] for k in kept})
  # Only the values that differ are traced: the learning rate, not the dropout rate.
  assert group_state['traced']['optimizer'] == {'learning_rate': pytest.approx([0.1, 0.2])}
  assert run_state['traced'] == {'model': {}, 'optimizer': {}, 'train': {}, 'augment': {}}


def test_a_checkpoint_of_parameters_and_optimizer_state_only_resumes(tmp_path, tiny_config,
                                                                     mock_mnist):
  tiny_config.train.num_epochs = 3.0
  tiny_config.model.hidden_dims, tiny_config.model.dense_dropout = (16,), 0.3
  whole = train.train_and_evaluate(tiny_config, str(tmp_path / 'whole'))
  train_until_first_checkpoint(tiny_config, str(tmp_path / 'old'))
  path = checkpoint.path_in(str(tmp_path / 'old'))
  with open(path, 'rb') as f:
    payload = flax.serialization.msgpack_restore(f.read())
  payload['state'] = {k: payload['state'][k] for k in ('step', 'params', 'opt_state')}
  with open(path, 'wb') as f:
    f.write(flax.serialization.msgpack_serialize(payload))
  resumed = train.train_and_evaluate(tiny_config, str(tmp_path / 'old'))
  assert resumed['steps'] == 24 and resumed['final'] == whole['final']
  jax.tree_util.tree_map(np.testing.assert_array_equal, read_state(str(tmp_path / 'whole')),
                         read_state(str(tmp_path / 'old')))
