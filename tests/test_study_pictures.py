"""The pictures of an Optuna study: Optuna's plots, written only where the trials allow them,
from studies made of hand-built trials (no training)."""
import math
import os
import struct
import warnings

import matplotlib
from matplotlib import pyplot
import optuna
from optuna import distributions
from optuna.trial import TrialState
import pytest

from cnn_jax.pictures import study_pictures
from tests.test_pictures import shows_integers_only
from tests.test_pictures import tick_labels

ALL = [f'{name}.png' for name in study_pictures.CAPTIONS]
DISTRIBUTIONS = {
    'optimizer.learning_rate': distributions.FloatDistribution(1e-4, 1.0, log=True),
    'optimizer.momentum': distributions.FloatDistribution(0.0, 0.99),
    'model.conv_features': distributions.CategoricalDistribution(['4-8', '8-16']),
}
STEPS_PER_EPOCH = 1875


def trial(number: int, state: TrialState, epochs: int = 3, learning_rate: float = None,
          momentum: float = None, features: str = None):
  """A trial of a made-up search: the validation error falls with the epochs and is lowest
  at a learning rate of 0.03; `epochs` of them reported (0: none)."""
  learning_rate = learning_rate or 10 ** (-4 + 4 * ((number * 0.37) % 1))
  momentum = (number * 0.61) % 0.99 if momentum is None else momentum
  features = features or ('4-8', '8-16')[number % 2]
  error = 0.01 + 0.1 * abs(math.log10(learning_rate) + 1.5) + 0.02 * (features == '4-8')
  return optuna.trial.create_trial(
      state=state, value=error if state == TrialState.COMPLETE else None,
      params={'optimizer.learning_rate': learning_rate, 'optimizer.momentum': momentum,
              'model.conv_features': features},
      distributions=DISTRIBUTIONS,
      intermediate_values={STEPS_PER_EPOCH * (e + 1): error * (1 + 1 / (e + 1))
                           for e in range(epochs)})


def study_of(trials, metric: str = None) -> optuna.Study:
  study = optuna.create_study(direction='minimize')
  if metric:
    with warnings.catch_warnings():  # Optuna marks it experimental
      warnings.simplefilter('ignore', optuna.exceptions.ExperimentalWarning)
      study.set_metric_names([metric])  # as sweeps/study.py names a sweep's
  study.add_trials(trials)
  return study


def search(count: int = 12) -> optuna.Study:
  """Complete, pruned (after 1 epoch) and failed trials, as a search with a pruner has."""
  states = [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.PRUNED, TrialState.COMPLETE,
            TrialState.FAIL]
  trials = []
  for n in range(count):
    state = states[n % len(states)]
    trials.append(trial(n, state, epochs={TrialState.COMPLETE: 3, TrialState.PRUNED: 1}.get(
        state, 0)))
  return study_of(trials)


def png_size(data: bytes) -> tuple[int, int]:
  """(height, width) from a PNG's IHDR chunk."""
  assert data[:8] == b'\x89PNG\r\n\x1a\n'
  assert data[12:16] == b'IHDR'
  width, height = struct.unpack('>II', data[16:24])
  return height, width


@pytest.fixture(autouse=True)
def quiet_and_tidy():
  """Optuna's log at warnings only; and each test leaves no pyplot figure open (save closes
  them) and the matplotlib style as it found it (Optuna's plots switch pyplot to ggplot)."""
  verbosity = optuna.logging.get_verbosity()
  optuna.logging.set_verbosity(optuna.logging.WARNING)
  style = dict(matplotlib.rcParams)
  yield
  optuna.logging.set_verbosity(verbosity)
  assert pyplot.get_fignums() == []
  assert dict(matplotlib.rcParams) == style


def test_a_search_gets_all_five_pictures_as_pngs_in_order(tmp_path):
  directory = tmp_path / 'pictures'
  written = study_pictures.save(search(12), str(directory), 'lr_search')

  assert written == ALL
  assert sorted(os.listdir(directory)) == sorted(ALL)  # no temporary file left
  for name in written:
    height, width = png_size((directory / name).read_bytes())
    assert 150 <= height <= 600 and 400 <= width <= 1400, (name, height, width)


def test_every_picture_is_titled_with_the_sweep_and_names_parameters_in_full():
  figures = study_pictures.draw(search(12), 'lr_search')
  try:
    assert list(figures) == list(study_pictures.CAPTIONS)
    for name, figure in figures.items():
      assert figure.get_suptitle().startswith('lr_search: '), name
    # Optuna's parallel coordinates cut names of 20 characters and more: not ours.
    axes = figures['parallel_coordinate'].axes[0]
    assert [label.get_text() for label in axes.get_xticklabels()] == [
        'Objective Value', 'model.conv_features', 'optimizer.learning_rate',
        'optimizer.momentum']
    # 8 complete trials: the importance of reaching the best 4 of them, not Optuna's 10%
    # (which would be the best one alone).
    assert 'best 50% of the 8 complete trials' in figures['param_importances'].get_suptitle()
  finally:
    for figure in figures.values():
      pyplot.close(figure)


def test_one_complete_trial_without_reports_gets_its_history_alone(tmp_path):
  study = study_of([trial(0, TrialState.COMPLETE, epochs=0), trial(1, TrialState.FAIL, 0),
                    trial(2, TrialState.PRUNED, epochs=0)])
  assert study_pictures.save(study, str(tmp_path), 'one') == ['optimization_history.png']
  assert os.listdir(tmp_path) == ['optimization_history.png']


