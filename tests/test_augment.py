"""Augmentation on the device (cnn_jax/data/augment.py): deterministic by key, different per
example and per member, the identity at zero strength, the warps' geometry as documented;
its config's bad values named in one line; its picture."""
import os
import struct
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from scipy import ndimage as scipy_ndimage

from cnn_jax import member_view
from cnn_jax.config import validation
from cnn_jax.data import augment
from cnn_jax.data import datasets
from cnn_jax.errors import ConfigError
from cnn_jax.pictures import canvas
from cnn_jax.pictures import grids
from cnn_jax.pictures import run_pictures
from cnn_jax.machine import patience
from experiments import default

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EVERY = frozenset(augment.TRANSFORMS)
STRONG = dict(translate=3.0, rotate=20.0, scale=0.15, elastic_alpha=34.0, elastic_sigma=4.0,
              erase_prob=1.0, erase_max_area=0.3)
# Each transform alone, at a strength that visibly changes a digit.
ALONE = {
    'translate': dict(translate=3.0),
    'rotate': dict(rotate=30.0),
    'scale': dict(scale=0.2),
    'elastic': dict(elastic_alpha=34.0),
    'erase': dict(erase_prob=1.0, erase_max_area=0.3),
}
run = jax.jit(augment.augment)


def config_of(**strengths) -> ml_collections.ConfigDict:
  section = default.get_config().augment
  section.update(strengths)
  return section


def settings_of(**strengths) -> augment.Settings:
  return augment.Settings.from_config(config_of(**strengths))


def warp(image, matrix):
  """`image` warped by an affine_matrix, as the augmentation resamples."""
  rows, columns = np.meshgrid(np.arange(image.shape[0], dtype=np.float32),
                              np.arange(image.shape[1], dtype=np.float32), indexing='ij')
  matrix = np.asarray(matrix)
  return np.asarray(augment.resample(
      jnp.asarray(image), jnp.asarray(matrix[0, 0] * rows + matrix[0, 1] * columns + matrix[0, 2]),
      jnp.asarray(matrix[1, 0] * rows + matrix[1, 1] * columns + matrix[1, 2])))


def digits(count=4, seed=0) -> jnp.ndarray:
  """A blob per image, off centre, on MNIST's black background: every transform shows."""
  rng = np.random.default_rng(seed)
  images = np.zeros((count, 28, 28, 1), np.float32)
  for i in range(count):
    images[i, 6:22, 9:17] = rng.uniform(0.5, 1.0, (16, 8, 1))
  return jnp.asarray(images)


@pytest.mark.parametrize('name', list(ALONE) + ['all'])
def test_deterministic_by_key_and_different_between_keys(name):
  settings = settings_of(**(STRONG if name == 'all' else ALONE[name]))
  images = digits()
  first = run(jax.random.key(7), images, settings)
  again = run(jax.random.key(7), images, settings)
  other = run(jax.random.key(8), images, settings)
  np.testing.assert_array_equal(np.asarray(first), np.asarray(again))
  assert not np.array_equal(np.asarray(first), np.asarray(other))
  assert first.shape == images.shape and first.dtype == jnp.float32


@pytest.mark.parametrize('name', list(ALONE) + ['all'])
def test_each_example_gets_its_own_draw(name):
  settings = settings_of(**(STRONG if name == 'all' else ALONE[name]))
  copies = jnp.repeat(digits(1), 8, axis=0)
  out = np.asarray(run(jax.random.key(0), copies, settings))
  assert len({out[i].tobytes() for i in range(8)}) == 8


def test_members_vmapped_with_their_own_keys_and_traced_strengths():
  """A vmapped group: per-member keys and strengths (traced), each member as it is alone."""
  images = digits()
  keys = jax.random.split(jax.random.key(3), 3)
  # The last member augments nothing in a group that does, with a sigma validation lets
  # pass when alpha is 0.
  members = [dict(STRONG, rotate=5.0, elastic_alpha=10.0, elastic_sigma=2.0, erase_prob=0.5),
             STRONG, {field: 0.0 for field in augment.FIELDS}]
  stacked = {field: jnp.asarray([m[field] for m in members], jnp.float32)
             for field in augment.TRACEABLE_FIELDS}
  structure = config_of(**STRONG)  # what the group shares: every transform on

  def member(key, traced):
    return augment.augment(key, images,
                           augment.Settings.from_config(member_view.section(structure, traced)))

  together = np.asarray(jax.jit(jax.vmap(member))(keys, stacked))
  for k, values in enumerate(members):
    alone = jax.jit(member)(keys[k], {f: jnp.float32(values[f]) for f in stacked})
    # to float rounding: vmapped, the smoothing's products are summed in another order
    np.testing.assert_allclose(together[k], np.asarray(alone), atol=1e-5)
  np.testing.assert_array_equal(together[2], np.asarray(images))
  assert not np.array_equal(together[0], together[1])
  # The same key with different strengths differs too: the strength is not ignored.
  same_key = np.asarray(jax.jit(jax.vmap(member, in_axes=(None, 0)))(keys[0], stacked))
  assert not np.array_equal(same_key[0], same_key[1])


