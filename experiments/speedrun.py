"""Speedrun: the fastest recipe found here to 99% mean MNIST test accuracy on 2 CPU cores.

Two stride-2 convolutions (5x5x16, 3x3x32, SAME; no pooling, which costs more on CPU than the
stride saves), a dense layer of 128 and the output, each hidden layer batch-normalized before
its ReLU (flax momentum 0.9, i.e. PyTorch's 0.1; epsilon 1e-5): 207,530 trainable parameters
and 352 batch statistics. Adam, one cycle (linear warm-up over the first 94 steps, 20%, to
3e-2, then cosine decay to 0), label smoothing 0.1, batch 128, one epoch (469 steps); no
augmentation, no validation split, tested on all 10,000 test images. The warm-up is a step
count: with --config.train.num_epochs=E set it to 0.2 * E * 469 as well.

  TFDS_DATA_DIR=../shared/data/tfds python launch.py --config=experiments/speedrun.py \
      --config.seed=S

Expected: test accuracy 99.13 / 99.09 / 99.05 / 99.03 / 99.02% for seeds 0-4, mean 99.06%,
in 5-8 s whole process on a quiet machine with warm caches.

Measured 2026-12-01 (AMD EPYC, family 25 model 17, 2 cores under KVM, jax 0.10.2, torch
2.14.1, tcmalloc; `python benchmarks/vs_pytorch.py --models= --repeats=0`, whole process per
seed, cold command to printed result, warm caches, the two sides interleaved seed by seed;
1-minute load average 1.3-1.8 with the benchmark itself counted):
| seed | load | cnn_jax s | cnn_jax accuracy | PyTorch s | PyTorch accuracy |
| 0 | 1.28 | 5.4 | 99.13% | 8.5 | 99.06% |
| 1 | 1.38 | 6.1 | 99.09% | 7.9 | 99.12% |
| 2 | 1.37 | 5.6 | 99.05% | 8.0 | 99.06% |
| 3 | 1.72 | 5.4 | 99.03% | 6.9 | 99.09% |
| 4 | 1.84 | 5.7 | 99.02% | 6.6 | 99.17% |
| mean | 1.52 | 5.7 | 99.06% | 7.6 | 99.10% |
cnn_jax takes 0.74x PyTorch's time (its twin: BatchNorm2d/1d in the same places, momentum 0.1,
the same schedule and label smoothing). Run again at once (load 0.94-1.35): the same accuracies,
cnn_jax 6.5 / 6.6 / 6.4 / 5.7 / 5.7 s, mean 6.2 s, PyTorch 7.7 / 8.5 / 7.7 / 7.2 / 7.4 s, mean
7.7 s: 0.80x. The first run on an empty cache took 15.0 and 15.9 s (data decoded, layers
measured, programs compiled); it measures the layers afresh and may choose others, which moved
seed 0 to 99.07-99.13% in three such runs. With --speedrun_overrides=augment.translate=1 (both
sides augmenting every example): cnn_jax 99.13% in 7.7 s, PyTorch 99.09% in 8.1 s (0.95x; load
1.35-1.68). Under other engineers' load the same process took 9-15 s (load 4-7): quote the load
with any figure.

Where a quiet run's 7.2 s went (load 1.3): 1.3 s starting Python and importing JAX and flax
(the tcmalloc re-exec included), 0.45 s config, data and layer choice, 4.1 s training (0.5 s
of it the first step: the compiled program read from the cache), 0.5 s evaluating the test
set, 0.35 s its probabilities again for test_predictions.npz and results.json, 0.5 s exiting.
CPU milliseconds per train step (both cores summed, medians of 3 interleaved rounds, load 4-4.5,
which inflates them alike): no batch norm 7.9, batch norm 11.7, batch norm with translate=1
augmentation 14.6; with 3x3 first kernels 8.9, with 8/32 filters 8.5.

A seed's accuracy depends (by up to 0.1%) on which layer implementations this machine's timing
chose (model.conv_impl 'auto', cached): with conv1 as xla/im2col/shifted instead of
im2col/shifted/im2col, seeds 0-4 gave 99.10 / 99.07 / 99.02 / 99.17 / 98.97%, mean 99.07%.

What was tried (mean test accuracy over the seeds given, train seconds and whole-process
seconds per seed, the 1-minute load average while they ran; batch norm 'before' (BN), label
smoothing (LS) 0.1 and warm-up 20% of the steps unless said; the machine was shared, so
seconds at loads of 5-10 are 1.5-2.5x those of a quiet machine; compare rows of one load):
| recipe | seeds | accuracy | train s | whole s | load |
| previous record: no BN, no LS, Adam 4e-3, 4 epochs | 0,1 | 98.94 | 15.7 | 20.3 | 2-3 |
| 2 epochs, no BN, no LS, 4e-3 | 0,1 | 98.69 | 13.1 | 17.9 | 6 |
| 2 epochs, BN before, no LS, 4e-3 | 0,1 | 98.97 | 14.1 | 20.5 | 4-5 |
| 2 epochs, BN after, no LS, 4e-3 | 0,1 | 98.91 | 13.8 | 17.8 | 5 |
| 2 epochs, BN, no LS, 4e-3, translate 1 px | 0,1 | 99.16 | 21.5 | 28.4 | 8.5 |
| 2 epochs, BN, 4e-3 | 0,1 | 99.08 | 16.7 | 22.9 | 6.5 |
| 3 epochs, BN, no LS, 4e-3 | 0,1 | 99.09 | 20.8 | 28.4 | 7 |
| 1 epoch, BN, no LS, 4e-3 | 0,1 | 98.64 | 10.7 | 16.9 | 6-7 |
| 2 epochs, BN, no LS, 1e-2 | 0,1 | 99.10 | 20.1 | 24.6 | 7 |
| 2 epochs, BN after, no LS, 1e-2 | 0,1 | 99.06 | 21.1 | 25.2 | 7 |
| 2 epochs, no BN, no LS, 1e-2 | 0,1 | 98.90 | 11.9 | 19.0 | 8-9 |
| 2 epochs, BN, no LS, 2e-2 | 0,1 | 99.16 | 14.9 | 18.9 | 9 |
| 2 epochs, BN, no LS, batch 256, 8e-3 / 2e-2 | 0,1 | 99.00 / 99.04 | 22-24 | 27-28 | 7-8 |
| 2 epochs, BN, 1e-2 / 2e-2 | 0,1 | 99.16 / 99.25 | 13 | 17-18 | 9 |
| 2 epochs, BN, 1e-2, translate 1 px | 0,1 | 99.23 | 25.7 | 31.2 | 9 |
| 1.5 epochs, BN, no LS, 1e-2 | 0,1 | 99.06 | 13.7 | 17.8 | 8 |
| 1.5 epochs, BN, 1e-2 / 2e-2 / 3e-2 | 0,1 | 99.13 / 99.16 / 99.18 | 10-15 | 15-20 | 7-10 |
| 1.5 epochs, BN, batch 256, 1e-2 | 0,1 | 99.00 | 16.9 | 21.6 | 9 |
| 1.25 epochs, BN, 2e-2 | 0-4 | 99.14 | 9.5 | 13.9 | 7 |
| 1.25 epochs, BN, 3e-2 | 0-4 | 99.16 | 8.5 | 13.3 | 5.5-7 |
| 1.25 epochs, BN, 3e-2, first kernel 3x3 | 0,1 | 99.06 | 4.0 | 6.8 | 3 |
| 1.25 epochs, BN, 3e-2, 8/32 filters | 0,1 | 99.09 | 4.0 | 6.3 | 3 |
| 1 epoch, BN, no LS, 1e-2 | 0,1 | 98.86 | 9.8 | 13.4 | 7.5 |
| 1 epoch, BN, 2e-2 (warm-up 10% / 20% / 30%) | 0,1 | 99.05 / 99.05 / 99.04 | 8-11 | 12-14 | 7-9 |
| 1 epoch, BN, 2e-2, translate 1 px | 0,1 | 99.15 | 10.9 | 15.6 | 7 |
| 1 epoch, BN, batch 96 / 64, 2e-2 | 0,1 | 99.08 / 99.08 | 7-9 | 14-15 | 6.5-7 |
| 1 epoch, BN, batch 64, 1e-2 | 0,1 | 99.03 | 7.2 | 11.7 | 6.5 |
| 1 epoch, BN, batch 256, 4e-2 / 6e-2 | 0,1 | 98.90 / 98.91 | 11-12 | 15-16 | 7 |
| 1 epoch, BN, 4e-2 | 0,1 | 99.08 | 7.1 | 11.0 | 7 |
| this file: 1 epoch, BN, LS 0.1, 3e-2 | 0-4 | 99.06 | 3.8 | 6.4 | 1.5 |
| this file, no BN | 0-4 | 98.83 | 3.6 | 7.5 | 1.5 |
| this file, no BN, 1e-2 / 4e-3 | 0,1 | 98.72 / 98.40 | 3.3 | 5.9 | 1.8 |
| this file, BN after the activation | 0,1 | 98.93 | 4.7 | 7.5 | 1.8 |
| this file, no LS | 0,1 | 98.94 | 4.0 | 6.7 | 1.8 |
| this file, LS 0.05 | 0,1 | 99.11 | 11.1 | 15.8 | 4.7 |
| 1 epoch, BN, LS 0.2 / 0.1, 2e-2 | 0,1 | 98.97 / 99.05 | 10.6 / 8.4 | 15.2 / 12.5 | 7-9.5 |
| this file, translate 1 px | 0-4 | 99.13 | 5.3 | 8.1 | 1.9 |
| this file, rotate 10 deg and scale 0.1 | 0,1 | 99.12 | 5.6 | 8.2 | 1.9 |
| this file, hidden 256 / no hidden layer | 0,1 | 99.11 / 98.68 | 12 / 9 | 21 / 17 | 7 |
| this file, 24/48 filters | 0,1 | 99.10 | 16.4 | 28.2 | 7.5 |
| this file, first kernel 3x3 / 8/32 filters | 0,1 | 98.98 / 98.91 | 5.0 / 4.2 | 8.1 / 7.3 | 3 |
| this file, Adam b2 0.99 / AdamW decay 0.05 | 0,1 | 99.09 / 99.06 | 10-11 | 15-19 | 4-5 |
| this file, BN momentum 0.99 | 0,1 | 99.04 | 10.6 | 15.4 | 4.3 |
| this file, Nesterov SGD 0.1 / 0.3 | 0,1 | 98.75 / 98.97 | 7.6 | 12-16 | 4.5 |
What helped: batch normalization before the activation (+0.23 at this recipe, 98.83 -> 99.06
over 5 seeds; +0.2-0.3 at 2 epochs; after the activation it gains less: 98.93 against 99.11 on
seeds 0 and 1), and it lets the learning rate rise 4e-3 -> 3e-2; label smoothing 0.1 (+0.17);
the one-cycle schedule at a high peak. Augmentation helps accuracy a little (translate 1 px:
+0.07 at 1 epoch over 5 seeds, +0.19 at 2 epochs) but its per-example resampling costs about 25%
more per step, as much as the extra quarter epoch (99.16%) that gains more; so the record goes
without it. Batch 256 was no better and mostly 0.1-0.2 worse at equal epochs; batch 64 or 96
gained nothing over 128. For a margin above 99% rather than speed: 1.25 epochs at 3e-2 with
warm-up 117 gives 99.16% (seeds 0-4: 99.15 / 99.12 / 99.13 / 99.19 / 99.20) for 1-2 s more (with
one more test evaluation).
"""
from cnn_jax.config import architectures
from experiments import default


def get_config(arg=None):
  del arg
  config = default.get_config()
  config.model = architectures.base_model()
  config.model.update(dict(
      name='speedrun', conv_features=(16, 32), conv_kernel_size=(5, 3), conv_strides=(2, 2),
      conv_padding=('SAME', 'SAME'), pool_type=('none', 'none'), pool_window=(2, 2),
      pool_strides=(2, 2), pool_padding=('VALID', 'VALID'), hidden_dims=(128,),
      batch_norm='before'))  # flax's momentum 0.9 (PyTorch's 0.1) and epsilon 1e-5
  config.optimizer.update(dict(name='adam', learning_rate=3e-2, schedule='cosine',
                               warmup_steps=94))
  config.train.update(dict(batch_size=128, num_epochs=1.0, label_smoothing=0.1,
                           log_every_steps=469, checkpoint_every_epochs=0,
                           eval_batch_size=2000,
                           pictures='none'))  # a timed record: the pictures come after
  return config
