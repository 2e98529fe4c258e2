"""Best: the most accurate single CNN found here within 15 minutes of training per seed on
the 2 CPU cores (the target: at least 99.6% mean test accuracy over seeds 0-4), and the
ensemble of its seeds.

Four 3x3 convolutions (32, 32, 64, 64 filters, SAME), each batch-normalized before its ReLU,
max pooling 2/2 after the second and the fourth, a dense layer of 256 (batch-normalized),
dropout 0.3 and the output: 871,530 trainable parameters. Adam with a one-cycle schedule
(linear warm-up over the first 10% of the steps to 2e-3, cosine decay to 0), batch 128,
label smoothing 0.1, 8 epochs (3,750 steps); every training image shifted by up to 2 pixels,
rotated by up to 10 degrees and zoomed by 0.9-1.1 (one affine warp on the device); no
validation split, tested on all 10,000 test images.

  TFDS_DATA_DIR=../shared/data/tfds python launch.py --config=experiments/best.py
  # seeds 0-4 as a sweep; its report gives each seed and their ensemble
  python launch.py --config=experiments/best.py --workdir=runs/best --sweep

Measured on 2026-12-01 (AMD EPYC, 2 cores, jax 0.10.2, tcmalloc), seeds 0-4 as the sweep
above, all 10,000 test images: test error 0.36, 0.42, 0.37, 0.32, 0.41% (mean 0.376%, i.e.
99.62% mean accuracy; the 5 seeds' ensemble 0.36%). Seed 0's test error by epoch: 1.59,
0.62, 0.61, 0.45, 0.42, 0.37, 0.38, 0.36%. Training took 852 s for seed 0 on a quiet machine
(about 94 s per epoch; benchmarks/train_loop.py measured the same); seeds 1-4 shared the
cores with test runs (load 3.5-4.5) and took 934, 1034, 1012 and 1400 s, so "within 15
minutes" holds on a quiet machine only. The ensemble buys little here: the seeds' mistakes
are mostly the same hard digits.

Published figures it stands against: 0.21% test error for an ensemble of DropConnect
networks (Wan et al. 2013), about 0.2% for ensembles of simple CNNs with augmentation, about
0.3% for single CNNs with augmentation; T5's deep CNN reaches 0.81% here in 20,000 steps.
"""
from cnn_jax.config import architectures
from experiments import default

EPOCHS = 8.0
STEPS_PER_EPOCH = 60_000 / 128


def get_config(arg=None):
  del arg
  config = default.get_config()
  config.model = architectures.base_model()
  config.model.update(dict(
      name='best', conv_features=(32, 32, 64, 64), conv_kernel_size=(3, 3, 3, 3),
      conv_strides=(1, 1, 1, 1), conv_padding=('SAME',) * 4,
      pool_type=('none', 'max', 'none', 'max'), pool_window=(2, 2, 2, 2),
      pool_strides=(2, 2, 2, 2), pool_padding=('VALID',) * 4, hidden_dims=(256,),
      dense_dropout=0.3, batch_norm='before', kernel_init='he_normal'))
  config.optimizer.update(dict(name='adam', learning_rate=2e-3, schedule='cosine',
                               warmup_steps=int(0.1 * EPOCHS * STEPS_PER_EPOCH)))
  config.train.update(dict(batch_size=128, num_epochs=EPOCHS, log_every_steps=100,
                           label_smoothing=0.1, eval_batch_size=1000))
  config.augment.update(dict(translate=2.0, rotate=10.0, scale=0.1))
  return config


def get_sweep(h, arg=None):
  del arg
  return h.sweep('seed', [0, 1, 2, 3, 4])
