"""cnn_jax against a plain PyTorch loop on the same CPU, side by side in one run.

    pip install -e '.[bench]'
    TFDS_DATA_DIR=../shared/data/tfds python benchmarks/vs_pytorch.py

For each tutorial model (T1 conv, T2 pool, T4 lenet_small, T3 keras_cnn, T5 tf_deep_cnn) both
sides build the same architecture from the same model config, with the same initialisation
(Glorot uniform or truncated normal weights, zero or constant biases), optimizer (SGD, or Adam
with the config's epsilon), batch, data (the same MNIST arrays) and batch order. Each trains
--steps steps (per model below); the first step, which compiles on the JAX side, is left out
on both sides, and the steady rate is projected to seconds per 60,000-image epoch.

The PyTorch side is written the way a PyTorch user writes it: default threads, NCHW float
tensors, model.train(), zero_grad / backward / step, the loss summed without a host sync.

Then the whole process of a 1-epoch T2 run, cold command to printed test error, median of
--repeats: `launch.py --config=experiments/pool.py --config.train.num_epochs=1` against this
file's --torch_run mode (reads the IDX files of ../shared/data/mnist-idx with numpy, trains
one epoch of T2, tests). Last, experiments/speedrun.py per seed, whole process each side: its
recipe as launch.py and as the same --torch_run script (schedule included), the seeds
interleaved, the load average printed with each.

The PyTorch twin follows the config wherever cnn_jax does something a PyTorch user would also
write: batch normalization (BatchNorm2d after each conv, BatchNorm1d after each hidden dense
layer, before or after the activation as model.batch_norm says, PyTorch momentum 1 - flax
momentum, the same epsilon), label smoothing (F.cross_entropy's label_smoothing, the same
formula), weight decay, and config.augment's transforms at the same strengths, per example,
on each batch's CPU tensors (torch_augment: F.grid_sample; checked against
cnn_jax/data/augment.py to 4e-6 for the same draws). What differs: the random streams (torch's
generator, not JAX's keys); PyTorch's running variance uses the unbiased batch variance, flax
the biased one (a factor n / (n - 1): 1.008 for a dense layer at batch 128, 1.0000 for the
convolutions); the PyTorch loop splits each epoch's permutation into batches (the last one
smaller), cnn_jax reads one stream of epochs (a batch may straddle two), with the same step
count; cnn_jax also evaluates the test split at each epoch end (outside its training clock,
inside the whole process), the script once at the end.
"""
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from cnn_jax import allocator  # pylint: disable=g-import-not-at-top,wrong-import-position

allocator.use_tcmalloc_if_available()  # as launch.py does; both sides run under it

# pylint: disable=g-import-not-at-top,wrong-import-position
from cnn_jax import cli  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags
from absl import logging
import numpy as np

from cnn_jax.layer_impls.padding import same_padding
from cnn_jax.model import shapes

flags.DEFINE_list('models', ['conv', 'pool', 'lenet_small', 'keras_cnn', 'tf_deep_cnn'],
                  'Experiments (experiments/<name>.py) to time.')
flags.DEFINE_integer('steps', 0, 'Train steps per side (0: per model, STEPS below).')
flags.DEFINE_integer('repeats', 3, 'Whole-process runs per side (median), 0 to skip.')
flags.DEFINE_string('torch_run', '', 'Internal: run this experiment file as a PyTorch script.')
flags.DEFINE_float('torch_epochs', 0, 'Internal: epochs for --torch_run (0: the experiment\'s).')
flags.DEFINE_integer('torch_seed', 0, 'Internal: seed for --torch_run.')
flags.DEFINE_list('speedrun_seeds', ['0', '1', '2', '3', '4'],
                  'Seeds of the speedrun, whole process each side (empty to skip).')
flags.DEFINE_list('speedrun_overrides', [],
                  'Config overrides for both sides of the speedrun, FIELD=VALUE each, e.g. '
                  'augment.translate=1,augment.rotate=10 (no commas inside a value; launch.py '
                  'gets --config.FIELD=VALUE).')
flags.DEFINE_list('torch_overrides', [], 'Internal: FIELD=VALUE overrides for --torch_run.')
FLAGS = flags.FLAGS

