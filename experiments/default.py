"""Base config: every field an experiment can set, with the T2 (CNTK pooling) recipe.

Experiment files start from `get_config()` here and change a few fields. Any field can be
overridden on the command line, e.g.

  python launch.py --config=experiments/default.py --config.model.activation=tanh

Derived quantities (steps per epoch, total steps) are computed where they are used, so an
override of batch size or length carries through.
"""
import ml_collections

from cnn_jax.model import architectures


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0  # parameters, dropout and the shuffling order all derive from it

  config.data = ml_collections.ConfigDict(dict(
      name='mnist',         # any image-classification dataset prepared in data_dir
      data_dir='',          # '' -> $TFDS_DATA_DIR -> ~/tensorflow_datasets
      download=False,       # never reach the network unless asked to
      validation='none',    # 'none', 'train_head', 'train_random' or 'test_stratified'
      num_validation=0,
      split_seed=0,         # fixed, so that seeds vary training and not the split
  ))

  config.model = architectures.cntk_pool()

  config.optimizer = ml_collections.ConfigDict(dict(
      name='sgd',           # sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw
      learning_rate=0.2,
      schedule='constant',  # 'constant' or 'cosine' (to 0 at the last step)
      warmup_steps=0,
      momentum=0.9,         # momentum / nesterov
      b1=0.9, b2=0.999,     # adam / adamw
      eps=1e-8,             # adam / adamw / rmsprop / adagrad
      rms_decay=0.9,        # rmsprop
      initial_accumulator=0.1,  # adagrad
      weight_decay=0.0,     # decoupled for adamw, an L2 gradient term otherwise
  ))

  config.train = ml_collections.ConfigDict(dict(
      batch_size=64,
      num_epochs=10.0,      # passes over the training split (may be fractional)
      num_train_steps=-1,   # > 0 overrides num_epochs
      log_every_steps=200,  # train/* scalars are averages over this many steps
      eval_every_steps=0,   # evaluate every N steps as well as at epoch ends (0: epoch ends
                            # only); a search's pruner sees every evaluation
      eval_batch_size=1000,
      label_smoothing=0.0,  # the training loss's targets: (1 - s) one-hot + s / classes;
                            # the reported train/eval loss stays the unsmoothed one
      checkpoint_every_epochs=1,  # 0 disables checkpoints (and so resuming)
      pictures='epochs',    # PNGs in <workdir>/pictures and TensorBoard images: 'epochs'
                            # (curves and confusion matrices at each epoch end, every
                            # picture at the end), 'end' (only at the end) or 'none'
      steps_per_call=0,     # train steps per jitted call; 0 = the backend's measured best
                            # (1 on CPU); K > 1 scans K steps inside one call
      num_devices=0,        # local devices to use (0: all): a run splits its batch over
                            # them, a vmapped sweep group its members
  ))

  # Augmentation of each training batch on the device, inside the step (cnn_jax/data/
  # augment.py): every example of every member gets its own draw, from the run's seed. 0
  # turns a transform off (and off it costs nothing); strengths are sweep axes, and those of
  # augment.TRACEABLE_FIELDS may differ between the members of a vmapped group.
  config.augment = ml_collections.ConfigDict(dict(
      translate=0.0,        # pixels: shift along each axis uniform in [-translate, translate]
      rotate=0.0,           # degrees: rotation uniform in [-rotate, rotate]
      scale=0.0,            # fraction: zoom uniform in [1 - scale, 1 + scale] (0.1: 0.9-1.1)
      # Elastic distortion (Simard et al. 2003, who used alpha 34, sigma 4 on MNIST): uniform
      # [-1, 1] displacements per pixel, smoothed by a Gaussian of std elastic_sigma pixels,
      # times elastic_alpha pixels. sigma matters only when alpha > 0.
      elastic_alpha=0.0,
      elastic_sigma=4.0,
      # Random erasing (Zhong et al. 2017): with probability erase_prob an example gets a
      # rectangle of zeros covering up to erase_max_area of the image (at least 2% of it).
      erase_prob=0.0,
      erase_max_area=0.0,
  ))

  # How a sweep's worker executes its trials (cnn_jax/sweeps/planning.py): 'sequential'; 'vmap'
  # (trials that differ only in seed, optimizer numbers, dropout rates or initializer scales
  # train as one vmapped program, up to max_group_size at a time); 'auto' (the measured best
  # on this backend). Workers in parallel: launch.py --workers=N. A worker records a
  # heartbeat for its trials every heartbeat_seconds; a trial silent for three of those is
  # taken over by another worker (cnn_jax/sweeps/study.py).
  config.sweep = ml_collections.ConfigDict(dict(strategy='auto', max_group_size=16,
                                                heartbeat_seconds=10))
  return config
