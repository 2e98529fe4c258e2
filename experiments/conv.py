"""T1, the CNTK tutorial's convolution-only CNN (../shared/TUTORIALS.md), exactly.

conv 5x5x8 stride 2 (same) -> conv 5x5x16 stride 2 (same) -> dense 10; 11,274 parameters;
Glorot uniform weights, zero biases; plain SGD, learning rate 0.2, minibatch 64, 10 passes
over the 60,000 training images (9,375 steps); evaluated on all 10,000 test images (the
notebook scored 9,728 of them).

  TFDS_DATA_DIR=../shared/data/tfds python launch.py --config=experiments/conv.py

Tutorial: 1.57% test error (30.4 s of training). Here (seed 0, all 10,000 test images):
1.23% test error, 30.7 s of training on 2 CPU cores with tcmalloc, jax 0.10.2. Over seeds
0-4 (python -m cnn_jax.reproduce): 1.44 ± 0.16% (min 1.23, max 1.64).
"""
from cnn_jax.config import architectures
from experiments import default


def get_config():
  config = default.get_config()
  config.model = architectures.cntk_conv()
  return config
