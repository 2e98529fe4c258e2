"""The pictures of a hyperparameter search: Optuna's own matplotlib plots of a study, as PNG
files in the sweep directory.

`draw` returns the figures that the study's trials allow (a picture that needs more trials
than the study has is left out, see `_plans`); `save` writes them. The plots are Optuna's
(optuna.visualization.matplotlib); this module only chooses which to draw, sizes them for
our long parameter names ('optimizer.learning_rate'), titles them with the sweep's name, and
adjusts the Axes Optuna returns: the objective named as the study names it
(study.set_metric_names, sweeps/study.py), in percent where it is an error rate and on a log
scale where its values span decades (scales.value_axis), and counts (trials, evaluations)
with integer ticks.

Optuna draws with pyplot and switches pyplot's style to ggplot, which would stay on for
every later picture of the process (the run pictures too); here each plot is drawn inside
a matplotlib.rc_context, so the style is undone when it returns. pyplot and rcParams are
process-wide, so draw a study from one thread at a time and not while a run's pictures
are being drawn (run_pictures draws them in a worker thread while a run trains).

Optuna and matplotlib are imported on first use: importing them takes most of a second,
which a report without a study does not pay.
"""
from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

from cnn_jax.engine import metrics
from cnn_jax.pictures import canvas
from cnn_jax.pictures import run_pictures
from cnn_jax.pictures import scales

if TYPE_CHECKING:
  import optuna
  from matplotlib.figure import Figure

# Every picture, in the order a report shows them, with its caption there.
CAPTIONS = {
    'optimization_history': 'Objective value of each complete trial, and the best so far',
    'param_importances': 'Hyperparameter importances (PED-ANOVA)',
    'parallel_coordinate': 'Parallel coordinates: the parameters and objective value of each '
                           'complete trial',
    'slice': 'Objective value against each parameter',
    'intermediate_values': 'The objective at each evaluation (pruned trials stop early)',
}
# PED-ANOVA's importance is that of reaching the best `target_quantile` of the complete
# trials. Optuna's 10% holds a single trial in a study of fewer than 20, which makes the
# importances noise; its documentation asks for at least 5 trials in that top part, so
# small studies get a larger part (at most half: the top must be smaller than the whole).
TOP_TRIALS = 5
TOP_QUANTILES = (0.1, 0.5)
# Optuna colours the intermediate-value curves with tab20, whose colours run out after 20
# trials (every later curve gets the 20th), so a legend past that names no curve.
MAX_LEGEND = 20


class _Plan(NamedTuple):
  plot: Callable[[], Any]  # draws with Optuna, returns its Axes (or an array of Axes)
  size: tuple[float, float]  # inches
  what: str  # the title after the sweep's name
  adjust: Callable[[Figure], None] | None = None  # after Optuna, before our layout
  # Optuna lays out only some of its figures, and the others cut off long tick labels such
  # as parameter names. Constrained, as canvas.new_figure; tight for the parallel
  # coordinates, whose colorbar (made before any layout) has a zero-height row that
  # constrained layout divides by (tight layout in turn cannot place the slice's colorbar).
  layout: str = 'constrained'


def _complete(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
  """The complete trials with a finite value: the ones Optuna's plots show."""
  from optuna.trial import TrialState  # pylint: disable=g-import-not-at-top  (slow import)
  return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
          if t.value is not None and math.isfinite(t.value)]


def _varying(trials: list[optuna.trial.FrozenTrial]) -> list[str]:
  """The parameters that take more than one value in `trials`: a parameter that never changed
  says nothing in a plot, and Optuna's axis for it would have no extent (matplotlib warns)."""
  values: dict[str, set] = {}
  for trial in trials:
    for name, value in trial.params.items():
      values.setdefault(name, set()).add(value)
  return sorted(name for name, seen in values.items() if len(seen) > 1)


def top_quantile(complete: int) -> float:
  """The PED-ANOVA target quantile for a study with `complete` complete trials."""
  low, high = TOP_QUANTILES
  return min(high, max(low, TOP_TRIALS / complete))


