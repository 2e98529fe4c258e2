"""The pictures of a run: PNG files in the run directory and images in its TensorBoard events,
drawn at epoch ends and at the end of the run; and the drawing functions themselves."""
import copy
import os
import struct

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator

from cnn_jax import errors
from cnn_jax import train
from cnn_jax.config import validation
from cnn_jax.engine import metrics
from cnn_jax.engine import results
from cnn_jax.pictures import canvas
from cnn_jax.pictures import charts
from cnn_jax.pictures import grids
from cnn_jax.pictures import run_pictures
from cnn_jax.pictures import scales

EPOCH_PICTURES = {'learning_curves', 'confusion_test'}
END_PICTURES = EPOCH_PICTURES | {'predictions', 'confidently_wrong', 'filters', 'activations'}


def png_size(data: bytes) -> tuple[int, int]:
  """(height, width) from a PNG's IHDR chunk."""
  assert data[:8] == b'\x89PNG\r\n\x1a\n'
  width, height = struct.unpack('>II', data[16:24])
  return height, width


def image_events(workdir: str) -> dict[str, list]:
  accumulator = event_accumulator.EventAccumulator(workdir, size_guidance={'images': 0})
  accumulator.Reload()
  return {tag: accumulator.Images(tag) for tag in accumulator.Tags()['images']}


def test_a_run_writes_its_pictures_as_pngs_and_tensorboard_images(tmp_path, tiny_config,
                                                                   mock_mnist):
  tiny_config.train.num_epochs = 2.0  # 16 steps of 32: epoch ends at 8 and 16
  tiny_config.train.pictures = 'epochs'  # the default, which tiny_config turns off
  tiny_config.model.conv_impl, tiny_config.model.pool_impl = 'xla', 'xla'
  train.train_and_evaluate(tiny_config, str(tmp_path))

  directory = tmp_path / run_pictures.DIRECTORY
  assert {p[:-len('.png')] for p in os.listdir(directory)} == END_PICTURES
  images = image_events(str(tmp_path))
  assert set(images) == {run_pictures.TAG_PREFIX + name for name in END_PICTURES}
  for name in END_PICTURES:
    last = images[run_pictures.TAG_PREFIX + name][-1]
    png = (directory / f'{name}.png').read_bytes()
    assert last.encoded_image_string == png  # the file is the last image TensorBoard shows
    assert (last.height, last.width) == png_size(png)
    assert 100 <= last.height <= 1000 and 300 <= last.width <= 1300, name
    assert last.step == 16
  # The cheap pictures also at each epoch end but the last (the end drawing has them); the
  # others once, at the end.
  assert [e.step for e in images['pictures/learning_curves']] == [8, 16]
  assert [e.step for e in images['pictures/predictions']] == [16]


def test_pictures_can_be_limited_to_the_end(tmp_path, tiny_config, mock_mnist):
  # 'none' is what every other test's tiny_config runs with: no pictures there.
  tiny_config.train.pictures = 'end'
  train.train_and_evaluate(tiny_config, str(tmp_path))
  images = image_events(str(tmp_path))
  assert set(images) == {run_pictures.TAG_PREFIX + name for name in END_PICTURES}
  assert all(len(events) == 1 for events in images.values())


def test_a_run_that_diverges_after_an_epoch_draws_only_its_numbers(tmp_path, tiny_config,
                                                                    mock_mnist, monkeypatch):
  tiny_config.train.num_epochs = 2.0  # windows end at steps 4, 8, 12, 16
  tiny_config.train.pictures = 'end'
  checked = []
  def finite_until_step_12(values, bound=float('inf')):  # the 4th check: the window ending
    checked.append(values)                                # at step 12
    return 'is nan' if len(checked) >= 4 else None
  monkeypatch.setattr(metrics, 'divergence', finite_until_step_12)
  record = train.train_and_evaluate(tiny_config, str(tmp_path))
  assert record['status'] == 'diverged' and len(record['history']) == 1
  assert sorted(os.listdir(tmp_path / run_pictures.DIRECTORY)) == [
      'confusion_test.png', 'learning_curves.png']
  assert [e.step for e in image_events(str(tmp_path))['pictures/learning_curves']] == [12]


