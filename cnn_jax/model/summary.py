"""A Keras-style model summary: per layer the output shape and parameter count, then the total.

Shapes come from the real module (its sown intermediates, traced abstractly, so nothing is
computed), parameter counts from the real parameters.
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
  params: int


def model_summary(model: models.CNN, params, input_shape=(28, 28, 1)) -> list[SummaryRow]:
  def forward(p, x):
    _, state = model.apply({'params': p}, x, train=False, mutable=['intermediates'])
    return state['intermediates']

  # Pytrees come back with sorted keys, so the layer order is taken from the static walk
  # of the config (shapes.infer_layer_shapes) while each shape is read from the real module.
  outputs = jax.eval_shape(forward, params, jnp.zeros((1, *input_shape), jnp.float32))
  rows = []
  for layer in shapes.infer_layer_shapes(model, input_shape):
    (value,) = outputs[layer.name + models.OUTPUT_SUFFIX]  # sow stores a 1-tuple per call
    rows.append(SummaryRow(layer.name, (None, *value.shape[1:]),
                           models.count_params(params.get(layer.name, {}))))
  return rows


def format_summary(rows: list[SummaryRow], title: str = '') -> str:
  lines = [f'Model: {title}' if title else 'Model summary']
  header = f'{"layer":<16}{"output shape":<22}{"params":>12}'
  lines += [header, '-' * len(header)]
  for row in rows:
    shape = '(' + ', '.join('None' if d is None else str(d) for d in row.output_shape) + ')'
    lines.append(f'{row.name:<16}{shape:<22}{row.params:>12,}')
  lines.append('-' * len(header))
  lines.append(f'{"total params":<38}{sum(r.params for r in rows):>12,}')
  return '\n'.join(lines)