def _plans(study: optuna.Study) -> dict[str, _Plan]:
  """The pictures the study's trials allow, in CAPTIONS' order, each ready to draw. These
  are the cases where Optuna, short of data, would log a warning and draw empty axes (or
  equal importances) rather than raise, so they are checked here, before drawing."""
  from optuna import importance  # pylint: disable=g-import-not-at-top  (slow import)
  from optuna.trial import TrialState  # pylint: disable=g-import-not-at-top
  from optuna.visualization import matplotlib as plots  # pylint: disable=g-import-not-at-top
  complete = _complete(study)
  varying = _varying(complete)
  objective, percent = _objective(study)
  widest = max(map(len, varying), default=0)  # characters of the longest parameter name
  plans = {}
  if complete:
    plans['optimization_history'] = _Plan(
        lambda: plots.plot_optimization_history(study, target_name=objective), (8.5, 4.5),
        f'{objective} of the {_complete_trials(complete)} of {len(study.trials)}, '
        'and the best so far', lambda figure: _history_axes(figure, percent))
  if len(complete) >= 2 and len(varying) >= 2:
    quantile = top_quantile(len(complete))
    # Optuna 5's default evaluator, named here so that a change of default does not change
    # our pictures. fANOVA (the default before Optuna 5) and mean decrease impurity fit
    # scikit-learn random forests (ImportError without it), which this project does not
    # install; PED-ANOVA needs numpy alone.
    evaluator = importance.PedAnovaImportanceEvaluator(target_quantile=quantile)
    plans['param_importances'] = _Plan(
        lambda: plots.plot_param_importances(study, evaluator=evaluator, params=varying,
                                             target_name=objective),
        (max(7.0, 3.5 + 0.1 * widest), 2.0 + 0.55 * len(varying)),
        f'hyperparameter importances\n(PED-ANOVA: for reaching the best '
        f'{100 * quantile:.0f}% of the {_complete_trials(complete)})')
  if varying:  # and so at least 2 complete trials
    plans['parallel_coordinate'] = _Plan(
        lambda: plots.plot_parallel_coordinate(study, params=varying, target_name=objective),
        (max(8.0, 2.6 + max(2.0, 0.075 * widest) * (len(varying) + 1)), 5.0),
        f'parallel coordinates of the {_complete_trials(complete)}',
        lambda figure: _parallel_axes(figure, varying, percent), layout='tight')
    plans['slice'] = _Plan(
        lambda: plots.plot_slice(study, params=varying, target_name=objective),
        (1.6 + max(3.2, 0.12 * widest) * len(varying), 4.2),
        f'{objective} against each parameter ({_complete_trials(complete)})',
        lambda figure: _slice_axes(figure, percent))
  # The trials Optuna draws curves for: failed ones are left out even if they reported.
  reported = [t for t in study.get_trials(deepcopy=False, states=(
      TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)) if t.intermediate_values]
  if reported:
    pruned = sum(t.state == TrialState.PRUNED for t in reported)
    plans['intermediate_values'] = _Plan(
        lambda: plots.plot_intermediate_values(study), (9.0, 5.0),
        f'{objective} at each evaluation of {len(reported)} trials ({pruned} pruned)',
        lambda figure: _intermediate_axes(figure, objective, percent))
  return plans


def _objective(study: optuna.Study) -> tuple[str, bool]:
  """(the objective as the pictures name it, whether it is shown in percent): the study's
  metric name ('validation/error' -> 'validation error'), or Optuna's 'Objective Value' for a
  study that names none (one made before the studies named it)."""
  if not study.metric_names:
    return 'Objective Value', False
  name = study.metric_names[0]
  metric = metrics.BY_NAME.get(name.rpartition('/')[2])
  return name.replace('/', ' '), bool(metric and metric.percent)


def _plotted(figure: Figure) -> list:
  """The figure's Axes that Optuna plotted in, without its colorbars'."""
  return [axes for axes in figure.axes if axes.get_label() != '<colorbar>']


def _data_range(axes_list, which: str = 'y') -> tuple[float, float]:
  """The lowest and highest value the Axes show on `which` axis (their data limits)."""
  intervals = [getattr(axes.dataLim, f'interval{which}') for axes in axes_list]
  return min(low for low, _ in intervals), max(high for _, high in intervals)


def _history_axes(figure: Figure, percent: bool) -> None:
  axes = figure.axes[0]
  scales.value_axis(axes, _data_range([axes]), percent)
  scales.count_ticks(axes.xaxis)  # trial numbers


def _slice_axes(figure: Figure, percent: bool) -> None:
  """The objective's axis (shared by the panels) as value_axis has it, the trial numbers'
  colorbar in integers, and the parameters' log axes labelled plainly."""
  panels = _plotted(figure)
  scales.value_axis(panels[0], _data_range(panels), percent)  # sharey: every panel's
  trials = next(c.colorbar for p in panels for c in p.collections if c.colorbar)
  scales.count_ticks(trials.ax.yaxis)
  _plain_log_ticks(figure)


def _intermediate_axes(figure: Figure, objective: str, percent: bool) -> None:
  """The values reported are the objective's, at each evaluation (the worker's step: the
  count of evaluations, sweeps/settling.py)."""
  axes = figure.axes[0]
  scales.value_axis(axes, _data_range([axes]), percent)
  axes.set_ylabel(objective)
  axes.set_xlabel('evaluation')
  scales.count_ticks(axes.xaxis)
  _legend_if_colours_tell(figure)


