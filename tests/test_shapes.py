"""Convolution arithmetic from T4's lecture, run through the model's own layers."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_jax.config import architectures
from cnn_jax.config import validation
from cnn_jax.layer_impls import padding as paddings
from cnn_jax.model import cnn as models
from cnn_jax.model import shapes

FILTER = [[1, 0, 1], [0, 1, 0], [1, 0, 1]]


def conv_through_model(image, kernel, padding='VALID', stride=1):
  """Applies the CNN's first conv layer, with `kernel` as its weights and no bias."""
  image, kernel = np.asarray(image, np.float32), np.asarray(kernel, np.float32)
  config = architectures.base_model()
  config.update(dict(conv_features=(1,), conv_kernel_size=(kernel.shape[0],),
                     conv_strides=(stride,), conv_padding=(padding,), pool_type=('none',),
                     pool_window=(2,), pool_strides=(2,), pool_padding=('VALID',),
                     activation='linear'))
  validation.validate_model(config, (*image.shape, 1))
  model = models.build_model(config)
  x = jnp.asarray(image)[None, :, :, None]
  params = model.init(jax.random.key(0), x, train=False)['params']
  params['conv0'] = {'kernel': jnp.asarray(kernel)[:, :, None, None], 'bias': jnp.zeros(1)}
  _, state = model.apply({'params': params}, x, train=False, mutable=['intermediates'])
  return np.asarray(state['intermediates']['conv0' + models.OUTPUT_SUFFIX][0][0, :, :, 0])


def rows(*strings):
  return [[int(c) for c in s] for s in strings]


def test_lecture_5x5_example():
  image = rows('11100', '01110', '00111', '00110', '01100')
  np.testing.assert_array_equal(conv_through_model(image, FILTER), [[4, 3, 4], [2, 4, 3], [2, 3, 4]])


def test_lecture_4x4_example():
  image = rows('1110', '0111', '0110', '1100')
  np.testing.assert_array_equal(conv_through_model(image, FILTER), [[4, 3], [3, 4]])


@pytest.mark.parametrize('kernel, centre, expected', [
    ([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], 0.1, 0.0),   # edge kernel, flat patch
    ([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], 0.2, 0.8),   # edge kernel, bright centre
    ([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], 0.1, 0.1),       # sharpen, flat patch
    ([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], 0.2, 0.6),       # sharpen, bright centre
])
def test_lecture_edge_and_sharpen_kernels(kernel, centre, expected):
  patch = np.full((3, 3), 0.1)
  patch[1, 1] = centre
  np.testing.assert_allclose(conv_through_model(patch, kernel), [[expected]], atol=1e-6)


@pytest.mark.parametrize('size, window, stride, padding, expected', [
    (28, 5, 1, 'VALID', 24),           # d - k + 1
    (28, 5, 2, 'VALID', 12),           # floor((d - k) / s) + 1
    (28, 5, 1, 2, 28),                 # floor((d + 2p - k) / s) + 1
    (28, 5, 2, 2, 14),
    (7, 3, 2, 1, 4),
    (28, 5, 2, 'SAME', 14),            # ceil(d / s)
    (7, 5, 2, 'SAME', 4),
    (12, 3, 3, 'VALID', 4),            # the lecture's pooling examples
    (12, 3, 1, 'VALID', 10),
    (14, 3, 3, 'VALID', 4),            # T2's second pooling layer
    (3, 5, 1, 'VALID', 0),             # the window does not fit
])
def test_output_size_formula(size, window, stride, padding, expected):
  assert shapes.output_size(size, window, stride, padding) == expected


@pytest.mark.parametrize('size, window, stride, padding', [
    (28, 5, 2, 2), (28, 3, 1, 'VALID'), (13, 3, 2, 'SAME'), (9, 4, 3, 1), (10, 2, 2, 'VALID')])
def test_formula_matches_real_conv_and_pool_layers(size, window, stride, padding):
  expected = shapes.output_size(size, window, stride, padding)
  out = conv_through_model(np.ones((size, size)), np.ones((window, window)), padding, stride)
  assert out.shape == (expected, expected)
  x = jnp.ones((1, size, size, 1))
  for pool in ('max', 'avg'):
    pooled = models.pool(x, pool, window, stride, padding)
    assert pooled.shape[1:3] == (expected, expected)


def test_thirteen_valid_3x3_convs_fit_28x28_and_a_fourteenth_does_not():
  config = architectures.base_model()
  def stack(n):
    config.update(dict(conv_features=(1,) * n, conv_kernel_size=(3,) * n, conv_strides=(1,) * n,
                       conv_padding=('VALID',) * n, pool_type=('none',) * n,
                       pool_window=(2,) * n, pool_strides=(2,) * n, pool_padding=('VALID',) * n))
    return config
  assert shapes.infer_layer_shapes(stack(13))[12].output_shape == (2, 2, 1)
  with pytest.raises(ValueError, match=r'conv13 .*2x2 input'):
    shapes.infer_layer_shapes(stack(14))


def test_average_pooling_leaves_padding_out_of_the_mean():
  x = jnp.ones((1, 3, 3, 1))
  pooled = models.pool(x, 'avg', 2, 2, 'SAME')
  np.testing.assert_allclose(pooled, 1.0)  # padded cells would pull the edge means below 1


@pytest.mark.parametrize('size, window, stride, expected', [
    (28, 5, 1, (2, 2)), (28, 5, 2, (1, 2)), (14, 2, 2, (0, 0)), (7, 3, 2, (1, 1)), (6, 3, 2, (0, 1))])
def test_same_padding_puts_the_odd_zero_after(size, window, stride, expected):
  before, after = paddings.same_padding(size, window, stride)
  assert (before, after) == expected
  padded = (size + before + after - window) // stride + 1
  assert padded == paddings.output_size(size, window, stride, 'SAME')