def test_settings_are_a_pytree_of_their_traceable_strengths():
  leaves, _ = jax.tree_util.tree_flatten(settings_of(**STRONG))
  assert len(leaves) == len(augment.TRACEABLE_FIELDS)
  assert set(augment.TRACEABLE_FIELDS) <= set(augment.FIELDS)


def test_off_is_static_and_exactly_the_identity():
  images = digits()
  off = settings_of()
  assert off.on == frozenset() and augment.active(config_of()) == frozenset()
  assert augment.augment(jax.random.key(0), images, off) is images  # nothing computed
  for name, strengths in ALONE.items():  # a strength of 0 turns its transform off
    zero = {field: 0.0 for field in strengths}
    assert augment.active(config_of(**dict(STRONG, **zero))) == EVERY - {
        'affine' if name in ('translate', 'rotate', 'scale') else name} | (
            {'affine'} if name in ('translate', 'rotate', 'scale') else set())
  assert augment.active(config_of(translate=1.0)) == {'affine'}
  assert augment.active(config_of(erase_prob=0.5)) == frozenset()  # no area: nothing erased
  assert augment.active(config_of(erase_max_area=0.5)) == frozenset()
  # With the warps off nothing is resampled: outside its rectangle a digit is bit for bit
  # what it was.
  erased = np.asarray(run(jax.random.key(0), images, settings_of(**ALONE['erase'])))
  kept = erased != 0
  np.testing.assert_array_equal(erased[kept], np.asarray(images)[kept])
  assert (erased == 0).sum() > (np.asarray(images) == 0).sum()


def test_a_traced_zero_strength_is_the_identity():
  """Every transform on (a group whose other members use them) and each strength 0, traced."""
  images = digits()
  zeros = {field: jnp.float32(0.0) for field in augment.TRACEABLE_FIELDS}

  def member(key, traced):
    return augment.augment(key, images, augment.Settings.from_config(
        member_view.section(config_of(**STRONG), traced)))

  out = jax.jit(member)(jax.random.key(0), zeros)
  np.testing.assert_allclose(np.asarray(out), np.asarray(images), atol=1e-6)
  for name, strengths in ALONE.items():  # each transform alone at a traced 0
    traced = {f: jnp.float32(0.0) for f in strengths}
    structure = config_of(**strengths)
    out = jax.jit(lambda k, t, s=structure: augment.augment(
        k, images, augment.Settings.from_config(member_view.section(s, t))))(
            jax.random.key(1), traced)
    np.testing.assert_allclose(np.asarray(out), np.asarray(images), atol=1e-6, err_msg=name)
  # In the one resampling of both warps, an elastic distortion of 0 leaves the affine warp's
  # result (to rounding: XLA fuses the coordinates' arithmetic differently).
  both = config_of(**ALONE['rotate'], **ALONE['elastic'])
  composed = jax.jit(lambda k, t: augment.augment(k, images, augment.Settings.from_config(
      member_view.section(both, t))))(jax.random.key(2), {'elastic_alpha': jnp.float32(0.0)})
  rotated = run(jax.random.key(2), images, settings_of(**ALONE['rotate']))
  np.testing.assert_allclose(np.asarray(composed), np.asarray(rotated), atol=1e-5)


@pytest.mark.parametrize('shift', [(3, 0), (0, -2), (-4, 5)])
def test_the_matrix_shifts_by_whole_pixels_down_and_right(shift):
  """The warp pulls (output pixel o reads the input at M o + offset): affine_matrix inverts
  the forward map, so a shift (rows, columns) moves the pattern that way, exactly."""
  image = np.zeros((28, 28, 1), np.float32)
  image[10:14, 8:11] = np.arange(12, dtype=np.float32).reshape(4, 3, 1) / 11
  moved = warp(image, augment.affine_matrix(0.0, 1.0, shift, image.shape))
  expected = np.roll(image, shift, axis=(0, 1))  # nothing reaches an edge
  np.testing.assert_allclose(moved, expected, atol=1e-6)