def test_a_picture_that_fails_costs_the_run_nothing_but_the_picture(tmp_path, tiny_config,
                                                                    mock_mnist, monkeypatch,
                                                                    caplog):
  tiny_config.train.pictures = 'end'
  def broken(*args, **kwargs):
    raise RuntimeError('no ink')
  monkeypatch.setattr(grids, 'draw_filters', broken)
  record = train.train_and_evaluate(tiny_config, str(tmp_path))
  assert record['status'] == 'ok' and results.read(str(tmp_path))['status'] == 'ok'
  assert any('Pictures at step 12 were not drawn' in r.getMessage() and r.exc_info
             for r in caplog.records)


def test_each_member_of_a_vmapped_group_gets_its_pictures(tmp_path, tiny_config, mock_mnist):
  tiny_config.train.pictures = 'end'
  tiny_config.model.conv_impl, tiny_config.model.pool_impl = 'xla', 'xla'  # nothing to time
  configs = []
  for seed in (0, 1):
    config = copy.deepcopy(tiny_config)
    config.seed = seed
    configs.append(config)
  workdirs = [str(tmp_path / f'member{k}') for k in range(2)]
  train.train_group(configs, workdirs)
  drawn = [image_events(workdir)['pictures/filters'][-1].encoded_image_string
           for workdir in workdirs]
  assert drawn[0] != drawn[1]  # each member's own parameters
  for workdir in workdirs:
    assert set(os.listdir(os.path.join(workdir, run_pictures.DIRECTORY))) == {
        f'{name}.png' for name in END_PICTURES}


def test_an_unknown_pictures_value_is_one_clear_error(tiny_config, mnist_described):
  tiny_config.train.pictures = 'sometimes'
  with pytest.raises(errors.ConfigError, match=r"train.pictures='sometimes'.*epochs, end, none"):
    validation.validate(tiny_config)


def test_most_confidently_wrong_orders_mistakes_by_confidence():
  labels = np.array([0, 1, 2, 3])
  probabilities = np.array([[0.9, 0.1, 0, 0],    # right
                            [0.6, 0.4, 0, 0],    # wrong, 60%
                            [0, 0.95, 0.05, 0],  # wrong, 95%
                            [0, 0, 0.3, 0.7]])   # right
  assert grids.most_confidently_wrong(labels, probabilities, 5).tolist() == [2, 1]
  assert grids.most_confidently_wrong(labels, probabilities, 1).tolist() == [2]


def test_the_drawings_take_odd_inputs():
  # A class that never occurs, tanh-like negative activations, a multi-channel kernel.
  confusion = np.diag([5, 0, 7])
  confusion[2, 0] = 1
  rng = np.random.default_rng(0)
  figures = [
      charts.draw_confusion(confusion, 'test', 't'),
      grids.draw_filters(rng.normal(size=(3, 3, 2, 5)), 'conv0', 't'),
      grids.draw_activations(np.zeros((28, 28, 1), np.uint8), 3,
                             {'conv0': rng.normal(size=(28, 28, 3))}, 't'),
      charts.draw_learning_curves([{'epoch': 1.0, 'train': {'loss': 1.0, 'error': 0.5}}], 't'),
  ]
  for figure in figures:
    png, height, width = canvas.render(figure)
    assert png_size(png) == (height, width)


def tick_labels(axis) -> list[str]:
  """The labels a matplotlib Axis shows (major and minor, within its view), once drawn."""
  axis.axes.figure.draw_without_rendering()
  low, high = sorted(axis.get_view_interval())
  ticks = [*axis.get_major_ticks(), *axis.get_minor_ticks()]
  return [t.label1.get_text() for t in ticks
          if t.label1.get_visible() and t.label1.get_text() and low <= t.get_loc() <= high]


