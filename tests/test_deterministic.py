"""train.deterministic: XLA's deterministic ops (GPU) set before the backends start, and max
pooling by 'reshape', whose gradient has no select-and-scatter (which XLA refuses to compile
under those ops). The GPU itself is not here: these check what CPU can."""
import json
import os

import jax
import jax.numpy as jnp
import pytest

from cnn_jax import startup
from cnn_jax.config import validation
from cnn_jax.errors import ConfigError
from cnn_jax.layer_impls import implementations
from experiments import default
from tests.test_launch import mock_data  # pylint: disable=unused-import  (a fixture)
from tests.test_launch import run


@pytest.mark.parametrize('window', [2, 3])
def test_reshape_max_pooling_has_a_gradient_without_select_and_scatter(window):
  x = jnp.ones((4, 12, 12, 3))
  text = {name: jax.jit(jax.grad(lambda x: impl(x, 'max', window, window, 'VALID').sum())
                        ).lower(x).as_text()
          for name, impl in implementations.POOL_IMPLS.items()}
  assert 'select_and_scatter' in text['xla']  # (what the check would catch)
  assert 'select_and_scatter' not in text['reshape']


def test_a_deterministic_run_sets_the_flag_and_pools_by_reshape(tmp_path, mock_data):
  proc = run(['--config=experiments/pool.py', f'--workdir={tmp_path}',
              '--config.train.num_train_steps=2', '--config.train.deterministic=True',
              '--config.train.pictures=none'], mock_data)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'train.deterministic: XLA_FLAGS=' in proc.stderr
  assert startup.DETERMINISTIC_FLAG in proc.stderr
  with open(os.path.join(tmp_path, 'results.json')) as f:
    executor = json.load(f)['executor']
  assert 'reshape' in json.dumps(executor['layers'])


def test_deterministic_runs_refuse_what_cannot_be_deterministic():
  config = default.get_config()
  config.train.deterministic = True
  config.model.pool_impl = 'xla'
  with pytest.raises(ConfigError, match=r"model.pool_impl='xla': allowed values auto, reshape"):
    validation.validate_determinism(config.train, config.model)
  config.model.pool_impl = 'auto'
  config.model.pool_window, config.model.pool_strides = (3, 3), (2, 3)
  with pytest.raises(ConfigError, match=r'pool0: window 3, stride 2'):
    validation.validate_determinism(config.train, config.model)


def test_a_process_whose_backends_started_without_it_cannot_take_it(monkeypatch):
  jax.devices()  # (this process's backends are up)
  monkeypatch.setenv('XLA_FLAGS', '')
  with pytest.raises(ConfigError, match='must hold from the start of the process'):
    startup.use_deterministic_ops(True)
  startup.use_deterministic_ops(False)  # off: nothing to do
  monkeypatch.setenv('XLA_FLAGS', startup.DETERMINISTIC_FLAG)
  startup.use_deterministic_ops(True)  # already there