STEPS = {'conv': 300, 'pool': 300, 'lenet_small': 200, 'keras_cnn': 30, 'tf_deep_cnn': 80}
IDX = os.path.join(ROOT, '..', 'shared', 'data', 'mnist-idx')


def torch_model(cfg, image_size=28):
  """The cnn_jax model config as a torch.nn.Sequential (NCHW)."""
  from torch import nn
  act = {'relu': nn.ReLU, 'sigmoid': nn.Sigmoid, 'tanh': nn.Tanh}[cfg.activation]
  def init(layer):
    if cfg.kernel_init == 'truncated_normal':
      nn.init.trunc_normal_(layer.weight, std=cfg.kernel_init_std, a=-2 * cfg.kernel_init_std,
                            b=2 * cfg.kernel_init_std)
    else:
      nn.init.xavier_uniform_(layer.weight)
    nn.init.constant_(layer.bias, cfg.bias_init_value if cfg.bias_init == 'constant' else 0.0)
    return layer

  def padded(layer, padding, size, kernel, stride, value=0.0):
    if padding == 'VALID':
      return [layer], (size - kernel) // stride + 1
    before, after = same_padding(size, kernel, stride)
    pad = [nn.ConstantPad2d((before, after, before, after), value)] if before + after else []
    return pad + [layer], -(-size // stride)

  # Batch normalization where cnn_jax puts it (model/layer_list.py): after every conv and
  # hidden dense layer, before or after its activation; PyTorch's momentum weighs the new
  # batch, flax's the running average, so one is 1 minus the other.
  batch_norm = cfg.get('batch_norm', 'none')
  def activated(features, norm):
    if batch_norm == 'none':
      return [act()]
    norm = norm(features, eps=cfg.batch_norm_epsilon,
                momentum=round(1 - cfg.batch_norm_momentum, 12))
    return [norm, act()] if batch_norm == 'before' else [act(), norm]

  layers, channels, size = [], 1, image_size
  for i, features in enumerate(cfg.conv_features):
    k, s = cfg.conv_kernel_size[i], cfg.conv_strides[i]
    block, size = padded(init(nn.Conv2d(channels, features, k, s)), cfg.conv_padding[i], size,
                         k, s)
    layers += block + activated(features, nn.BatchNorm2d)
    channels = features
    if cfg.pool_type[i] != 'none':
      w, ps = cfg.pool_window[i], cfg.pool_strides[i]
      pool = nn.MaxPool2d(w, ps) if cfg.pool_type[i] == 'max' else nn.AvgPool2d(w, ps)
      block, size = padded(pool, cfg.pool_padding[i], size, w, ps, value=-float('inf'))
      layers += block
  if cfg.conv_dropout:
    layers.append(nn.Dropout(cfg.conv_dropout))
  layers.append(nn.Flatten())
  width = channels * size * size
  for hidden in cfg.hidden_dims:
    layers += [init(nn.Linear(width, hidden))] + activated(hidden, nn.BatchNorm1d)
    if cfg.dense_dropout:
      layers.append(nn.Dropout(cfg.dense_dropout))
    width = hidden
  layers.append(init(nn.Linear(width, cfg.num_classes)))
  return nn.Sequential(*layers)


def torch_optimizer(opt_cfg, params):
  """cnn_jax's optimizer (optim/optimizers.py): weight_decay decoupled for adamw (both scale
  it by the learning rate), an L2 gradient term otherwise, as torch's weight_decay is."""
  import torch
  decay = opt_cfg.weight_decay
  if opt_cfg.name == 'sgd':
    return torch.optim.SGD(params, lr=opt_cfg.learning_rate, weight_decay=decay)
  if opt_cfg.name in ('momentum', 'nesterov'):
    return torch.optim.SGD(params, lr=opt_cfg.learning_rate, momentum=opt_cfg.momentum,
                           nesterov=opt_cfg.name == 'nesterov', weight_decay=decay)
  if opt_cfg.name == 'rmsprop':  # epsilon outside the square root, as cnn_jax (Keras) does
    return torch.optim.RMSprop(params, lr=opt_cfg.learning_rate, alpha=opt_cfg.rms_decay,
                               eps=opt_cfg.eps, weight_decay=decay)
  if opt_cfg.name in ('adam', 'adamw'):
    optimizer = torch.optim.AdamW if opt_cfg.name == 'adamw' else torch.optim.Adam
    return optimizer(params, lr=opt_cfg.learning_rate, betas=(opt_cfg.b1, opt_cfg.b2),
                     eps=opt_cfg.eps, weight_decay=decay)
  raise ValueError(f'optimizer {opt_cfg.name} has no PyTorch twin here')


def torch_augment(x, aug):
  """cnn_jax's augmentation (data/augment.py) of one batch of CPU tensors, as a PyTorch user
  writes it: every example its own draw from torch's generator, the same distributions and
  strengths. x: (N, C, H, W) floats in [0, 1].

  Affine (shift, rotation, zoom about the centre) and elastic distortion are one bilinear
  F.grid_sample with zeros outside the image: output pixel o reads the input at
  centre + R^T / zoom (o + displacement(o) - centre - shift), as cnn_jax's pull matrix does.
  The elastic field is uniform [-1, 1] noise per pixel and axis, smoothed by a Gaussian of std
  elastic_sigma (zeros outside the image, the kernel spanning the whole image, as cnn_jax's)
  times elastic_alpha pixels. Erasing zeroes, with probability erase_prob, one rectangle of
  area uniform in [min(0.02, erase_max_area), erase_max_area] of the image and aspect ratio
  log-uniform in [0.3, 1 / 0.3] (torchvision's RandomErasing draws once per call and retries
  until a box fits; this draws per example and clips, as cnn_jax does)."""
  import math
  import torch
  import torch.nn.functional as F
  n, _, h, w = x.shape
  affine = aug.translate > 0 or aug.rotate > 0 or aug.scale > 0
  elastic = aug.elastic_alpha > 0
  if affine or elastic:
    rows, cols = torch.meshgrid(torch.arange(h, dtype=x.dtype), torch.arange(w, dtype=x.dtype),
                                indexing='ij')
    rows, cols = rows.expand(n, h, w), cols.expand(n, h, w)
    if elastic:
      noise = torch.rand(n, 2, h, w) * 2 - 1
      def gaussian(size):
        offsets = torch.arange(size, dtype=x.dtype)
        taps = lambda d: torch.exp(-0.5 * (d / aug.elastic_sigma) ** 2)
        whole = taps(torch.arange(1 - size, size, dtype=x.dtype)).sum()
        return taps(offsets[:, None] - offsets[None, :]) / whole
      field = aug.elastic_alpha * (gaussian(h) @ noise @ gaussian(w).T)
      rows, cols = rows + field[:, 0], cols + field[:, 1]
    if affine:
      shift = (torch.rand(n, 2, 1, 1) * 2 - 1) * aug.translate
      angle = (torch.rand(n, 1, 1) * 2 - 1) * math.radians(aug.rotate)
      zoom = 1 + (torch.rand(n, 1, 1) * 2 - 1) * aug.scale
      cos, sin = angle.cos() / zoom, angle.sin() / zoom
      r, c = rows - (h - 1) / 2 - shift[:, 0], cols - (w - 1) / 2 - shift[:, 1]
      rows, cols = (h - 1) / 2 + cos * r + sin * c, (w - 1) / 2 - sin * r + cos * c
    # grid_sample reads (x, y) = (column, row) in [-1, 1]; with align_corners=True -1 and 1
    # are the centres of the edge pixels, as pixel indices 0 and size - 1 are in cnn_jax.
    grid = torch.stack([cols * (2 / (w - 1)) - 1, rows * (2 / (h - 1)) - 1], dim=-1)
    x = F.grid_sample(x, grid, mode='bilinear', padding_mode='zeros',
                      align_corners=True).clamp_(0, 1)
  if aug.erase_prob > 0 and aug.erase_max_area > 0:
    erased = torch.rand(n) < aug.erase_prob
    area = (torch.rand(n) * (aug.erase_max_area - min(0.02, aug.erase_max_area))
            + min(0.02, aug.erase_max_area)) * (h * w)
    aspect = torch.exp((torch.rand(n) * 2 - 1) * -math.log(0.3))
    box_h = torch.sqrt(area * aspect).round().clamp(0, h)
    box_w = torch.sqrt(area / aspect).round().clamp(0, w)
    top = torch.floor(torch.rand(n) * (h - box_h + 1))
    left = torch.floor(torch.rand(n) * (w - box_w + 1))
    row = torch.arange(h, dtype=x.dtype)[None, :, None]
    col = torch.arange(w, dtype=x.dtype)[None, None, :]
    inside = ((row >= top[:, None, None]) & (row < (top + box_h)[:, None, None])
              & (col >= left[:, None, None]) & (col < (left + box_w)[:, None, None]))
    x = x.masked_fill((erased[:, None, None] & inside)[:, None], 0.0)
  return x


def augments(aug_cfg) -> bool:
  return any(aug_cfg[field] > 0 for field in ('translate', 'rotate', 'scale', 'elastic_alpha',
                                               'erase_prob'))


def torch_seconds_per_step(config, images, labels, order, steps):
  import torch
  import torch.nn.functional as F
  torch.manual_seed(config.seed)
  model = torch_model(config.model)
  count = sum(p.numel() for p in model.parameters())
  assert count == shapes.count_params(config.model), (count, config.model.name)  # the same net
  optimizer = torch_optimizer(config.optimizer, model.parameters())
  x_all = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()  # uint8 NCHW
  y_all = torch.from_numpy(labels.astype(np.int64))
  model.train()
  total = torch.zeros(())
  start = None
  for step in range(steps):
    if step == 1:
      start = time.perf_counter()  # as on the JAX side: the first step is not timed
    index = torch.from_numpy(order.indices(step).astype(np.int64))
    x, y = x_all[index].float() / 255.0, y_all[index]
    if augments(config.augment):
      x = torch_augment(x, config.augment)
    optimizer.zero_grad()
    loss = F.cross_entropy(model(x), y, label_smoothing=config.train.label_smoothing)
    loss.backward()
    optimizer.step()
    total += loss.detach()
  total.item()
  return (time.perf_counter() - start) / (steps - 1)


def jax_seconds_per_step(config, steps):
  from cnn_jax import train
  with config.unlocked():
    config.train.num_train_steps = steps
    config.train.log_every_steps = steps  # one sync at the end, as in real runs
    config.train.checkpoint_every_epochs = 0
    config.train.pictures = 'none'  # the PyTorch loop draws none either
  with tempfile.TemporaryDirectory() as workdir:
    out = train.train_and_evaluate(config, workdir)
  return (out['train_seconds'] - out['first_step_seconds']) / (steps - 1)


def read_idx(name):
  with gzip.open(os.path.join(IDX, name)) as f:
    data = f.read()
  dims = data[3]
  shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], 'big') for i in range(dims)]
  return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def torch_schedule(opt_cfg, total_steps):
  """cnn_jax's learning-rate schedule (optim/optimizers.py) as a LambdaLR factor."""
  import math
  warmup = opt_cfg.warmup_steps
  def factor(step):
    if warmup and step < warmup:
      return step / warmup
    if opt_cfg.schedule == 'cosine':
      return 0.5 * (1 + math.cos(math.pi * min(step - warmup, total_steps - warmup)
                                 / max(total_steps - warmup, 1)))
    return 1.0
  return factor


