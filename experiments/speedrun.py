"""Speedrun: the fastest recipe found here towards 99% MNIST test accuracy on 2 CPU cores.

Two stride-2 convolutions (5x5x16, 3x3x32, SAME; no pooling, which costs more on CPU than the
stride saves), a dense layer of 128 and the output: 207,178 parameters. Adam, one cycle
(linear warm-up over the first 375 steps, 20%, to 4e-3, then cosine decay to 0), batch 128,
4 epochs (1,875 steps); no validation split, tested on all 10,000 test images.

  TFDS_DATA_DIR=../shared/data/tfds python launch.py --config=experiments/speedrun.py

Measured (AMD EPYC, 2 cores, jax 0.10.2, tcmalloc, 2026-11-23; benchmarks/vs_pytorch.py,
whole process per seed, warm caches): test accuracy 98.91 / 99.00 / 98.85 / 99.09 / 98.91%
for seeds 0-4, mean 98.95%, in 13.4 / 13.3 / 17.2 / 15.6 / 16.3 s, mean 15.2 s. The same
recipe as a PyTorch script, side by side: mean 98.96% in 21.5 s, so cnn_jax takes 0.71x its
time. The first run on an empty cache took 26.6 s (data decoded, layers measured, programs
compiled). Short of the issue's target (99.0% mean in at most 12 s).

What was tried (seeds 0 and 1, mean test accuracy, training seconds on the same machine):
- 1 epoch: 16/32 filters with 2/2 max pooling, no hidden layer, 98.5% in about 48 s (with
  another process running); 16/32 at stride 2 (no pooling, no hidden layer) 97.5% in 4 s;
  with a hidden 128 98.1% in 5 s; 32/64 at stride 2 with hidden 128 98.3% in 12 s; 24/48
  5x5 at stride 2 98.5% in 15 s; batch 64 instead of 128: 98.0%.
- 2 epochs: 16/32 stride 2 + hidden 128 98.7% in 12 s; 32/64 98.9% in 14 s.
- 3 epochs: 16/32 98.85% in 10 s; 32/64 98.97% in 20 s.
- 4 epochs of 16/32 (this file): 98.95% in 12-14 s of training.
Batch norm and data augmentation, which the fast published recipes use, are not in this
codebase's model; they are the next things to try.
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
                           checkpoint_every_epochs=0, eval_batch_size=2000,
                           pictures='none'))  # a timed record: the pictures come after
  return config
