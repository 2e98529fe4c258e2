"""Evaluates a trained run's checkpoint on its test or validation split, or an ensemble of
runs (the mean of their probabilities).

    TFDS_DATA_DIR=../shared/data/tfds python -m cnn_jax.evaluate --workdir=runs/pool-1a2b3c4d
    python -m cnn_jax.evaluate --workdir=D --split=validation --batch_size=500
    python -m cnn_jax.evaluate --workdir=D1,D2,D3   # each run, then their ensemble

Prints the loss, error and accuracy, each class's accuracy and the confusion matrix (true
label by predicted), and, when results.json holds the run's final figures for the split,
whether they agree. The evaluation is trained.TrainedRun.evaluate: the engine's own eval
program at the run's train.eval_batch_size, with the layer implementations results.json
records, on the split the run's data config gives (data.data_dir, else $TFDS_DATA_DIR, as
in training). So a finished run prints the test error its results.json holds; a member of a
vmapped sweep group was evaluated under vmap and agrees to float rounding. An ensemble's
members must share the data config (the same split, in the same order); their probabilities
come from trained.TrainedRun.predict (XLA's own layers: to float tolerance, what they trained
with).
"""
from __future__ import annotations

from cnn_jax import startup

if __name__ == '__main__':
  startup.before_jax()  # before JAX loads; see startup.py

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags
import numpy as np

from cnn_jax import cli
from cnn_jax import trained
from cnn_jax.data import datasets
from cnn_jax.engine import ensembles
from cnn_jax.engine import metrics
from cnn_jax.errors import InputError

flags.DEFINE_list('workdir', None, 'The run directory (its config.json, checkpoint.msgpack '
                  'and results.json), or several, comma-separated: each is evaluated, then '
                  'their ensemble.')
flags.DEFINE_string('split', 'test', "The split to evaluate: 'test', or 'validation' for a "
                    'run with a validation split.')
flags.DEFINE_integer('batch_size', 0, "Images per evaluation batch; 0: the run's "
                     'train.eval_batch_size, as in training.')
flags.mark_flag_as_required('workdir')
FLAGS = flags.FLAGS


def main(argv):
  del argv  # cli.parse_flags refuses arguments that are not flags
  if FLAGS.batch_size < 0:
    raise InputError(f"--batch_size={FLAGS.batch_size} must be >= 0 (0: the run's "
                     'train.eval_batch_size)')
  runs = [trained.load(workdir) for workdir in FLAGS.workdir]
  splits = datasets.load_splits(runs[0].config.data).eval_splits()
  if FLAGS.split not in splits:
    raise InputError(f'--split={FLAGS.split!r} is not a split of this run (data.validation='
                     f'{runs[0].config.data.validation!r}); allowed values: {", ".join(splits)}')
  data = lambda run: [run.config.data[f] for f in ('name', 'validation', 'num_validation',
                                                   'split_seed')]
  for run in runs[1:]:
    if data(run) != data(runs[0]):
      raise InputError(f'{run.workdir} was trained on other data than {runs[0].workdir} '
                       '(its data config differs), so their probabilities cannot be averaged; '
                       'an ensemble takes runs of one dataset and split')
  split = splits[FLAGS.split]
  for run in runs:
    values = run.evaluate(split, FLAGS.batch_size or None)
    print(report(run, FLAGS.split, len(split), values,
                 confusion=len(runs) == 1))
  if len(runs) > 1:
    figures = ensembles.figures(np.stack([run.predict(split.images) for run in runs]),
                                split.labels)
    print(f'\nensemble of {len(runs)} runs (the mean of their probabilities), {FLAGS.split}: '
          + ', '.join(f'{name} {metrics.show(name, figures[name])}'
                      for name in ('loss', 'error', 'accuracy')))


def report(run: trained.TrainedRun, split: str, num_examples: int, values: dict,
           confusion: bool = True) -> str:
  """The evaluation as printed: figures, the comparison with results.json, and (unless
  `confusion` is False: a member of an ensemble) the per-class accuracy and the confusion
  table."""
  shown = lambda figures: ', '.join(
      f'{m.name} {metrics.show(m.name, figures[m.name])}'
      for m in metrics.of_phase(metrics.EVAL, ('mean',)) if figures.get(m.name) is not None)
  impls = run.layer_impls
  lines = [f'{run.workdir}: {run.config.model.name} at step {run.step}, the {split} split of '
           f'{run.config.data.name} ({num_examples:,} images), layers '
           + (', '.join(f'{k}={v}' for k, v in impls.describe().items()) if impls
              else "as the config resolves them (results.json records none)"),
           f'{split}: {shown(values)}']
  final = ((run.results or {}).get('final') or {}).get(split)
  if final:
    same = shown(final) == shown(values) and final.get('confusion', values['confusion']) == (
        values['confusion'])
    lines.append(f'results.json, final {split} (step {run.results["steps"]}): {shown(final)}: '
                 + ('the same as this evaluation' if same else
                    'differs from this evaluation (another batch size, machine, JAX version '
                    'or a vmapped sweep group rounds differently)'))
  if not confusion:
    return '\n'.join(lines)
  lines.append('per-class accuracy: ' + ', '.join(
      f'{c} {"n/a" if a is None else f"{100 * a:.2f}%"}'
      for c, a in enumerate(metrics.per_class_accuracy(values['confusion']))))
  lines += ['', metrics.confusion_markdown(values['confusion'])]
  return '\n'.join(lines)


if __name__ == '__main__':
  cli.run(main)