def override_field(config, override):
  """FIELD=VALUE (e.g. augment.translate=1) set in config, the value read as a Python literal
  of the field's type, as launch.py's --config.FIELD=VALUE sets it."""
  import ast
  field, _, text = override.partition('=')
  *parents, name = field.split('.')
  node = config
  for parent in parents:
    node = node[parent]
  try:
    value = ast.literal_eval(text)
  except (ValueError, SyntaxError):
    value = text  # a string field
  node[name] = type(node[name])(value)


def torch_run(experiment, epochs, seed, overrides=()):
  """A PyTorch user's script for an experiment's recipe: load MNIST (the IDX files), train
  `epochs` epochs (0: the experiment's own), test; prints the test error."""
  import torch
  import torch.nn.functional as F
  from cnn_jax.config import files
  config = files.load_config(os.path.join(ROOT, experiment))
  for override in overrides:
    override_field(config, override)
  x = torch.from_numpy(read_idx('train-images-idx3-ubyte.gz').copy()).float().div(255)[:, None]
  y = torch.from_numpy(read_idx('train-labels-idx1-ubyte.gz').astype(np.int64))
  xt = torch.from_numpy(read_idx('t10k-images-idx3-ubyte.gz').copy()).float().div(255)[:, None]
  yt = torch.from_numpy(read_idx('t10k-labels-idx1-ubyte.gz').astype(np.int64))
  torch.manual_seed(seed)
  model = torch_model(config.model)
  optimizer = torch_optimizer(config.optimizer, model.parameters())
  batch = config.train.batch_size
  epochs = epochs or config.train.num_epochs
  total_steps = int(np.ceil(epochs * len(y) / batch))
  scheduler = torch.optim.lr_scheduler.LambdaLR(
      optimizer, torch_schedule(config.optimizer, total_steps))
  augmented = augments(config.augment)
  smoothing = config.train.label_smoothing
  model.train()
  step = 0
  while step < total_steps:
    for index in torch.randperm(len(y)).split(batch):
      if step == total_steps:
        break
      images = torch_augment(x[index], config.augment) if augmented else x[index]
      optimizer.zero_grad()
      F.cross_entropy(model(images), y[index], label_smoothing=smoothing).backward()
      optimizer.step()
      scheduler.step()
      step += 1
  model.eval()
  with torch.no_grad():
    wrong = sum(int((model(xt[i:i + 1000]).argmax(1) != yt[i:i + 1000]).sum())
                for i in range(0, len(yt), 1000))
  print(f'test error {100 * wrong / len(yt):.2f}%')


