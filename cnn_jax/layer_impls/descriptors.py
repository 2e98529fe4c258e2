"""A convolution or pooling layer as the timing and the cache see it: its input shape,
window, stride and padding, and nothing of the config it came from (model/timed_layers.py
builds these from a model config). Its key names a cache entry, so two models with a layer of
the same shape share one measurement."""
from __future__ import annotations

import dataclasses
import json


@dataclasses.dataclass(frozen=True)
class ConvLayer:
  """A convolution: NHWC input of `in_shape`, a window x window kernel to `features`."""
  in_shape: tuple  # (H, W, C)
  features: int
  window: int
  stride: int
  padding: object  # 'SAME', 'VALID' or an int
  input_grad: bool  # False for the first layer: its input is data, its gradient never computed

  def key(self, batch: int, members: int) -> str:
    return json.dumps(['conv', batch, members, *self.in_shape, self.features, self.window,
                       self.stride, self.padding, self.input_grad])

  def describe(self) -> str:
    return (f'{"x".join(map(str, self.in_shape))} -> {self.features}, '
            f'{self.window}x{self.window}/{self.stride} {self.padding}')


@dataclasses.dataclass(frozen=True)
class PoolLayer:
  """A pooling: 'max' or 'avg' over window x window, NHWC input of `in_shape`."""
  in_shape: tuple
  kind: str
  window: int
  stride: int
  padding: object

  def key(self, batch: int, members: int) -> str:
    return json.dumps(['pool', batch, members, *self.in_shape, self.kind, self.window,
                       self.stride, self.padding])

  def describe(self) -> str:
    return (f'{"x".join(map(str, self.in_shape))}, {self.kind} {self.window}/{self.stride} '
            f'{self.padding}')
