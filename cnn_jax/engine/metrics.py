"""The metrics, declared once.

Each Metric says how it is computed and accumulated and where it goes; everything else reads
this list: the device-side sums of the train and eval steps (`batch_sums`), the TensorBoard
tags (`tag`), the console lines (`console_line` at epoch ends, `progress_line` at log steps),
results.json (`finalize` gives the values stored there), the sweep tables (`TABLE_METRICS`)
and the HParams dashboard's metrics (`hparams_tags`). Adding a metric is one entry in METRICS.

Accumulation:
  'mean'    summed over examples on the device (weighted by the eval mask), divided by the
            number of examples on the host: train metrics over each log window and epoch,
            eval metrics over a whole split.
  'counts'  summed on the device and kept as integer counts (the confusion matrix).
  'host'    computed on the host per log window (learning rate, throughput).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

TRAIN = 'train'
EVAL = 'eval'
COUNT = 'count'  # the device-side sum of example weights, beside the metric sums


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Per-example softmax cross-entropy: the training loss, and the 'loss' metric."""
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def _wrong(logits, labels):
  return (jnp.argmax(logits, -1) != labels).astype(jnp.float32)


def _confusion(logits, labels, weights):
  classes = logits.shape[-1]
  truth = jax.nn.one_hot(labels, classes) * weights[:, None]
  predicted = jax.nn.one_hot(jnp.argmax(logits, -1), classes)
  return jnp.einsum('bt,bp->tp', truth, predicted)


@dataclasses.dataclass(frozen=True)
class Metric:
  name: str
  description: str
  accumulate: str                       # 'mean', 'counts' or 'host' (module docstring)
  phases: tuple[str, ...]               # TRAIN and/or EVAL
  # (logits, labels, weights) -> the batch's weighted sum; None for 'host' metrics.
  batch_sum: Callable[..., jax.Array] | None = None
  scalar: bool = True                   # a TensorBoard scalar; else results.json only
  console: bool = False                 # printed in the console lines (epoch, progress)
  hparams: bool = False                 # a metric column of the HParams dashboard
  percent: bool = False                 # shown to people as a percentage
  higher_is_better: bool = False        # a search maximises it by default


METRICS = (
    Metric('loss', 'mean softmax cross-entropy', 'mean', (TRAIN, EVAL),
           lambda logits, labels, w: jnp.sum(cross_entropy(logits, labels) * w),
           console=True, hparams=True),
    Metric('error', 'fraction of examples misclassified', 'mean', (TRAIN, EVAL),
           lambda logits, labels, w: jnp.sum(_wrong(logits, labels) * w),
           console=True, hparams=True, percent=True),
    Metric('accuracy', 'fraction of examples classified correctly', 'mean', (TRAIN, EVAL),
           lambda logits, labels, w: jnp.sum((1.0 - _wrong(logits, labels)) * w),
           hparams=True, percent=True, higher_is_better=True),
    Metric('confusion', 'example counts, true label (row) by predicted label (column)',
           'counts', (EVAL,), _confusion, scalar=False),
    Metric('learning_rate', 'the schedule at the last step of the log window', 'host',
           (TRAIN,)),
    Metric('examples_per_second', 'training throughput over the log window', 'host',
           (TRAIN,)),
)
BY_NAME = {m.name: m for m in METRICS}
LOSS = 'loss'             # what divergence is checked on
ERROR = 'error'           # the headline figure: console summaries, the tutorials' tables
TABLE_METRICS = (ERROR,)  # sweep table columns per split; trials are ranked by the first
RANK_SPLITS = ('validation', 'test')  # rank on validation when a run has it, else test


def of_phase(phase: str, accumulate: tuple[str, ...] = ('mean', 'counts')) -> list[Metric]:
  return [m for m in METRICS if phase in m.phases and m.accumulate in accumulate]


def batch_sums(phase: str, logits: jax.Array, labels: jax.Array,
               weights: jax.Array | None = None) -> dict[str, jax.Array]:
  """The device-side sums of one batch for every metric of `phase`, and the example count."""
  if weights is None:
    weights = jnp.ones(labels.shape, jnp.float32)
  sums = {m.name: m.batch_sum(logits, labels, weights) for m in of_phase(phase)}
  sums[COUNT] = jnp.sum(weights)
  return sums


def zero_sums(phase: str, num_classes: int, members: int) -> dict[str, np.ndarray]:
  """Sums of nothing, with a leading member axis."""
  shapes = {'mean': (), 'counts': (num_classes, num_classes)}
  zeros = {m.name: np.zeros((members, *shapes[m.accumulate]), np.float32)
           for m in of_phase(phase)}
  zeros[COUNT] = np.zeros((members,), np.float32)
  return zeros


