"""T5's deep CNN (../shared/TUTORIALS.md), exactly.

conv 5x5x32 -> max pool 2/2 -> conv 5x5x64 -> max pool 2/2 (all same) -> dense 1024 ->
dropout 0.5 -> dense 10; 3,274,634 parameters; weights from a normal truncated at two
standard deviations (std 0.1), biases 0.1; Adam, learning rate 1e-4 (TF1's epsilon 1e-8),
minibatch 50, 1,100 steps. The first 5,000 training images are validation, the other
55,000 train; test on the 10,000 test images.

  TFDS_DATA_DIR=../shared/data/tfds python launch.py --config=experiments/tf_deep_cnn.py

Tutorial: 96.73% test accuracy after 1,100 steps (3.27% error). Here, over seeds 0-9
(python -m cnn_jax.reproduce --only=tf_deep_cnn --seeds=10): 3.47 ± 0.21% test error (min
3.12, max 3.73), about 120 s of training per run on 2 CPU cores; one pass over the 55,000
leaves a seed-to-seed spread that covers 3.27% (docs/REPRODUCTION.md). The notebook's full
run is 20,000 steps (0.81% test error for seed 0, 1,968 s of training here):

  python launch.py --config=experiments/tf_deep_cnn.py:variant=full
"""
from cnn_jax.config import architectures
from cnn_jax.config import arguments
from experiments import default

STEPS = {'tutorial': 1_100, 'full': 20_000}


def get_config(arg=None):
  args = arguments.parse(arg, variant='tutorial')
  config = default.get_config()
  config.model = architectures.tf_deep_cnn()
  config.data.validation = 'train_head'
  config.data.num_validation = 5_000
  config.optimizer.update(dict(name='adam', learning_rate=1e-4, eps=1e-8))
  steps = STEPS[arguments.choose(args.variant, 'variant', tuple(STEPS))]
  config.train.update(dict(batch_size=50, num_train_steps=steps, log_every_steps=100))
  return config
