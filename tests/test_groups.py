"""Vmapped groups (the loop with K > 1 members): which trials group, which strategy a sweep
plans, and a member equals the same trial run alone."""
import copy

import jax
import numpy as np
import pytest

from cnn_jax import errors
from cnn_jax import machine
from cnn_jax import train
from cnn_jax.engine import checkpoint
from cnn_jax.engine import loop
from cnn_jax.engine import plan as plan_lib
from cnn_jax.engine import grouping
from cnn_jax.sweeps import planning
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
  return pin_layers(tiny_config)  # its groups are compared with runs alone


def pin_layers(config):
  """XLA's own layers, whatever the layer cache holds: a vmapped group of K and a run alone
  have their layers measured and chosen apart (layer_impls/, per member count), and
  two choices agree only to float tolerance, which a near-tie of max pooling can turn into a
  different run."""
  config.model.conv_impl = config.model.pool_impl = 'xla'
  return config


def assert_close_params(a, b):
  jax.tree_util.tree_map(lambda x, y: np.testing.assert_allclose(x, y, rtol=2e-4, atol=2e-5),
                         a, b)


def test_members_match_their_runs_alone(tmp_path, dropout_config, mock_mnist):
  # Seed, learning rate and dropout rate all differ, so all three are traced inputs.
  configs = member_configs(dropout_config, seed=[0, 1], optimizer__learning_rate=[0.1, 0.05],
                           model__dense_dropout=[0.3, 0.5])
  grouped = loop.train(plan_lib.make(configs), [str(tmp_path / f'g{k}') for k in range(2)])
  for k, config in enumerate(configs):
    alone = train.train_and_evaluate(config, str(tmp_path / f'alone{k}'))
    assert grouped[k]['status'] == alone['status'] == 'ok'
    assert grouped[k]['steps'] == alone['steps'] == 12
    assert {key: grouped[k]['executor'][key] for key in ('members', 'devices', 'steps_per_call')
            } == {'members': 2, 'devices': 1, 'steps_per_call': 1}
    assert_close_params(read_params(str(tmp_path / f'g{k}')),
                        read_params(str(tmp_path / f'alone{k}')))
    np.testing.assert_allclose([h['train']['loss'] for h in grouped[k]['history']],
                               [h['train']['loss'] for h in alone['history']], rtol=1e-4)
    assert grouped[k]['final']['test']['error'] == pytest.approx(
        alone['final']['test']['error'], abs=1 / 256 + 1e-9)
  # The members really are different runs.
  assert not np.allclose(read_params(str(tmp_path / 'g0'))['logits']['kernel'],
                         read_params(str(tmp_path / 'g1'))['logits']['kernel'])


def test_diverging_member_does_not_spoil_the_others(tmp_path, tiny_config, mock_mnist):
  configs = member_configs(pin_layers(tiny_config), optimizer__learning_rate=[0.1, 1e30])
  grouped = loop.train(plan_lib.make(configs), [str(tmp_path / f'g{k}') for k in range(2)])
  alone = train.train_and_evaluate(configs[0], str(tmp_path / 'alone'))
  assert grouped[1]['status'] == 'diverged' and 'train/loss' in grouped[1]['message']
  assert grouped[1]['final'] == {} and grouped[1]['steps'] == tiny_config.train.log_every_steps
  assert grouped[0]['steps'] == alone['steps'] == 12
  assert grouped[0]['status'] == 'ok'
  assert_close_params(read_params(str(tmp_path / 'g0')), read_params(str(tmp_path / 'alone')))


def test_interrupted_group_resumes_and_its_checkpoints_are_single_run_checkpoints(
    tmp_path, tiny_config, mock_mnist, monkeypatch):
  tiny_config.train.num_epochs = 3.0
  # The group of 2 and its members resumed alone would choose their layers apart.
  configs = member_configs(pin_layers(tiny_config), seed=[0, 1])
  whole = loop.train(plan_lib.make(configs), [str(tmp_path / f'whole{k}') for k in range(2)])

  real_save = checkpoint.save
  def save_then_die(workdir, *args, **kwargs):
    real_save(workdir, *args, **kwargs)
    if workdir.endswith('split1'):  # killed once both members saved their first epoch
      raise KeyboardInterrupt
  monkeypatch.setattr(checkpoint, 'save', save_then_die)
  dirs = [str(tmp_path / f'split{k}') for k in range(2)]
  with pytest.raises(KeyboardInterrupt):
    loop.train(plan_lib.make(configs), dirs)
  monkeypatch.setattr(checkpoint, 'save', real_save)
  assert [checkpoint.saved_step(d) for d in dirs] == [8, 8]

  # Member 1 resumes alone, as a single run, from the group's checkpoint ...
  alone = train.train_and_evaluate(configs[1], dirs[1])
  # ... and member 0 resumes as a group of one more time: both match the uninterrupted group.
  resumed = loop.train(plan_lib.make(configs[:1]), dirs[:1])[0]
  assert resumed['steps'] == alone['steps'] == whole[0]['steps'] == 24
  assert [h['step'] for h in resumed['history']] == [8, 16, 24]
  assert_close_params(read_params(dirs[0]), read_params(str(tmp_path / 'whole0')))
  assert_close_params(read_params(dirs[1]), read_params(str(tmp_path / 'whole1')))


