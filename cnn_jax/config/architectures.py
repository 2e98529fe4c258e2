"""The tutorial networks of ../shared/TUTORIALS.md as `model` configs for `models.CNN`.

Each function returns a fresh ConfigDict holding every model field, so an experiment file
starts from one of these and command-line overrides can change any field. The parameter
counts in the docstrings are checked by tests/test_architectures.py. They live with the
config data, not in model/: each is a `model` section built from the field table's defaults,
and model/ reads no config module (config/ reads model/'s choices).
"""
import ml_collections

from cnn_jax.config import fields


def base_model() -> ml_collections.ConfigDict:
  """All model fields with neutral defaults (config/fields.py): a softmax regression
  (784 -> 10)."""
  return fields.section_defaults('model')


def _with(**fields) -> ml_collections.ConfigDict:
  config = base_model()
  config.update(fields)
  return config


def cntk_conv():
  """T1: two 5x5 stride-2 convs (8, 16 filters), dense 10. 11,274 parameters."""
  return _with(name='cntk_conv', conv_features=(8, 16), conv_kernel_size=(5, 5),
               conv_strides=(2, 2), conv_padding=('SAME', 'SAME'), pool_type=('none', 'none'),
               pool_window=(2, 2), pool_strides=(2, 2), pool_padding=('VALID', 'VALID'))


def cntk_pool():
  """T2: conv 5x5x8, max pool 2/2, conv 5x5x16, max pool 3/3, dense 10. 5,994 parameters."""
  return _with(name='cntk_pool', conv_features=(8, 16), conv_kernel_size=(5, 5),
               conv_strides=(1, 1), conv_padding=('SAME', 'SAME'), pool_type=('max', 'max'),
               pool_window=(2, 3), pool_strides=(2, 3), pool_padding=('VALID', 'VALID'))


def cntk_pool_slides():
  """T2's slides variant: second conv at stride 2, then max pool 2/2 -> 3x3x16. 4,874."""
  return _with(name='cntk_pool_slides', conv_features=(8, 16), conv_kernel_size=(5, 5),
               conv_strides=(1, 2), conv_padding=('SAME', 'SAME'), pool_type=('max', 'max'),
               pool_window=(2, 2), pool_strides=(2, 2), pool_padding=('VALID', 'VALID'))


def keras_cnn():
  """T3: conv 3x3x32, conv 3x3x64 (valid), max pool 2, dropout .25, dense 128, dropout .5.

  1,199,882 parameters.
  """
  return _with(name='keras_cnn', conv_features=(32, 64), conv_kernel_size=(3, 3),
               conv_strides=(1, 1), conv_padding=('VALID', 'VALID'),
               pool_type=('none', 'max'), pool_window=(2, 2), pool_strides=(2, 2),
               pool_padding=('VALID', 'VALID'), conv_dropout=0.25, hidden_dims=(128,),
               dense_dropout=0.5)


def lenet_small():
  """T4: conv 5x5x10, max pool 2, conv 5x5x20, max pool 2 (valid), dense 100. 38,390."""
  return _with(name='lenet_small', conv_features=(10, 20), conv_kernel_size=(5, 5),
               conv_strides=(1, 1), conv_padding=('VALID', 'VALID'), pool_type=('max', 'max'),
               pool_window=(2, 2), pool_strides=(2, 2), pool_padding=('VALID', 'VALID'),
               hidden_dims=(100,))


def tf_softmax():
  """T5: softmax regression 784 -> 10, zero-initialised. 7,850 parameters."""
  return _with(name='tf_softmax', kernel_init='zeros', bias_init='zeros')


def tf_deep_cnn():
  """T5: conv 5x5x32, pool, conv 5x5x64, pool (same), dense 1024, dropout .5. 3,274,634."""
  return _with(name='tf_deep_cnn', conv_features=(32, 64), conv_kernel_size=(5, 5),
               conv_strides=(1, 1), conv_padding=('SAME', 'SAME'), pool_type=('max', 'max'),
               pool_window=(2, 2), pool_strides=(2, 2), pool_padding=('SAME', 'SAME'),
               hidden_dims=(1024,), dense_dropout=0.5, kernel_init='truncated_normal',
               kernel_init_std=0.1, bias_init='constant', bias_init_value=0.1)


TUTORIAL_MODELS = {
    'cntk_conv': cntk_conv,
    'cntk_pool': cntk_pool,
    'cntk_pool_slides': cntk_pool_slides,
    'keras_cnn': keras_cnn,
    'lenet_small': lenet_small,
    'tf_softmax': tf_softmax,
    'tf_deep_cnn': tf_deep_cnn,
}
