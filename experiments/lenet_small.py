"""T4, the lecture's small LeNet-like CNN (../shared/TUTORIALS.md), exactly.

conv 5x5x10 -> max pool 2 -> conv 5x5x20 -> max pool 2 (valid) -> dense 100 -> dense 10;
38,390 parameters; Glorot uniform weights, zero biases (Keras defaults); RMSprop, learning
rate 1e-4 (Keras' rho 0.9 and epsilon 1e-7), minibatch 128, 50 epochs. The 60,000 training
images are split at random (split_seed 0) into 50,000 train and 10,000 validation; test on
the 10,000 test images.

  TFDS_DATA_DIR=../shared/data/tfds python launch.py --config=experiments/lenet_small.py

Tutorial: 98.83% test accuracy (1.17% error), validation 98.8%, test loss 0.0357.
Here, seeds 0-4 (python -m cnn_jax.reproduce): 1.15 ± 0.04% test error (min 1.11, max
1.21), validation error 1.46% on average, test loss 0.035-0.042; 504-671 s of training per
run on 2 CPU cores (about 12 s per epoch).
"""
from cnn_jax.config import architectures
from experiments import default


def get_config():
  config = default.get_config()
  config.model = architectures.lenet_small()
  config.data.validation = 'train_random'
  config.data.num_validation = 10_000
  config.optimizer.update(dict(name='rmsprop', learning_rate=1e-4, rms_decay=0.9, eps=1e-7))
  config.train.update(dict(batch_size=128, num_epochs=50.0, log_every_steps=100,
                           checkpoint_every_epochs=5))
  return config