def add(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
  return {k: a[k] + b[k] for k in a}


def member(sums: dict[str, np.ndarray], k: int) -> dict[str, np.ndarray]:
  return {name: np.asarray(value[k], np.float64) for name, value in sums.items()}


def finalize(sums: dict[str, np.ndarray]) -> dict[str, Any]:
  """One member's host sums -> {metric: value}: means divided by the example count (in
  float64 here, after float32 sums on the device), counts as nested lists of ints."""
  count = float(sums[COUNT])
  values = {}
  for name, total in sums.items():
    if name == COUNT:
      continue
    if BY_NAME[name].accumulate == 'mean':
      values[name] = float(total) / count
    else:
      values[name] = np.rint(total).astype(int).tolist()
  return values


def per_class_accuracy(confusion) -> list[float | None]:
  """Each true class's share classified correctly, from a confusion matrix (true label by
  row, predicted by column, as the 'confusion' metric counts); None for a class with no
  examples."""
  counts = np.asarray(confusion, np.float64)
  totals = counts.sum(axis=1)
  return [float(counts[c, c] / totals[c]) if totals[c] else None for c in range(len(counts))]


def confusion_markdown(confusion) -> str:
  """A confusion matrix and each class's accuracy as a markdown table (rows: true label)."""
  counts = np.asarray(confusion, np.int64)
  classes = range(len(counts))
  lines = ['| true \\ predicted | ' + ' | '.join(str(c) for c in classes) + ' | accuracy |',
           '| --- ' * (len(counts) + 2) + '|']
  for c, accuracy in zip(classes, per_class_accuracy(counts)):
    shown = 'n/a' if accuracy is None else f'{100 * accuracy:.2f}%'
    lines.append(f'| **{c}** | ' + ' | '.join(str(v) for v in counts[c]) + f' | {shown} |')
  return '\n'.join(lines)


def tag(where: str, name: str) -> str:
  """TensorBoard tag: 'train/<name>' or 'eval/<split>/<name>'."""
  return f'{TRAIN}/{name}' if where == TRAIN else f'{EVAL}/{where}/{name}'


def scalars(where: str, values: dict[str, Any]) -> dict[str, float]:
  """{tag: value} of the scalar metrics among `values` (of TRAIN or of an eval split)."""
  return {tag(where, name): float(value) for name, value in values.items()
          if BY_NAME[name].scalar}


def hparams_tags(splits=RANK_SPLITS) -> list[str]:
  """The HParams dashboard's metric columns."""
  tags = [tag(split, m.name) for split in splits for m in of_phase(EVAL) if m.hparams]
  return tags + [tag(TRAIN, m.name) for m in of_phase(TRAIN) if m.hparams]


# A finite loss can say a run has left learning too: one far above both chance (a uniform
# guess's cross-entropy, ln C) and where the run started has blown its weights up. On T2 and
# real MNIST (docs/RUNNING.md) every run that crossed 100x went on at chance or worse (SGD at
# learning rates 20-1e6, Adam at 1-10), while workable ones stayed within 2x of their start
# and runs from a large initialization (loss 700-21,000) learned down from it.
RUNAWAY_FACTOR = 100.0


def runaway_bound(num_classes: int, initial_loss: float) -> float:
  """The mean train loss of a log window above which a run is diverged, though finite:
  RUNAWAY_FACTOR x the larger of ln C (at least ln 2) and the initialized model's loss."""
  start = initial_loss if np.isfinite(initial_loss) else 0.0  # (then NaN rules anyway)
  return RUNAWAY_FACTOR * max(float(np.log(max(num_classes, 2))), float(start))


def divergence(values: dict[str, Any], bound: float = np.inf) -> str | None:
  """Why figures (`finalize`d) say their run diverged, or None: a loss that is not finite,
  or one above `bound` (runaway_bound, for train windows)."""
  loss = values[LOSS]
  if not np.isfinite(loss):
    return f'is {loss}'
  if loss > bound:
    return (f'is {loss:.4g}, above {bound:.4g} = {RUNAWAY_FACTOR:g} x max(ln C, the '
            "initialized model's loss): a runaway loss")
  return None


def show(name: str, value) -> str:
  """A value as people read it: error rates as percentages, others to 4 places."""
  if value is None:
    return 'n/a'
  return f'{100 * value:.2f}%' if BY_NAME[name].percent else f'{value:.4f}'


def _shown(values: dict[str, Any]) -> str:
  """The console metrics among `values` as people read them: 'loss 0.0912 error 2.81%'."""
  return ' '.join(f'{m.name} {show(m.name, values[m.name])}'
                  for m in METRICS if m.console and m.name in values)


def console_line(record: dict[str, Any], total_epochs: float, who: str = '') -> str:
  """One epoch's console line from a history record (results.py's schema)."""
  parts = [f'{where} {_shown(record[where])}'
           for where in [TRAIN] + [k for k in record
                                   if isinstance(record[k], dict) and k != TRAIN]]
  return (f'{who}epoch {record["epoch"]:.2f}/{total_epochs:.2f} (step {record["step"]}): '
          + ' | '.join(parts) + f' | {record["train_seconds"]:.1f} s training so far')


def progress_line(step: int, values: dict[str, Any], total_steps: int,
                  steps_per_epoch: float, eta_seconds: float | None, who: str = '') -> str:
  """A log step's console line: where the run is, the train metrics and throughput over the
  log window (`values`: finalized sums and host values), and the time the remaining training
  steps should take (None: not known yet)."""
  eta = 'unknown' if eta_seconds is None else duration(eta_seconds)
  return (f'{who}step {step}/{total_steps} (epoch {step / steps_per_epoch:.2f}/'
          f'{total_steps / steps_per_epoch:.2f}): {TRAIN} {_shown(values)} | '
          f'{values["examples_per_second"]:.0f} examples/s | ETA {eta}')


def duration(seconds: float) -> str:
  """'42s', '12m 05s', '2h 03m': as precise as a person reading an estimate needs."""
  seconds = round(seconds)
  if seconds < 60:
    return f'{seconds}s'
  if seconds < 3600:
    return f'{seconds // 60}m {seconds % 60:02d}s'
  return f'{seconds // 3600}h {seconds // 60 % 60:02d}m'