@pytest.mark.parametrize('angle, zoom, shift', [(0.3, 1.1, (1.3, -0.6)), (-0.7, 0.85, (0, 2.5))])
def test_the_warp_is_scipys_affine_transform_and_dm_pixs(angle, zoom, shift):
  """The same matrix read the same way by scipy.ndimage and dm-pix (the digit stays inside,
  where their edge modes agree)."""
  image = np.asarray(digits(1, seed=4)[0])
  matrix = np.asarray(augment.affine_matrix(angle, zoom, shift, image.shape))
  ours = warp(image, matrix)
  scipy = scipy_ndimage.affine_transform(image[..., 0], matrix[:, :2], offset=matrix[:, 2],
                                         order=1, mode='constant', cval=0.0)
  np.testing.assert_allclose(ours[..., 0], scipy, atol=1e-5)
  pix = pytest.importorskip('dm_pix')
  homogeneous = np.zeros((3, 4), np.float32)
  homogeneous[:2, :2], homogeneous[:2, 3], homogeneous[2, 2] = matrix[:, :2], matrix[:, 2], 1
  theirs = pix.affine_transform(jnp.asarray(image), jnp.asarray(homogeneous), mode='constant',
                                cval=0.0)
  np.testing.assert_allclose(ours, np.asarray(theirs), atol=1e-5)


@pytest.mark.parametrize('sigma', [0.7, 4.0, 10.0])
def test_the_smoothing_is_scipys_gaussian_filter_with_zeros_outside(sigma):
  fields = np.random.default_rng(0).uniform(-1, 1, (2, 28, 28))
  ours = np.asarray(augment.smooth(jnp.asarray(fields, jnp.float32), sigma))
  # A kernel of radius 27: every offset within the image.
  scipy = np.stack([scipy_ndimage.gaussian_filter(f, sigma, mode='constant', cval=0.0,
                                                  truncate=27 / sigma) for f in fields])
  np.testing.assert_allclose(ours, scipy, atol=1e-6)


def test_the_elastic_field_scales_with_alpha_and_smooths_with_sigma():
  key = jax.random.key(0)
  field = lambda alpha, sigma: np.asarray(augment.elastic_field(key, (28, 28), alpha, sigma))
  np.testing.assert_allclose(field(68.0, 4.0), 2 * field(34.0, 4.0), rtol=1e-5, atol=1e-6)
  # Simard's alpha 34, sigma 4 moves a pixel by about a pixel or two.
  assert 0.5 < field(34.0, 4.0).std() < 3.0
  # Wider smoothing: neighbouring displacements agree more.
  roughness = lambda f: np.abs(np.diff(f, axis=-1)).mean() / np.abs(f).mean()
  assert roughness(field(34.0, 8.0)) < roughness(field(34.0, 4.0)) < roughness(field(34.0, 1.0))


def test_translate_alone_moves_each_digit_by_its_drawn_shift_within_the_bound():
  images = digits(16)
  out = np.asarray(run(jax.random.key(5), images, settings_of(translate=4.0)))
  centre = lambda x: (np.indices(x.shape[:2]) * x[..., 0]).reshape(2, -1).sum(1) / x.sum()
  moves = np.array([centre(o) - centre(np.asarray(i)) for o, i in zip(out, images)])
  assert np.abs(moves).max() <= 4.0 + 1e-3
  assert np.abs(moves).max() > 1.0  # shifts were drawn, not all near 0
  assert np.ptp(moves[:, 0]) > 1.0 and np.ptp(moves[:, 1]) > 1.0  # both axes, both ways


def test_rotation_turns_about_the_centre_counter_clockwise():
  image = np.zeros((29, 29, 1), np.float32)  # odd: the centre is a pixel
  image[14, 14] = 1.0
  image[14, 20:23] = 1.0  # a bar right of the centre
  turned = warp(image, augment.affine_matrix(np.pi / 2, 1.0, (0, 0), image.shape))
  assert turned[14, 14, 0] == pytest.approx(1.0, abs=1e-5)  # the centre stays
  # A quarter turn counter-clockwise (as displayed) takes the bar above the centre.
  np.testing.assert_allclose(turned[6:9, 14, 0], 1.0, atol=1e-5)
  assert turned[..., 0].sum() == pytest.approx(image.sum(), abs=1e-4)