def test_importances_need_two_parameters_that_vary(tmp_path):
  """Only the learning rate changes: no importances (it would get all of it), and the other
  pictures show the learning rate alone."""
  study = study_of([trial(n, TrialState.COMPLETE, momentum=0.9, features='8-16')
                    for n in range(4)])
  figures = study_pictures.draw(study, 'lr_only')
  try:
    assert list(figures) == ['optimization_history', 'parallel_coordinate', 'slice',
                             'intermediate_values']
    assert [axes.get_xlabel() for axes in figures['slice'].axes[:1]] == [
        'optimizer.learning_rate']
  finally:
    for figure in figures.values():
      pyplot.close(figure)


@pytest.mark.parametrize('trials', [[], [trial(n, TrialState.FAIL, epochs=0) for n in range(3)],
                                    [trial(0, TrialState.PRUNED, epochs=0)]],
                         ids=['empty', 'failed', 'pruned_before_reporting'])
def test_a_study_without_a_complete_or_reporting_trial_writes_nothing(tmp_path, trials):
  directory = tmp_path / 'pictures'
  assert study_pictures.save(study_of(trials), str(directory), 'nothing') == []
  assert not directory.exists()


def test_trials_pruned_before_any_completes_get_their_curves(tmp_path):
  study = study_of([trial(n, TrialState.PRUNED, epochs=2) for n in range(3)])
  assert study_pictures.save(study, str(tmp_path), 'pruned') == ['intermediate_values.png']


def test_the_curves_lose_their_legend_when_its_colours_run_out():
  figures = {n: study_pictures.draw(study_of([trial(i, TrialState.PRUNED, epochs=1)
                                              for i in range(n)]), 'many')
             for n in (study_pictures.MAX_LEGEND, study_pictures.MAX_LEGEND + 1)}
  try:
    legends = {n: f['intermediate_values'].axes[0].get_legend() for n, f in figures.items()}
    assert legends[study_pictures.MAX_LEGEND] is not None
    assert legends[study_pictures.MAX_LEGEND + 1] is None
  finally:
    for drawn in figures.values():
      for figure in drawn.values():
        pyplot.close(figure)


def test_the_importance_quantile_keeps_five_trials_in_the_top_when_it_can():
  assert study_pictures.top_quantile(2) == 0.5  # at most half: the top is not everything
  assert study_pictures.top_quantile(8) == 0.5
  assert study_pictures.top_quantile(20) == 0.25
  assert study_pictures.top_quantile(50) == 0.1
  assert study_pictures.top_quantile(500) == 0.1


def named_search(learning_rates) -> optuna.Study:
  """Complete trials at these learning rates (the error is lowest, 1-3%, at 0.03) and one
  pruned after an evaluation, of a study that names its objective."""
  trials = [trial(n, TrialState.COMPLETE, learning_rate=lr) for n, lr in enumerate(learning_rates)]
  return study_of([*trials, trial(len(trials), TrialState.PRUNED, epochs=1)],
                  metric='validation/error')


def test_an_objective_spanning_decades_is_on_a_log_axis_in_percent_and_counts_in_integers():
  # One trial at a learning rate of 1e-4 is 26% wrong, the others 1-3%: a linear axis would
  # flatten them into a line at zero.
  figures = study_pictures.draw(named_search([0.03, 0.02, 0.05, 0.04, 1e-4]), 'named')
  try:
    history = figures['optimization_history'].axes[0]
    curves = figures['intermediate_values'].axes[0]
    panels = [a for a in figures['slice'].axes if a.get_label() != '<colorbar>']
    for axes in (history, curves, *panels):
      assert axes.get_yscale() == 'log'
      assert axes.get_ylabel() in ('validation error', '')  # the panels after the first: ''
    for axis in (history.yaxis, curves.yaxis):
      labels = tick_labels(axis)
      assert len(labels) >= 3 and all(label.endswith('%') for label in labels), labels
    assert shows_integers_only(history.xaxis)  # trial numbers 0-5
    assert shows_integers_only(curves.xaxis)  # evaluations 1-3: no 1.25, 1.5, 1.75
    assert curves.get_xlabel() == 'evaluation'
    trials, = [a for a in figures['slice'].axes if a.get_label() == '<colorbar>']
    assert shows_integers_only(trials.yaxis)
    # The learning rate written plainly (0.01 0.02 0.05), not as 10^-2 and 2x10^-2.
    rate, = [a for a in panels if a.get_xlabel() == 'optimizer.learning_rate']
    assert '0.01' in tick_labels(rate.xaxis) and '0.02' in tick_labels(rate.xaxis)
    parallel = figures['parallel_coordinate'].axes[0]
    assert all(label.endswith('%') for label in tick_labels(parallel.yaxis))
    assert parallel.collections[0].norm.__class__.__name__ == 'LogNorm'
  finally:
    for figure in figures.values():
      pyplot.close(figure)


def test_an_objective_within_a_factor_of_five_stays_linear_but_in_percent():
  figures = study_pictures.draw(named_search([0.03, 0.02, 0.05, 0.04]), 'near')
  try:
    history = figures['optimization_history'].axes[0]
    assert history.get_yscale() == 'linear'
    assert all(label.endswith('%') for label in tick_labels(history.yaxis))
  finally:
    for figure in figures.values():
      pyplot.close(figure)


def test_a_study_without_a_metric_name_keeps_optunas_name_and_fractions():
  figures = study_pictures.draw(search(12), 'unnamed')
  try:
    history = figures['optimization_history'].axes[0]
    assert history.get_ylabel() == 'Objective Value'
    assert not any('%' in label for label in tick_labels(history.yaxis))
  finally:
    for figure in figures.values():
      pyplot.close(figure)
