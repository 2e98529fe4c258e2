"""T2, the CNTK tutorial's CNN with max pooling (../shared/TUTORIALS.md), exactly.

conv 5x5x8 (same) -> max pool 2/2 -> conv 5x5x16 (same) -> max pool 3/3 -> dense 10;
5,994 parameters; Glorot uniform weights, zero biases; plain SGD, learning rate 0.2,
minibatch 64, 10 passes over the 60,000 training images (9,375 steps); no validation split;
evaluated on all 10,000 test images (the notebook scored 9,728 of them).

  TFDS_DATA_DIR=../shared/data/tfds python launch.py --config=experiments/pool.py

Tutorial: 1.05% test error. Expected here: about 1.0-1.3% test error (seed 0), about
10 s per epoch on 2 CPU cores with tcmalloc.
"""
from experiments import default


def get_config():
  return default.get_config()  # the base config is T2's recipe