def test_random_rotation_keeps_the_centre_pixel():
  image = np.zeros((4, 29, 29, 1), np.float32)
  image[:, 12:17, 12:17] = 1.0
  out = np.asarray(run(jax.random.key(2), jnp.asarray(image), settings_of(rotate=45.0)))
  np.testing.assert_allclose(out[:, 14, 14, 0], 1.0, atol=1e-5)
  assert not np.array_equal(out, image)


def test_scale_zooms_about_the_centre():
  image = np.zeros((29, 29, 1), np.float32)
  image[10:19, 10:19] = 1.0
  bigger = warp(image, augment.affine_matrix(0.0, 2.0, (0, 0), image.shape))
  assert bigger[..., 0].sum() == pytest.approx(4 * image.sum(), rel=0.1)
  assert bigger[14, 14, 0] == 1.0 and bigger[0, 0, 0] == 0.0


def test_elastic_changes_the_image_and_keeps_it_in_the_unit_range():
  images = digits(8)
  out = np.asarray(run(jax.random.key(0), images, settings_of(elastic_alpha=34.0)))
  assert out.min() >= 0.0 and out.max() <= 1.0
  assert np.abs(out - np.asarray(images)).mean() > 0.01
  # A distortion, not an erasure: most of the ink stays.
  assert out.sum() == pytest.approx(float(images.sum()), rel=0.2)
  strong = np.asarray(run(jax.random.key(0), images, settings_of(**STRONG)))
  assert strong.min() >= 0.0 and strong.max() <= 1.0


def test_erasing_zeroes_one_rectangle_within_the_area_bound():
  ones = jnp.ones((32, 28, 28, 1), jnp.float32)
  out = np.asarray(run(jax.random.key(0), ones, settings_of(erase_prob=1.0,
                                                             erase_max_area=0.3)))
  assert set(np.unique(out)) <= {0.0, 1.0}
  for image in out[..., 0]:
    rows, columns = np.nonzero(image == 0)
    assert len(rows)  # erased: probability 1 and at least 2% of the image
    box = image[rows.min():rows.max() + 1, columns.min():columns.max() + 1]
    assert (box == 0).all()  # the zeros fill their bounding box: a rectangle
    assert len(rows) <= 0.3 * 28 * 28 + 28  # the area bound, to rounding of a side
  # erase_prob: the share of examples erased.
  many = jnp.ones((400, 28, 28, 1), jnp.float32)
  half = np.asarray(run(jax.random.key(1), many, settings_of(erase_prob=0.5,
                                                             erase_max_area=0.3)))
  assert 0.4 < (half.min(axis=(1, 2, 3)) == 0).mean() < 0.6


def test_key_for_step_is_its_own_stream():
  key = jax.random.key(0)
  steps = [augment.key_for_step(key, s) for s in range(3)]
  data = {jax.random.key_data(k).tobytes() for k in steps}
  assert len(data) == 3
  # Not the key dropout gets at that step (engine/step.py folds the step only).
  assert jax.random.key_data(steps[0]).tobytes() != jax.random.key_data(
      jax.random.fold_in(key, 0)).tobytes()


@pytest.mark.parametrize('field, value, message', [
    ('translate', -1.0, r'augment.translate=-1.0 must lie in \[0, 28\) \(pixels'),
    ('translate', 28.0, r'augment.translate=28.0 must lie in \[0, 28\)'),
    ('translate', 'two', r"augment.translate='two' must be a number"),
    ('rotate', -5.0, r'augment.rotate=-5.0 must lie in \[0, 180\] \(degrees\)'),
    ('rotate', 181.0, r'augment.rotate=181.0 must lie in \[0, 180\]'),
    ('rotate', float('nan'), r'augment.rotate=nan must be a number'),
    ('scale', 1.0, r'augment.scale=1.0 must lie in \[0, 1\) \(the zoom'),
    ('scale', -0.1, r'augment.scale=-0.1 must lie in \[0, 1\)'),
    ('elastic_alpha', -34.0, r'augment.elastic_alpha=-34.0 must lie in \[0, inf\)'),
    ('elastic_alpha', float('inf'), r'augment.elastic_alpha=inf must be a finite number'),
    ('elastic_alpha', None, r'augment.elastic_alpha=None must be a number'),
    ('elastic_sigma', 'wide', r"augment.elastic_sigma='wide' must be a number"),
    ('erase_prob', 1.5, r'augment.erase_prob=1.5 must lie in \[0, 1\] \(a probability\)'),
    ('erase_prob', -0.5, r'augment.erase_prob=-0.5 must lie in \[0, 1\]'),
    ('erase_max_area', 2.0, r'augment.erase_max_area=2.0 must lie in \[0, 1\] \(a fraction'),
    ('erase_max_area', True, r'augment.erase_max_area=True must be a number'),
])
def test_each_bad_value_is_named(field, value, message):
  section = dict(default.get_config().augment)
  section[field] = value  # a plain dict: a ConfigDict would refuse the type change itself
  with pytest.raises(ConfigError, match=message):
    validation.validate_augment(section, (28, 28, 1))


