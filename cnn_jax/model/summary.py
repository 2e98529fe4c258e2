"""A Keras-style model summary: per layer the output shape and parameter count, then the
totals, trainable and non-trainable (batch normalization's running averages) apart, as Keras
prints them.

Shapes come from the real module (its sown intermediates, traced abstractly, so nothing is
computed), parameter counts from the real variables.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from cnn_jax.model import cnn as models
from cnn_jax.model import shapes


@dataclasses.dataclass(frozen=True)
class SummaryRow:
  name: str
  output_shape: tuple  # with None for the batch axis, as Keras prints it
  params: int          # trainable and not
  trainable: int = -1  # -1: all of them

  @property
  def trainable_params(self) -> int:
    return self.params if self.trainable < 0 else self.trainable


def model_summary(model: models.CNN, params, input_shape=(28, 28, 1),
                  model_state=None) -> list[SummaryRow]:
  """model_state: the model's other variables ({'batch_stats': ...}), counted as
  non-trainable."""
  model_state = dict(model_state or {})

  def forward(p, x):
    _, state = model.apply({'params': p, **model_state}, x, train=False,
                           mutable=['intermediates'])
    return state['intermediates']

  # Pytrees come back with sorted keys, so the layer order is taken from the model's layer
  # list while each shape is read from the real module.
  outputs = jax.eval_shape(forward, params, jnp.zeros((1, *input_shape), jnp.float32))
  rows = []
  for layer in shapes.layer_shapes(model.layers, input_shape):
    (value,) = outputs[layer.name + models.OUTPUT_SUFFIX]  # sow stores a 1-tuple per call
    trainable = models.count_params(params.get(layer.name, {}))
    frozen = sum(models.count_params(collection.get(layer.name, {}))
                 for collection in model_state.values())
    rows.append(SummaryRow(layer.name, (None, *value.shape[1:]), trainable + frozen, trainable))
  return rows


def format_summary(rows: list[SummaryRow], title: str = '') -> str:
  lines = [f'Model: {title}' if title else 'Model summary']
  header = f'{"layer":<16}{"output shape":<22}{"params":>12}'
  lines += [header, '-' * len(header)]
  for row in rows:
    shape = '(' + ', '.join('None' if d is None else str(d) for d in row.output_shape) + ')'
    lines.append(f'{row.name:<16}{shape:<22}{row.params:>12,}')
  lines.append('-' * len(header))
  total = sum(r.params for r in rows)
  trainable = sum(r.trainable_params for r in rows)
  lines.append(f'{"total params":<38}{total:>12,}')
  if trainable != total:
    lines.append(f'{"trainable params":<38}{trainable:>12,}')
    lines.append(f'{"non-trainable params":<38}{total - trainable:>12,}')
  return '\n'.join(lines)