def _parallel_axes(figure: Figure, params: list[str], percent: bool) -> None:
  """Full names; the parameters' log axes labelled plainly; the objective's axis in percent,
  its colours on a log scale where its values span decades. The objective's axis itself
  stays linear: Optuna draws every parameter's line in that axis' coordinates."""
  from matplotlib.colors import LogNorm  # pylint: disable=g-import-not-at-top  (slow import)
  _full_names(figure, params)
  _plain_log_ticks(figure)
  axes = figure.axes[0]
  scales.value_ticks(axes.yaxis, percent, log=False)
  lines = axes.collections[0]
  log = scales.spans_decades(lines.get_array())
  if log:
    lines.set_norm(LogNorm(*lines.get_clim()))  # its colorbar follows
  scales.value_ticks(lines.colorbar.ax.yaxis, percent, log)


def _complete_trials(trials: list) -> str:
  return f'{len(trials)} complete trial{"" if len(trials) == 1 else "s"}'


def _figure_of(axes) -> Figure:
  """The figure of what an Optuna plot returns: Axes, or an array of them (slice)."""
  return axes.figure if hasattr(axes, 'figure') else axes.flat[0].figure


def _full_names(figure: Figure, params: list[str]) -> None:
  """The parallel coordinates' axes named in full: Optuna cuts names of 20 characters or
  more to 17 and '...' ('optimizer.learnin...'), which loses the part that tells them apart.
  Its axes are the objective's, then the parameters' in sorted order."""
  axes = figure.axes[0]
  objective = axes.get_xticklabels()[0].get_text()
  # Slanted down to the right from their axis, as Optuna slants them, so that a long name
  # runs into the space between two axes rather than across its neighbour's.
  axes.set_xticklabels([objective, *sorted(params)], ha='left', rotation_mode='anchor')


def _plain_log_ticks(figure: Figure) -> None:
  """The parameters' log axes (a learning rate's) ticked and labelled as ours are
  (scales.value_ticks: 0.02 0.05 0.1, not 2x10^-2 and the like, whose labels run into each
  other on a narrow panel or a parallel coordinate's axis). matplotlib's own log labels are
  the sign of an axis nobody labelled: Optuna's parameter axes, not our objective's."""
  from matplotlib import ticker  # pylint: disable=g-import-not-at-top  (slow import)
  for axes in figure.axes:
    for axis in (axes.xaxis, axes.yaxis):
      if axis.get_scale() == 'log' and isinstance(axis.get_major_formatter(),
                                                  ticker.LogFormatterSciNotation):
        scales.value_ticks(axis, percent=False, log=True)


def _legend_if_colours_tell(figure: Figure) -> None:
  axes = figure.axes[0]
  if axes.get_legend() is not None and len(axes.get_lines()) > MAX_LEGEND:
    axes.get_legend().remove()


def _finish(figure: Figure, plan: _Plan, title: str) -> None:
  """Adjusts, sizes, lays out and titles one of Optuna's figures (inside its rc_context)."""
  if plan.adjust:
    plan.adjust(figure)
  figure.set_size_inches(plan.size)
  figure.set_layout_engine(plan.layout)
  for axes in figure.axes:  # one title, ours, in place of Optuna's 'Slice Plot' and the like
    for loc in ('left', 'center', 'right'):
      axes.set_title('', loc=loc)
  figure.suptitle(title)


def draw(study: optuna.Study, title: str) -> dict[str, Figure]:
  """{name: figure} of the pictures the study allows, in CAPTIONS' order; `title` (the
  sweep's name) begins each figure's title. The figures are pyplot's: close them
  (pyplot.close), or use `save`, which does."""
  import matplotlib  # pylint: disable=g-import-not-at-top  (slow import)
  from matplotlib import pyplot  # pylint: disable=g-import-not-at-top
  from optuna.exceptions import ExperimentalWarning  # pylint: disable=g-import-not-at-top
  figures = {}
  try:
    for name, plan in _plans(study).items():
      with warnings.catch_warnings(), matplotlib.rc_context():
        # Optuna's matplotlib plots are all marked experimental; the warning says nothing
        # about the study.
        warnings.simplefilter('ignore', ExperimentalWarning)
        figures[name] = _figure_of(plan.plot())
        _finish(figures[name], plan, f'{title}: {plan.what}')
  except BaseException:
    for figure in figures.values():
      pyplot.close(figure)
    raise
  return figures


def save(study: optuna.Study, directory: str, title: str) -> list[str]:
  """Draws the study's pictures and writes each as `<directory>/<name>.png` (atomically: a
  report may be reading them); returns the file names written, in CAPTIONS' order. Writes
  nothing, and makes no directory, when the study allows no picture."""
  from matplotlib import pyplot  # pylint: disable=g-import-not-at-top  (slow import)
  figures = draw(study, title)
  try:
    rendered = {name: canvas.render(figure) for name, figure in figures.items()}
  finally:  # pyplot keeps every figure until closed: a long search would pile them up
    for figure in figures.values():
      pyplot.close(figure)
  if rendered:
    run_pictures.save(directory, rendered)
  return [f'{name}.png' for name in rendered]
