"""Speedrun: the fastest recipe found to 99.0% mean MNIST test accuracy on 2 CPU cores.

(draft: figures to be measured)
"""
from cnn_jax.model import architectures
from experiments import default


def get_config(arg=None):
  del arg
  config = default.get_config()
  config.model = architectures.base_model()
  config.model.update(dict(
      name='speedrun', conv_features=(16, 32), conv_kernel_size=(5, 5), conv_strides=(1, 1),
      conv_padding=('SAME', 'SAME'), pool_type=('max', 'max'), pool_window=(2, 2),
      pool_strides=(2, 2), pool_padding=('VALID', 'VALID')))
  config.optimizer.update(dict(name='adam', learning_rate=3e-3, schedule='cosine',
                               warmup_steps=90))
  config.train.update(dict(batch_size=128, num_epochs=1.0, log_every_steps=100,
                           checkpoint_every_epochs=0, eval_batch_size=2000))
  return config