def test_only_traceable_differences_group(tiny_config):
  seeds = member_configs(tiny_config, seed=[0, 1, 2])
  activations = member_configs(tiny_config, model__activation=['relu', 'tanh'])
  decay = member_configs(tiny_config, optimizer__weight_decay=[0.0, 1e-4, 1e-3])
  configs = seeds + activations + decay
  keys = [grouping.program_key(c, None) for c in configs]
  assert keys[0] == keys[1] == keys[2] == keys[3] == keys[5]  # weight decay 0 as the rest
  assert keys[4] != keys[0]                       # another activation: another program
  assert keys[6] == keys[7] != keys[0]            # decay > 0: one more term in the update
  assert grouping.program_key(configs[0], 8) != keys[0]  # checkpoints at another step
  calibrated = []
  def calibrate(members):
    calibrated.append(len(members))
    return True
  # Nothing measured on an accelerator: same-program sets are timed on the spot, and the
  # plan comes back final.
  plan = planning.plan(configs, [None] * len(configs), 'gpu', None, calibrate)
  assert plan == [('vmap', [0, 1, 2, 3, 5]), ('sequential', [4]), ('vmap', [6, 7])]
  assert calibrated == [5, 2]


def test_the_cpu_policy_follows_what_was_measured_here(tiny_config):
  seeds = member_configs(tiny_config, seed=[0, 1, 2])
  four = member_configs(tiny_config, seed=[0, 1, 2, 3])
  alone = lambda n: [('sequential', [i]) for i in range(n)]
  # Nothing measured on this machine: the conservative default, one after another.
  assert planning.plan(four, [None] * 4, 'cpu', None) == alone(4)
  # A slow vmap is never chosen (parallel trials are the workers' business, not the plan's).
  assert planning.plan(seeds, [None] * 3, 'cpu', {'vmap_speedup': {'4': 0.41}}) == alone(3)
  # Where vmap was measured faster, groups are vmapped.
  assert planning.plan(four, [None] * 4, 'cpu', {'vmap_speedup': {'2': 1.5}}) == [
      ('vmap', [0, 1, 2, 3])]
  for config in seeds:
    config.sweep.strategy, config.sweep.max_group_size = 'vmap', 2
  assert planning.plan(seeds, [None] * 3, 'cpu', None) == [('vmap', [0, 1]),
                                                            ('sequential', [2])]


def test_measurements_are_recorded_per_machine(tmp_path):
  path = str(tmp_path / 'measured.json')
  assert planning.read_measurement('cpu', path) is None
  planning.write_measurement('cpu', {'vmap_speedup': {'2': 0.6}}, path)
  assert planning.read_measurement('cpu', path) == {'vmap_speedup': {'2': 0.6}}
  assert 'cores' in machine.machine_key('cpu')


def test_runs_that_cannot_share_a_program_are_refused(tmp_path, tiny_config, mnist_described):
  configs = member_configs(tiny_config, model__activation=['relu', 'tanh'])
  with pytest.raises(errors.ConfigError, match='cannot train as one group'):
    loop.train(plan_lib.make(configs), [str(tmp_path / 'a'), str(tmp_path / 'b')])


def test_calibration_times_both_and_answers(tiny_config, mock_mnist):
  configs = member_configs(tiny_config, seed=[0, 1])
  assert planning.vmap_is_faster(configs, steps=2) in (True, False)


@pytest.mark.parametrize('seeds', [[0], [0, 1]], ids=['run alone', 'group of 2'])
def test_a_group_scans_several_steps_per_call_as_it_steps_one(tmp_path, tiny_config,
                                                               mock_mnist, seeds):
  # Two differently compiled programs agree to float tolerance per step, but a layer that
  # XLA recomputes in several fusions (shifted slices) can round a near-tie of max pooling
  # differently in each, and such a flip grows over 12 steps; XLA's own layers are computed
  # once, so the comparison is of the scan, not of the layers (tests/test_layers.py).
  tiny_config.model.conv_impl = tiny_config.model.pool_impl = 'xla'
  configs = member_configs(tiny_config, seed=seeds)
  one = loop.train(plan_lib.make(configs), [str(tmp_path / f'one{k}') for k in range(len(seeds))])
  for config in configs:
    config.train.steps_per_call = 3  # chunks of 3 must still stop at every boundary
  scanned = loop.train(plan_lib.make(configs), [str(tmp_path / f'scan{k}') for k in range(len(seeds))])
  for k in range(len(seeds)):
    assert scanned[k]['executor']['steps_per_call'] == 3
    assert [h['step'] for h in scanned[k]['history']] == [h['step'] for h in one[k]['history']]
    assert_close_params(read_params(str(tmp_path / f'scan{k}')),
                        read_params(str(tmp_path / f'one{k}')))