@pytest.mark.parametrize('sigma', [0.0, -1.0, 29.0])
@pytest.mark.parametrize('alpha', [0.0, 34.0])
def test_elastic_sigma_must_be_positive_and_not_wider_than_the_image(sigma, alpha):
  config = default.get_config()
  config.augment.update(elastic_sigma=sigma, elastic_alpha=alpha)  # (alpha 0: even unused)
  with pytest.raises(ConfigError, match=rf'augment.elastic_sigma={sigma} must lie in '
                     r'\(0, 28\] \(pixels'):
    validation.validate(config)


def test_unknown_and_missing_fields_are_named():
  config = default.get_config()
  config.augment.rotation = 10.0  # misspelt in an experiment file
  with pytest.raises(ConfigError, match=r"augment has unknown field 'rotation'; its fields: "
                     r'translate, rotate, scale'):
    validation.validate(config)
  section = dict(default.get_config().augment)
  del section['erase_prob']
  with pytest.raises(ConfigError, match=r"augment has no field 'erase_prob'"):
    validation.validate_augment(section)


def test_the_bound_on_translate_follows_the_image():
  section = dict(default.get_config().augment, translate=30.0)
  validation.validate_augment(section, (32, 32, 3))
  with pytest.raises(ConfigError, match=r'must lie in \[0, 28\)'):
    validation.validate_augment(section, (28, 28, 1))


def test_strong_settings_and_the_default_validate():
  config = default.get_config()
  validation.validate(config)
  config.augment.update(STRONG)
  validation.validate(config)
  config.augment.update(translate=27.9, rotate=180.0, scale=0.99, erase_prob=1.0,
                        erase_max_area=1.0)
  validation.validate(config)


def test_a_bad_value_on_the_command_line_is_one_line_and_exit_status_2(tmp_path):
  env = dict(os.environ)
  proc = subprocess.run([sys.executable, 'launch.py', '--config=experiments/pool.py',
                         f'--workdir={tmp_path}', '--config.augment.rotate=200'],
                        cwd=ROOT, capture_output=True, text=True, timeout=patience(300), env=env)
  assert proc.returncode == 2, proc.stderr[-3000:]
  errors = [line for line in proc.stderr.splitlines() if line.startswith('error:')]
  assert errors == ['error: augment.rotate=200.0 must lie in [0, 180] (degrees)'], proc.stderr
  assert proc.stderr.strip().splitlines()[-1] == errors[0]
  assert 'Traceback' not in proc.stderr
  assert not os.path.exists(tmp_path / 'results.json')


def png_size(data: bytes) -> tuple[int, int]:
  assert data[:8] == b'\x89PNG\r\n\x1a\n'
  width, height = struct.unpack('>II', data[16:24])
  return height, width


def test_the_picture_of_augmented_digits_is_a_png():
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (8, 28, 28, 1), dtype=np.uint8)
  shown = augment.examples(config_of(**STRONG), 0, images, 4)
  assert shown.shape == (8, 4, 28, 28, 1) and shown.dtype == np.float32
  assert 0.0 <= shown.min() and shown.max() <= 1.0
  np.testing.assert_array_equal(shown, augment.examples(config_of(**STRONG), 0, images, 4))
  figure = grids.draw_augmented(images, shown, np.arange(8), 'rotate=20', 't')
  png, height, width = canvas.render(figure)
  assert png_size(png) == (height, width)
  assert 200 <= height <= 1000 and 400 <= width <= 1300


