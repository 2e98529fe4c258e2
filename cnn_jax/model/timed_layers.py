"""A model config's convolutions and poolings as layer_impls sees them (its descriptors, with
their input shapes), for the choice of their implementations: which layers a model has and
what shape each gets is model knowledge, the timing and the choice are not."""
from __future__ import annotations

from cnn_jax.layer_impls.descriptors import ConvLayer
from cnn_jax.layer_impls.descriptors import PoolLayer
from cnn_jax.model import shapes


def named_layers(model_cfg, image_shape) -> dict[str, ConvLayer | PoolLayer]:
  """{'conv0': ConvLayer, 'pool0': PoolLayer, 'conv1': ...} in model order, for a validated
  model config and images of `image_shape`: each conv layer and the pooling after it, from
  the model's layer list (model/layer_list.py, via its shapes)."""
  named = {}
  for shaped in shapes.infer_layer_shapes(model_cfg, image_shape):
    layer = shaped.layer
    if layer.kind not in ('conv', 'max_pool', 'avg_pool'):
      continue
    padding = shapes.parse_padding(layer.padding, 'padding')
    if layer.kind == 'conv':
      named[layer.name] = ConvLayer(tuple(shaped.input_shape), layer.features, layer.window,
                                    layer.stride, padding, input_grad=layer.index > 0)
    else:
      named[layer.name] = PoolLayer(tuple(shaped.input_shape), layer.kind[:3], layer.window,
                                    layer.stride, padding)
  return named