def timed_run(command, env=None):
  """(wall seconds, test error in %) of one command printing cnn_jax's or torch_run's result."""
  start = time.perf_counter()
  out = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True,
                       env={**os.environ, **(env or {})}).stdout
  seconds = time.perf_counter() - start
  for line in reversed(out.splitlines()):
    if line.startswith('{'):  # launch.py's summary line
      return seconds, 100 * json.loads(line)['test_error']
    if line.startswith('test error'):
      return seconds, float(line.split()[-1].rstrip('%'))
  raise RuntimeError(f'no result printed by {command}: {out[-500:]}')


def speedrun(seeds, overrides=()):
  """experiments/speedrun.py (with `overrides`, FIELD=VALUE each, on both sides), whole
  process per seed, cnn_jax against its PyTorch twin."""
  def ours(seed, workdir):
    return [sys.executable, 'launch.py', '--config=experiments/speedrun.py',
            f'--config.seed={seed}', '--config.train.pictures=none',
            f'--workdir={workdir}/speedrun{seed}', *(f'--config.{o}' for o in overrides)]
  def theirs(seed):
    return [sys.executable, os.path.abspath(__file__), '--torch_run=experiments/speedrun.py',
            f'--torch_seed={seed}', *([f'--torch_overrides={",".join(overrides)}']
                                      if overrides else [])]
  with tempfile.TemporaryDirectory() as workdir:
    # A first run on an empty cache: data decoded, layers measured, programs compiled.
    cold = timed_run(ours(seeds[0], f'{workdir}/cold'), env={'CNN_JAX_CACHE': f'{workdir}/cache'})
    timed_run(ours(seeds[0], f'{workdir}/warm'))  # the user's own cache, filled
    timed_run(theirs(seeds[0]))  # and torch's libraries in the page cache, as for the JAX side
    # Interleaved, seed by seed, so that a load from other work falls on both sides alike;
    # the 1-minute load average is read before each pair.
    rows = [(seed, os.getloadavg()[0], *timed_run(ours(seed, workdir)),
             *timed_run(theirs(seed))) for seed in seeds]
  changed = f' with {", ".join(overrides)}' if overrides else ''
  print(f'\nexperiments/speedrun.py{changed}, whole process per seed, {machine()} (first run '
        f'on an empty cache: {cold[0]:.1f} s, test error {cold[1]:.2f}%)')
  print('| seed | load | cnn_jax s | cnn_jax test accuracy | PyTorch s | PyTorch test accuracy |')
  print('| --- | --- | --- | --- | --- | --- |')
  for seed, load, ours_s, ours_err, theirs_s, theirs_err in rows:
    print(f'| {seed} | {load:.2f} | {ours_s:.1f} | {100 - ours_err:.2f}% | {theirs_s:.1f} | '
          f'{100 - theirs_err:.2f}% |')
  mean = lambda i: statistics.mean(row[i] for row in rows)
  print(f'| mean | {mean(1):.2f} | {mean(2):.1f} | {100 - mean(3):.2f}% | {mean(4):.1f} | '
        f'{100 - mean(5):.2f}% |')
  print(f'cnn_jax / PyTorch whole-process time: {mean(2) / mean(4):.2f}x')