def shows_integers_only(axis) -> bool:
  axis.axes.figure.draw_without_rendering()
  low, high = sorted(axis.get_view_interval())
  ticks = [t for t in axis.get_majorticklocs() if low <= t <= high]
  return len(ticks) >= 2 and all(float(t).is_integer() for t in ticks)


def test_an_axis_is_logarithmic_when_its_values_span_decades():
  assert scales.spans_decades([0.014, 0.02, 0.04, 0.88])  # one trial at chance
  assert not scales.spans_decades([0.014, 0.02, 0.04])
  assert scales.spans_decades([0.01, np.nan, 0.06])  # NaN (not evaluated) left out
  assert not scales.spans_decades([0.0, 0.01, 0.5])  # a log axis cannot show the zero
  assert not scales.spans_decades([])


def history(errors, losses):
  return [{'epoch': float(e + 1), 'train': {'loss': loss, 'error': error},
           'test': {'loss': loss * 1.1, 'error': error * 1.1}}
          for e, (error, loss) in enumerate(zip(errors, losses))]


def test_learning_curves_show_error_in_percent_on_a_log_axis_where_it_spans_decades():
  figure = charts.draw_learning_curves(
      history([0.30, 0.05, 0.02, 0.012, 0.01], [1.2, 0.9, 0.8, 0.75, 0.7]), 't')
  loss, error = figure.axes
  assert error.get_yscale() == 'log' and loss.get_yscale() == 'linear'  # 30x; 1.9x
  labels = tick_labels(error.yaxis)
  assert len(labels) >= 3 and all(label.endswith('%') for label in labels), labels
  assert {'1%', '2%', '5%', '10%'} <= set(labels)  # 1, 2 and 5 of each decade, plainly
  assert not any('%' in label for label in tick_labels(loss.yaxis))
  assert shows_integers_only(error.xaxis)  # epochs 1 to 5: no 1.5

  flat = charts.draw_learning_curves(history([0.02, 0.015, 0.012], [0.1, 0.08, 0.07]), 't')
  assert flat.axes[1].get_yscale() == 'linear'
  assert all(label.endswith('%') for label in tick_labels(flat.axes[1].yaxis))
  assert shows_integers_only(flat.axes[1].xaxis)  # 3 epochs: matplotlib would tick 1.5


def test_per_class_accuracy_ends_at_100_percent_and_labels_every_class():
  confusion = np.diag([980, 1135, 1000]) + np.array([[0, 0, 0], [3, 0, 0], [0, 20, 0]])
  figure = charts.draw_confusion(confusion, 'test', 't')
  bars = figure.axes[1]
  assert bars.get_xlim()[1] == 1.0
  assert all(label.endswith('%') for label in tick_labels(bars.xaxis))
  values, = bars.child_axes  # each class's accuracy, at the right edge
  assert [t.get_text() for t in values.get_yticklabels()] == ['100.00%', '99.74%', '98.04%']


def test_activation_tiles_are_framed_numbered_and_share_a_scale_per_layer():
  rng = np.random.default_rng(0)
  conv = rng.uniform(0, 3, size=(6, 6, 4))
  conv[..., 2] = 0  # a channel zero all over the digit: white on white without its frame
  figure = grids.draw_activations(np.zeros((6, 6, 1), np.uint8), 3,
                                  {'conv0': conv, 'pool0': conv[::2, ::2] / 2}, 't')
  rows = [[a for a in figure.axes if a.images and a.get_subplotspec().rowspan.start == row]
          for row in (1, 2)]
  for tiles in rows:
    assert [a.get_title() for a in tiles] == ['0', '1', '2: all 0', '3']
    for tile in tiles:
      assert all(spine.get_visible() for spine in tile.spines.values())
    scales = {tile.images[0].get_clim() for tile in tiles}
    assert len(scales) == 1  # one scale a layer, so channels compare
  bars = [a for a in figure.axes if a.get_label() == '<colorbar>']
  assert len(bars) == 2  # each layer's scale shown
  assert rows[0][0].get_ylabel().startswith('conv0')
