"""T5's softmax regression (../shared/TUTORIALS.md), exactly.

784 -> 10, weights and biases initialised to zero (7,850 parameters); cross-entropy;
gradient descent, learning rate 0.5; 1,000 steps of minibatch 50. The first 5,000 training
images are held out for validation, the other 55,000 train; test on the 10,000 test images.
(TFDS stores MNIST in its own shuffled order, so "the first 5,000" are not the same images
as in the tutorial's IDX files.)

  TFDS_DATA_DIR=../shared/data/tfds python launch.py --config=experiments/softmax.py

Tutorial: 91.87% test accuracy (8.13% error). Here, seeds 0-4: 9.28 ± 0.58% error (min 8.71);
20 seeds: 8.94 ± 0.52%. With minibatch 100 (TensorFlow's beginners' recipe for this model)
8.29 ± 0.20% over 10 seeds: see docs/REPRODUCTION.md for why the figures differ.
"""
from cnn_jax.config import architectures
from experiments import default


def get_config():
  config = default.get_config()
  config.model = architectures.tf_softmax()
  config.data.validation = 'train_head'
  config.data.num_validation = 5_000
  config.optimizer.update(dict(name='sgd', learning_rate=0.5))
  config.train.update(dict(batch_size=50, num_train_steps=1_000, log_every_steps=100))
  return config