def machine() -> str:
  cpu = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo')
              if l.startswith('model name')), 'unknown CPU')
  return f'{cpu}, {len(os.sched_getaffinity(0))} cores'


def whole_process(command_for, repeats):
  """Median and all wall seconds of `repeats` runs of command_for(i), after one untimed run
  (which fills cnn_jax's data and compilation caches, as a user's first run does)."""
  seconds = []
  for i in range(-1, repeats):
    start = time.perf_counter()
    subprocess.run(command_for(i), cwd=ROOT, check=True, capture_output=True)
    if i < 0:
      continue
    seconds.append(time.perf_counter() - start)
  return statistics.median(seconds), seconds


def print_step_table(rows):
  print('| experiment | model | batch | steps timed | cnn_jax s/epoch | PyTorch s/epoch | '
        'cnn_jax / PyTorch |')
  print('| --- | --- | --- | --- | --- | --- | --- |')
  for name, model, batch, steps, jax_epoch, torch_epoch in rows:
    print(f'| {name} | {model} | {batch} | {steps - 1} | {jax_epoch:.1f} | {torch_epoch:.1f} | '
          f'{jax_epoch / torch_epoch:.2f} |')


def main(_):
  logging.set_verbosity(logging.WARNING)
  if FLAGS.torch_run:
    torch_run(FLAGS.torch_run, FLAGS.torch_epochs, FLAGS.torch_seed, FLAGS.torch_overrides)
    return
  import jax
  import torch
  from cnn_jax.config import files
  from cnn_jax.data import batches
  from cnn_jax.data import datasets
  rows = []
  for name in FLAGS.models:
    config = files.load_config(os.path.join(ROOT, 'experiments', f'{name}.py'))
    steps = FLAGS.steps or STEPS[name]
    splits = datasets.load_splits(config.data)
    order = batches.ShuffledBatches(len(splits.train), config.train.batch_size, config.seed)
    jax_step = jax_seconds_per_step(config, steps)
    torch_step = torch_seconds_per_step(config, splits.train.images, splits.train.labels, order,
                                        steps)
    per_epoch = 60_000 / config.train.batch_size
    rows.append((name, config.model.name, config.train.batch_size, steps,
                 jax_step * per_epoch, torch_step * per_epoch))
  print(f'\n{machine()}; jax {jax.__version__} ({jax.default_backend()}), torch '
        f'{torch.__version__} ({torch.get_num_threads()} threads); '
        f'LD_PRELOAD={os.environ.get("LD_PRELOAD", "")}; load average '
        f'{" ".join(f"{x:.2f}" for x in os.getloadavg())}')
  if rows:
    print_step_table(rows)
  if FLAGS.repeats:
    with tempfile.TemporaryDirectory() as workdir:
      ours, ours_all = whole_process(
          lambda i: [sys.executable, 'launch.py', '--config=experiments/pool.py',
                     '--config.train.num_epochs=1', '--config.train.pictures=none',
                     f'--workdir={workdir}/run{i}'],
          FLAGS.repeats)
    theirs, theirs_all = whole_process(
        lambda i: [sys.executable, os.path.abspath(__file__),
                   '--torch_run=experiments/pool.py', '--torch_epochs=1'],
        FLAGS.repeats)
    print(f'\nWhole process, 1 epoch of T2 (median of {FLAGS.repeats}): cnn_jax launch.py '
          f'{ours:.1f} s ({", ".join(f"{s:.1f}" for s in ours_all)}), PyTorch script '
          f'{theirs:.1f} s ({", ".join(f"{s:.1f}" for s in theirs_all)}): '
          f'{ours / theirs:.2f}x')
  if FLAGS.speedrun_seeds:
    speedrun([int(seed) for seed in FLAGS.speedrun_seeds], FLAGS.speedrun_overrides)


if __name__ == '__main__':
  cli.run(main)
