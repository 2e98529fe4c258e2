"""A member's config read through its traced values (cnn_jax/member_view.py)."""
import jax
import jax.numpy as jnp
import ml_collections
import pytest

from cnn_jax import member_view
from cnn_jax.optim import optimizers


def optimizer_section(**values):
  return ml_collections.ConfigDict({
      'name': 'momentum', 'learning_rate': 0.1, 'momentum': 0.9, 'weight_decay': 0.0,
      'schedule': 'constant', 'warmup_steps': 0, **values})


def test_a_traced_value_replaces_the_config_s_and_the_rest_read_through():
  section = member_view.section(optimizer_section(), {'learning_rate': 0.5})
  assert section.learning_rate == 0.5 and section['learning_rate'] == 0.5
  assert section.momentum == 0.9 and section.name == 'momentum'
  assert 'momentum' in section and 'nothing' not in section
  assert getattr(section, 'nothing', 'absent') == 'absent'
  assert set(section) == set(optimizer_section().keys())
  again = member_view.section(section, {'momentum': 0.5})  # a view of a view adds to it
  assert (again.learning_rate, again.momentum) == (0.5, 0.5)


def test_structure_comes_from_the_config_never_from_a_traced_value():
  off = member_view.section(optimizer_section(), {'weight_decay': 0.3})
  assert not off.is_on('weight_decay') and off.weight_decay == 0.3
  on = member_view.section(optimizer_section(weight_decay=0.1), {'weight_decay': 0.0})
  assert on.is_on('weight_decay')


def test_the_whole_config_s_sections_and_a_traced_learning_rate_in_the_optimizer():
  config = ml_collections.ConfigDict({'optimizer': optimizer_section(), 'train': {'x': 1}})
  member = member_view.Member(config, {'optimizer': {'learning_rate': jnp.float32(0.5)}})
  assert member.train.x == 1 and float(member.optimizer.learning_rate) == 0.5

  def first_update(lr):  # the optimizer built under jit from a traced learning rate
    view = member_view.Member(config, {'optimizer': {'learning_rate': lr}})
    tx = optimizers.make_optimizer(view.optimizer, 10)
    params = {'w': jnp.ones(2)}
    updates, _ = tx.update({'w': jnp.ones(2)}, tx.init(params), params)
    return updates['w']

  assert jax.jit(first_update)(jnp.float32(0.5)).tolist() == pytest.approx([-0.5, -0.5])
  assert jax.jit(first_update)(jnp.float32(0.1)).tolist() == pytest.approx([-0.1, -0.1])