def test_a_run_draws_the_picture_only_when_it_augments():
  config = default.get_config()
  rng = np.random.default_rng(0)
  train = datasets.Split(rng.integers(0, 256, (16, 28, 28, 1), dtype=np.uint8),
                         rng.integers(0, 10, 16).astype(np.int32))
  assert run_pictures.augmented_figures(config, train, 't') == {}
  del config['augment']  # a run recorded before config.augment existed
  assert run_pictures.augmented_figures(config, train, 't') == {}
  config = default.get_config()
  config.augment.update(rotate=15.0, elastic_alpha=34.0)
  figures = run_pictures.augmented_figures(config, train, 't')
  assert list(figures) == ['augmented'] and 'augmented' in run_pictures.CAPTIONS
  suptitle = figures['augmented']._suptitle.get_text()  # pylint: disable=protected-access
  assert '(rotate=15, elastic_alpha=34, elastic_sigma=4)' in suptitle


def test_a_run_that_stopped_early_still_gets_its_augmented_digits(tmp_path):
  """The observer's path without parameters (diverged or pruned): the numbers' pictures and
  the augmented digits, written as PNG and TensorBoard image."""
  from cnn_jax.engine import observers  # pylint: disable=g-import-not-at-top

  class Events:
    written = {}

    def write_images(self, step, images):
      self.written.update({tag: step for tag in images})

  config = default.get_config()
  config.augment.update(translate=2.0, erase_prob=0.5, erase_max_area=0.2)
  rng = np.random.default_rng(0)
  split = datasets.Split(rng.integers(0, 256, (16, 28, 28, 1), dtype=np.uint8),
                         rng.integers(0, 10, 16).astype(np.int32))
  splits = datasets.Splits(train=split, validation=None, test=split, num_classes=10)
  events = Events()
  observer = run_pictures.PictureObserver()
  observer.run_end(observers.RunEnd(member=0, workdir=str(tmp_path), config=config, step=3,
                                    status='diverged', history=(), final={}, events=events,
                                    splits=splits))
  observer.close()
  assert os.listdir(tmp_path / run_pictures.DIRECTORY) == ['augmented.png']
  assert events.written == {'pictures/augmented': 3}


# ---- in the engine's step: per member, from the run's seed ----


def test_a_group_augments_each_member_as_its_run_alone(tmp_path, tiny_config, mock_mnist):
  from cnn_jax import train  # pylint: disable=g-import-not-at-top
  from cnn_jax.engine import loop  # pylint: disable=g-import-not-at-top
  from cnn_jax.engine import plan as plan_lib  # pylint: disable=g-import-not-at-top
  from tests.test_groups import assert_close_params, member_configs  # pylint: disable=g-import-not-at-top
  from tests.test_train import read_params  # pylint: disable=g-import-not-at-top
  tiny_config.model.conv_impl = tiny_config.model.pool_impl = 'xla'
  tiny_config.train.num_train_steps = 6
  tiny_config.augment.update(dict(translate=2.0, elastic_alpha=8.0, erase_prob=0.5,
                                  erase_max_area=0.2))
  # Strengths differ (traced), and so do seeds: each member draws its own augmentations.
  configs = member_configs(tiny_config, seed=[0, 1], augment__rotate=[10.0, 20.0])
  loop.train(plan_lib.make(configs), [str(tmp_path / f'g{k}') for k in range(2)])
  alone = []
  for k, config in enumerate(configs):
    train.train_and_evaluate(config, str(tmp_path / f'alone{k}'))
    assert_close_params(read_params(str(tmp_path / f'g{k}')),
                        read_params(str(tmp_path / f'alone{k}')))
    alone.append(read_params(str(tmp_path / f'alone{k}')))
  # The same seed without augmentation trains otherwise; with it again, bit for bit alike.
  train.train_and_evaluate(configs[0], str(tmp_path / 'again'))
  jax.tree_util.tree_map(np.testing.assert_array_equal, read_params(str(tmp_path / 'again')),
                         alone[0])
  plain = configs[0].copy_and_resolve_references()
  for field in ('translate', 'rotate', 'elastic_alpha', 'erase_prob'):
    plain.augment[field] = 0.0
  train.train_and_evaluate(plain, str(tmp_path / 'plain'))
  assert not np.allclose(read_params(str(tmp_path / 'plain'))['logits']['kernel'],
                         alone[0]['logits']['kernel'])
