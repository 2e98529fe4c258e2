"""T2, the CNTK tutorial's CNN with max pooling (../shared/TUTORIALS.md), exactly.

conv 5x5x8 (same) -> max pool 2/2 -> conv 5x5x16 (same) -> max pool 3/3 -> dense 10;
5,994 parameters; Glorot uniform weights, zero biases; plain SGD, learning rate 0.2,
minibatch 64, 10 passes over the 60,000 training images (9,375 steps); no validation split;
evaluated on all 10,000 test images (the notebook scored 9,728 of them).

  TFDS_DATA_DIR=../shared/data/tfds python launch.py --config=experiments/pool.py

Tutorial: 1.05% test error. Here (seed 0, all 10,000 test images): 1.15% test error,
98.7 s of training (about 10 s per epoch) on 2 CPU cores with tcmalloc, jax 0.10.2.
Over seeds 0-4 (python -m cnn_jax.reproduce): 1.11 ± 0.12% (min 0.93, max 1.23).

The slides' variant (second conv at stride 2, then max pool 2/2 -> 3x3x16; 4,874
parameters; "about 1%"), same recipe:

  python launch.py --config=experiments/pool.py:variant=slides

Here, seeds 0-4: 1.40 ± 0.08% (min 1.31, max 1.49), worse than T2 on every seed; see
docs/REPRODUCTION.md.

Sweeps, each on the tutorial's training recipe (get_sweep below):

  # The notebook's questions: activation (relu, sigmoid, leaky_relu, tanh) x pooling
  # (max, average) x seeds 0, 1: 16 trials.
  python launch.py --config=experiments/pool.py --workdir=runs/pool-questions --sweep
  # The design's architecture axes: filters (8/16, 16/32) x first-conv stride (1, 2) x
  # pooling (max, average): 8 trials.
  python launch.py --config=experiments/pool.py:sweep=arch --workdir=runs/pool-arch --sweep
  # What batch normalization (none, before or after the activation) and augmentation (off,
  # or shifts of up to 2 pixels, rotations up to 10 degrees and zooms of 0.9-1.1) buy T2:
  # 12 trials, the seeds of each configuration trained as one vmapped group; the report
  # gives each configuration's ensemble of its two seeds. docs/sweeps/pool-modern/.
  python launch.py --config=experiments/pool.py:sweep=modern --workdir=runs/pool-modern \
      --sweep --workers=2

A search (Optuna, sweeps/search.py): which learning rate, momentum, batch size and filter
counts are best for T2? SGD with momentum, 3 epochs on 50,000 training images, chosen on a
random 10,000-image validation split (the test error of the best is reported apart); TPE
with median pruning at each epoch end, 24 configurations, 2 workers on the 2 cores:

  python launch.py --config=experiments/pool.py:sweep=search --workdir=runs/pool-search \
      --sweep --workers=2
  python -m cnn_jax.report --workdir=runs/pool-search

The same command with `,sampler=random`, `,pruner=none`, `,trials=N` or `,seconds=S` after
`sweep=search` changes the search; docs/sweeps/pool-search/ holds the report of one run.

Population-based training (sweeps/pbt.py) on the search's recipe: 8 members as one vmapped
program, their learning rates and momenta drawn from the search's ranges, ranked on the
validation split every half epoch; the bottom quarter takes the state of a member from the
top quarter and perturbs its numbers (x0.8 or x1.2, or drawn again). Batch size and filters
change the program, so PBT keeps T2's (64, 8/16):

  python launch.py --config=experiments/pool.py:sweep=pbt --workdir=runs/pool-pbt --sweep
  python -m cnn_jax.report --workdir=runs/pool-pbt
  python launch.py --config=runs/pool-pbt/best_member.py   # the best member's history alone

Here (Intel Xeon, 2 cores, no tcmalloc): 9 min 46 s; best member 1.60% validation error, 1.17%
test error (reported apart); docs/sweeps/pool-pbt/ holds its report, docs/SWEEPS.md the story.
"""
from cnn_jax.config import architectures
from cnn_jax.config import arguments
from experiments import default

VARIANTS = ('tutorial', 'slides')
SWEEPS = ('questions', 'arch', 'search', 'modern', 'pbt')
# What `:sweep=search,...` may change (sweeps/hyper.py's h.search fields).
SEARCH_DEFAULTS = dict(sampler='tpe', pruner='median', trials=24, seconds=0.0)


def parse(arg):
  return arguments.parse(arg, variant='tutorial', sweep='questions', **SEARCH_DEFAULTS)


def get_config(arg=None):
  args = parse(arg)
  config = default.get_config()  # the base config is T2's recipe
  if arguments.choose(args.variant, 'variant', VARIANTS) == 'slides':
    config.model = architectures.cntk_pool_slides()
  if arguments.choose(args.sweep, 'sweep', SWEEPS) in ('search', 'pbt'):
    config.optimizer.name = 'momentum'
    config.data.validation, config.data.num_validation = 'train_random', 10_000
    config.train.num_epochs = 3.0
    config.train.pictures = 'end'
  return config


def get_sweep(h, arg=None):
  args = parse(arg)
  if args.sweep == 'search':
    return h.search({
        'optimizer.learning_rate': h.loguniform(0.01, 1.0),
        'optimizer.momentum': h.uniform(0.0, 0.95),
        'train.batch_size': h.choice([32, 64, 128, 256]),
        'model.conv_features': h.choice([(4, 8), (8, 16), (16, 32), (32, 64)]),
    }, **{k: args[k] for k in SEARCH_DEFAULTS})
  if args.sweep == 'pbt':
    return h.pbt({'optimizer.learning_rate': h.loguniform(0.01, 1.0),
                  'optimizer.momentum': h.uniform(0.05, 0.95)},
                 population=8, interval_epochs=0.5, quantile=0.25)
  if args.sweep == 'modern':
    return h.product([
        h.sweep('model.batch_norm', ['none', 'before', 'after']),
        h.zip([h.sweep('augment.translate', [0.0, 2.0]), h.sweep('augment.rotate', [0.0, 10.0]),
               h.sweep('augment.scale', [0.0, 0.1])]),
        h.sweep('seed', [0, 1]),
    ])
  if args.sweep == 'questions':
    return h.product([
        h.sweep('model.activation', ['relu', 'sigmoid', 'leaky_relu', 'tanh']),
        h.sweep('model.pool_type', [('max', 'max'), ('avg', 'avg')]),
        h.sweep('seed', [0, 1]),
    ])
  return h.product([
      h.sweep('model.conv_features', [(8, 16), (16, 32)]),
      h.sweep('model.conv_strides', [(1, 1), (2, 1)]),
      h.sweep('model.pool_type', [('max', 'max'), ('avg', 'avg')]),
  ])
