"""Vmapped sweep groups: which trials group, and a member equals the same trial run alone."""
import copy

import jax
import numpy as np
import pytest

from cnn_jax import checkpoint
from cnn_jax import group_train
from cnn_jax import groups
from cnn_jax import train
from tests.test_train import read_params


def member_configs(base, **values_per_member):
  """Copies of `base`, member k taking values_per_member[path][k] ('a.b' paths)."""
  size = len(next(iter(values_per_member.values())))
  configs = []
  for k in range(size):
    config = copy.deepcopy(base)
    for path, values in values_per_member.items():
      *parents, leaf = path.split('__')
      node = config
      for part in parents:
        node = node[part]
      node[leaf] = values[k]
    configs.append(config)
  return configs


@pytest.fixture
def dropout_config(tiny_config):
  tiny_config.model.hidden_dims = (16,)
  tiny_config.model.dense_dropout = 0.3
  return tiny_config


def assert_close_params(a, b):
  jax.tree_util.tree_map(lambda x, y: np.testing.assert_allclose(x, y, rtol=2e-4, atol=2e-5),
                         a, b)


def test_members_match_their_runs_alone(tmp_path, dropout_config, mock_mnist):
  # Seed, learning rate and dropout rate all differ, so all three are traced inputs.
  configs = member_configs(dropout_config, seed=[0, 1], optimizer__learning_rate=[0.1, 0.05],
                           model__dense_dropout=[0.3, 0.5])
  grouped = group_train.train_group(configs, [str(tmp_path / f'g{k}') for k in range(2)])
  for k, config in enumerate(configs):
    alone = train.train_and_evaluate(config, str(tmp_path / f'alone{k}'))
    assert grouped[k]['status'] == alone['status'] == 'ok'
    assert grouped[k]['steps'] == alone['steps'] == 12
    assert grouped[k]['executor'] == {'strategy': 'vmap', 'group_size': 2}
    assert_close_params(read_params(str(tmp_path / f'g{k}')),
                        read_params(str(tmp_path / f'alone{k}')))
    np.testing.assert_allclose([h['train_loss'] for h in grouped[k]['history']],
                               [h['train_loss'] for h in alone['history']], rtol=1e-4)
    assert grouped[k]['test_error'] == pytest.approx(alone['test_error'], abs=1 / 256 + 1e-9)
  # The members really are different runs.
  assert not np.allclose(read_params(str(tmp_path / 'g0'))['logits']['kernel'],
                         read_params(str(tmp_path / 'g1'))['logits']['kernel'])


def test_diverging_member_does_not_spoil_the_others(tmp_path, tiny_config, mock_mnist):
  configs = member_configs(tiny_config, optimizer__learning_rate=[0.1, 1e30])
  grouped = group_train.train_group(configs, [str(tmp_path / f'g{k}') for k in range(2)])
  alone = train.train_and_evaluate(configs[0], str(tmp_path / 'alone'))
  assert grouped[1]['status'] == 'diverged' and 'train/loss' in grouped[1]['message']
  assert grouped[1]['test_error'] is None
  assert grouped[0]['status'] == 'ok'
  assert_close_params(read_params(str(tmp_path / 'g0')), read_params(str(tmp_path / 'alone')))


def test_interrupted_group_resumes_and_its_checkpoints_are_single_run_checkpoints(
    tmp_path, tiny_config, mock_mnist, monkeypatch):
  tiny_config.train.num_epochs = 3.0
  configs = member_configs(tiny_config, seed=[0, 1])
  whole = group_train.train_group(configs, [str(tmp_path / f'whole{k}') for k in range(2)])

  real_save = checkpoint.save
  def save_then_die(workdir, *args, **kwargs):
    real_save(workdir, *args, **kwargs)
    if workdir.endswith('split1'):  # killed once both members saved their first epoch
      raise KeyboardInterrupt
  monkeypatch.setattr(checkpoint, 'save', save_then_die)
  dirs = [str(tmp_path / f'split{k}') for k in range(2)]
  with pytest.raises(KeyboardInterrupt):
    group_train.train_group(configs, dirs)
  monkeypatch.setattr(checkpoint, 'save', real_save)
  assert [checkpoint.saved_step(d) for d in dirs] == [8, 8]

  # Member 1 resumes alone, as a single run, from the group's checkpoint ...
  alone = train.train_and_evaluate(configs[1], dirs[1])
  # ... and member 0 resumes as a group of one more time: both match the uninterrupted group.
  resumed = group_train.train_group(configs[:1], dirs[:1])[0]
  assert resumed['steps'] == alone['steps'] == whole[0]['steps'] == 24
  assert [h['step'] for h in resumed['history']] == [8, 16, 24]
  assert_close_params(read_params(dirs[0]), read_params(str(tmp_path / 'whole0')))
  assert_close_params(read_params(dirs[1]), read_params(str(tmp_path / 'whole1')))


def test_only_traceable_differences_group(tiny_config):
  seeds = member_configs(tiny_config, seed=[0, 1, 2])
  activations = member_configs(tiny_config, model__activation=['relu', 'tanh'])
  decay = member_configs(tiny_config, optimizer__weight_decay=[0.0, 1e-4, 1e-3])
  configs = seeds + activations + decay
  plan = groups.plan(configs, [None] * len(configs), backend='gpu_without_measurement')
  # Unmeasured backend: same-program trials are calibrated as a group; the rest run alone.
  assert plan == [('calibrate', [0, 1, 2, 3, 5]), ('sequential', [4]), ('calibrate', [6, 7])]
  keys = [groups.group_key(c, None) for c in configs]
  assert keys[0] == keys[1] == keys[2] == keys[3] == keys[5]  # weight decay 0 as the rest
  assert keys[4] != keys[0]                       # another activation: another program
  assert keys[6] == keys[7] != keys[0]            # decay > 0: one more term in the update
  assert groups.group_key(configs[0], 8) != keys[0]  # checkpoints at another step
  by_backend = groups.plan(seeds, [None] * 3, backend='cpu')
  assert by_backend == [('sequential', [0]), ('sequential', [1]), ('sequential', [2])]
  # CPU never vmaps; 3 trials on 2 pinned workers take 2 rounds at 0.57x: slower than
  # one-after-another. 4 trials take 2 rounds: faster.
  assert groups.plan(seeds, [None] * 3, backend='cpu', cores=2) == by_backend
  four = member_configs(tiny_config, seed=[0, 1, 2, 3])
  assert groups.plan(four, [None] * 4, backend='cpu', cores=2) == [
      ('processes', [0]), ('processes', [1]), ('processes', [2]), ('processes', [3])]
  assert groups.processes_speedup(16, 2, 0.57) == pytest.approx(1.14)
  for config in seeds:
    config.sweep.strategy, config.sweep.max_group_size = 'vmap', 2
  assert groups.plan(seeds, [None] * 3, backend='cpu') == [('vmap', [0, 1]), ('sequential', [2])]


def test_bad_sweep_strategy_is_named(tiny_config):
  tiny_config.sweep.strategy = 'parallel'
  with pytest.raises(ValueError, match=r"sweep.strategy='parallel'.*auto, sequential, vmap"):
    groups.validate_sweep_config(tiny_config.sweep)


def test_calibration_times_both_and_answers(tiny_config, mock_mnist):
  configs = member_configs(tiny_config, seed=[0, 1])
  assert group_train.vmap_is_faster(configs, steps=2) in (True, False)
