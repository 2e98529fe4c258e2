"""Data augmentation on the device, inside the train step: `augment(key, images, settings)`.

Per example, each with its own random draw: an affine warp (translation, rotation and
scaling in one matrix), an elastic distortion (Simard, Steinkraus and Platt 2003, the classic
MNIST augmentation: a smoothed random displacement field), and random erasing (Zhong et al.
2017: a rectangle of zeros). The two warps are one bilinear resampling (a digit is blurred
once), with 0 outside the image, as MNIST's background is; erasing is a mask.

The resampling is JAX's own jax.scipy.ndimage.map_coordinates, not dm-pix, for a measured
reason (benchmarks/augment.py, T2's batch of 64 on the 2-core CPU): dm_pix.affine_transform
interpolates an (H, W, C) image as a 3-d volume, 8 gathers a pixel where 4 do, and took 14 ms
a batch; dm_pix.elastic_deformation took 99 ms, most of it its Gaussian blur, an XLA CPU
convolution of one channel, which two small matrix products do here (`smooth`). All of
this module's transforms together took 1.6 ms. The tests check the warp against
scipy.ndimage.affine_transform and dm_pix.affine_transform, the smoothing against
scipy.ndimage.gaussian_filter.

Structure and values are kept apart, as the model does for dropout: which transforms run is
static (`active(config.augment)`, zero vs non-zero), their strengths may be traced arrays (a
vmapped sweep group passes one value per member; TRACEABLE_FIELDS). A transform that is off
is skipped, so a config with every strength 0 trains exactly as it did before augmentation
existed; a traced strength of 0 is the identity too (tests check both).

Every draw comes from the key alone, and each transform draws from its own fold of the
example's key, so turning erasing on does not change which rotation an example gets.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
from jax.scipy import ndimage
import numpy as np

from cnn_jax import member_view
from cnn_jax.ranges import Range

# Bounds of the strengths' ranges known only with the dataset (validation gives their values).
SIDE, LONGEST = 'min(height, width)', 'max(height, width)'


@dataclasses.dataclass(frozen=True)
class Strength:
  """One field of config.augment, declared here where it is implemented: the field table
  (config/fields.py: traced, its docs row), Settings and validation (its range) read it.
  With `off_at_zero`, 0 turns its transform off (part of the program's structure)."""
  name: str
  default: float
  range: Range
  meaning: str
  off_at_zero: bool = True


STRENGTHS = (
    Strength('translate', 0.0, Range(0, SIDE, high_open=True, noun='pixels',
                                     why='pixels; a shift by the whole {high}-pixel side '
                                         'leaves nothing'),
             'shift along each axis uniform in [-translate, translate]'),
    Strength('rotate', 0.0, Range(0, 180, noun='degrees', why='degrees'),
             'rotation uniform in [-rotate, rotate]'),
    Strength('scale', 0.0, Range(0, 1, high_open=True, noun='a fraction',
                                 why='the zoom lies in [1 - scale, 1 + scale]'),
             'zoom uniform in [1 - scale, 1 + scale]'),
    Strength('elastic_alpha', 0.0, Range(0, math.inf, high_open=True, noun='pixels',
                                         why='pixels; 0 turns elastic distortion off'),
             "elastic distortion (Simard et al. 2003 used 34 on MNIST): the displacements' "
             'scale'),
    # Checked with elastic distortion off too: a sweep that turns it on must not meet it late.
    Strength('elastic_sigma', 4.0, Range(0, LONGEST, low_open=True, noun='pixels',
                                         why='pixels: the std of the smoothing; wider than '
                                             'the image it is a plain shift'),
             'std of the Gaussian smoothing the displacements (Simard: 4)', off_at_zero=False),
    Strength('erase_prob', 0.0, Range(0, 1, noun='a probability', why='a probability'),
             'random erasing (Zhong et al. 2017): the chance an example gets a rectangle of '
             'zeros'),
    Strength('erase_max_area', 0.0, Range(0, 1, noun='a fraction', why='a fraction of the image'),
             'the most of the image the rectangle covers (at least 2% of it)'),
)
FIELDS = tuple(strength.name for strength in STRENGTHS)  # config.augment's fields
# Numeric fields that change no shape and no program: a vmapped group may pass them as traced
# per-member values. All of them: even the smoothing's width is a value, not a kernel size.
TRACEABLE_FIELDS = FIELDS
TRANSFORMS = ('affine', 'elastic', 'erase')

# Folded into the step's key (key_for_step): the augmentation's draws are a stream of their
# own, so the dropout masks of a run stay what they were without augmentation.
STREAM = 0x61756700  # 'aug\0'
PICTURE_STREAM = 0x70696300  # 'pic\0': the example digits of the run's picture
# Random erasing's rectangle (Zhong et al. 2017): area at least this fraction of the image
# (less if erase_max_area is smaller), aspect ratio (height / width) log-uniform in
# [ERASE_ASPECT, 1 / ERASE_ASPECT]; the paper's s_l and r_1.
ERASE_MIN_AREA = 0.02
ERASE_ASPECT = 0.3


def _from_config(cls, augment_cfg) -> Settings:
  """A validated config.augment, or one member's view of it (member_view.Section, whose
  traced strengths are traced arrays); the structure from the config alone."""
  augment_cfg = member_view.section(augment_cfg)
  return cls(**{field: augment_cfg[field] for field in FIELDS}, on=active(augment_cfg))


SETTINGS_DOC = """Strengths of one member's augmentation (the fields of STRENGTHS, defaults
as there), each a Python number or a traced scalar; `on` (which TRANSFORMS run) is static,
part of the program. A pytree of the strengths. Made from STRENGTHS: a strength is declared
once."""
Settings = dataclasses.make_dataclass(
    'Settings', [(s.name, Any, s.default) for s in STRENGTHS] + [('on', frozenset, frozenset())],
    frozen=True, namespace={'from_config': classmethod(_from_config), '__module__': __name__,
                            '__doc__': SETTINGS_DOC})
jax.tree_util.register_dataclass(Settings, data_fields=list(FIELDS), meta_fields=['on'])


def active(augment_cfg) -> frozenset:
  """The transforms a config runs (a subset of TRANSFORMS): those with a non-zero strength.
  Static, from the config's numbers even in a member's view: configs that share a program
  must agree on it (engine/grouping.py's key). A ConfigDict, a plain dict or a Section."""
  is_on = member_view.section(augment_cfg).is_on
  on = set()
  if is_on('translate') or is_on('rotate') or is_on('scale'):
    on.add('affine')
  if is_on('elastic_alpha'):
    on.add('elastic')
  if is_on('erase_prob') and is_on('erase_max_area'):
    on.add('erase')
  return frozenset(on)


def key_for_step(member_key: jax.Array, step) -> jax.Array:
  """The key of a member's augmentation at `step` (the key the step folds for dropout)."""
  return jax.random.fold_in(jax.random.fold_in(member_key, step), STREAM)


def augment(key: jax.Array, images: jax.Array, settings: Settings) -> jax.Array:
  """`images` (B, H, W, C) float32 in [0, 1], each example transformed with its own draw
  from `key`; the same shape, still in [0, 1]. Pure and jittable; vmaps over members."""
  if not settings.on:
    return images
  keys = jax.random.split(key, images.shape[0])
  return jax.vmap(_one, in_axes=(0, 0, None))(keys, images, settings)


def _one(key, image, settings: Settings):
  # Folding in the transform's index (not splitting by how many are on) keeps each
  # transform's draw independent of which others run.
  if 'affine' in settings.on or 'elastic' in settings.on:
    image = _warp(key, image, settings)
  if 'erase' in settings.on:
    image = _erase(jax.random.fold_in(key, 2), image, settings)
  return image


def _warp(key, image, settings: Settings):
  """The affine warp, then the elastic distortion, as one resampling: output pixel o reads
  the input at affine_pull(o + displacement(o))."""
  height, width = image.shape[:2]
  rows, columns = jnp.meshgrid(jnp.arange(height, dtype=jnp.float32),
                               jnp.arange(width, dtype=jnp.float32), indexing='ij')
  if 'elastic' in settings.on:
    drows, dcolumns = elastic_field(jax.random.fold_in(key, 1), (height, width),
                                    settings.elastic_alpha, settings.elastic_sigma)
    rows, columns = rows + drows, columns + dcolumns
  if 'affine' in settings.on:
    matrix = _draw_affine(jax.random.fold_in(key, 0), (height, width), settings)
    rows, columns = (matrix[0, 0] * rows + matrix[0, 1] * columns + matrix[0, 2],
                     matrix[1, 0] * rows + matrix[1, 1] * columns + matrix[1, 2])
  # Bilinear weights sum to 1 only to rounding: a white pixel may come out a ulp above 1.
  return jnp.clip(resample(image, rows, columns), 0.0, 1.0)


def resample(image, rows, columns):
  """image (H, W, C) read at the (H, W) coordinates (rows, columns): bilinear, 0 outside the
  image, every channel at the same places."""
  return jnp.stack([ndimage.map_coordinates(image[..., c], [rows, columns], order=1,
                                            mode='constant', cval=0.0)
                    for c in range(image.shape[-1])], axis=-1)


def affine_matrix(angle, zoom, shift, image_shape) -> jax.Array:
  """The (2, 3) pull matrix M of a warp of an (H, W, ...) image that rotates by `angle`
  radians (counter-clockwise as displayed) and zooms by `zoom` about the image centre, then
  shifts by `shift` = (rows, columns) pixels (positive: down, right). Output pixel o reads
  the input at M[:, :2] @ o + M[:, 2], as scipy.ndimage.affine_transform and
  dm_pix.affine_transform read their matrix.

  That inverts the forward map o = c + zoom R (i - c) + shift, R = [[cos, -sin], [sin, cos]]
  in (row, column) coordinates: M[:, :2] = R^T / zoom, M[:, 2] = c - M[:, :2] (c + shift).
  """
  cos, sin = jnp.cos(angle), jnp.sin(angle)
  pull = jnp.array([[cos, sin], [-sin, cos]]) / zoom
  centre = (jnp.asarray(image_shape[:2], jnp.float32) - 1.0) / 2.0
  offset = centre - pull @ (centre + jnp.asarray(shift, jnp.float32))
  return jnp.concatenate([pull, offset[:, None]], axis=1)


def _draw_affine(key, image_shape, settings: Settings):
  shift_key, angle_key, zoom_key = jax.random.split(key, 3)
  shift = jax.random.uniform(shift_key, (2,), minval=-1.0, maxval=1.0) * settings.translate
  angle = (jax.random.uniform(angle_key, minval=-1.0, maxval=1.0)
           * jnp.deg2rad(jnp.asarray(settings.rotate, jnp.float32)))
  zoom = 1.0 + jax.random.uniform(zoom_key, minval=-1.0, maxval=1.0) * settings.scale
  return affine_matrix(angle, zoom, shift, image_shape)


def elastic_field(key, shape, alpha, sigma) -> jax.Array:
  """(2, H, W) displacements in pixels (rows, columns), Simard et al.'s: uniform in [-1, 1]
  at each pixel, smoothed by a Gaussian of std `sigma` pixels, times `alpha`."""
  noise = jax.random.uniform(key, (2, *shape), minval=-1.0, maxval=1.0)
  # A member that does not distort (alpha 0) may hold any sigma (validation checks sigma
  # only with alpha > 0): 1 keeps its zero field from becoming 0 * NaN.
  sigma = jnp.where(jnp.asarray(sigma) > 0, sigma, 1.0)
  return alpha * smooth(noise, sigma)


def smooth(fields, sigma) -> jax.Array:
  """(..., H, W) fields convolved along both axes with a Gaussian of std `sigma` pixels, 0
  outside the image; as scipy.ndimage.gaussian_filter(mode='constant') with a kernel that
  spans every offset inside the image. Two products with the convolution's (banded) matrix:
  exact, sigma may be traced, and microseconds where XLA's CPU convolution of one channel
  took milliseconds."""
  height, width = fields.shape[-2:]
  return jnp.einsum('ij,...jk,lk->...il', _gaussian_matrix(height, sigma), fields,
                    _gaussian_matrix(width, sigma))


def _gaussian_matrix(size: int, sigma) -> jax.Array:
  """(size, size): row i holds the taps that give output i, normalized over all the
  kernel's offsets (those past the edge weigh the zeros there)."""
  taps = lambda offsets: jnp.exp(-0.5 * (offsets / sigma) ** 2)
  offsets = jnp.arange(size, dtype=jnp.float32)
  whole = taps(jnp.arange(1 - size, size, dtype=jnp.float32)).sum()
  return taps(offsets[:, None] - offsets[None, :]) / whole


def erase_box(key, image_shape, settings: Settings):
  """(erased?, top, left, height, width) of one example's rectangle, integer pixels."""
  height, width = image_shape[:2]
  on_key, area_key, aspect_key, top_key, left_key = jax.random.split(key, 5)
  erased = jax.random.uniform(on_key) < settings.erase_prob
  largest = jnp.asarray(settings.erase_max_area, jnp.float32)
  area = jax.random.uniform(area_key, minval=jnp.minimum(ERASE_MIN_AREA, largest),
                            maxval=largest) * (height * width)
  aspect = jnp.exp(jax.random.uniform(aspect_key, minval=math.log(ERASE_ASPECT),
                                      maxval=-math.log(ERASE_ASPECT)))
  box_height = jnp.clip(jnp.round(jnp.sqrt(area * aspect)), 0, height).astype(jnp.int32)
  box_width = jnp.clip(jnp.round(jnp.sqrt(area / aspect)), 0, width).astype(jnp.int32)
  # uniform < 1, so the corner stays where the whole rectangle fits.
  top = jnp.floor(jax.random.uniform(top_key) * (height - box_height + 1)).astype(jnp.int32)
  left = jnp.floor(jax.random.uniform(left_key) * (width - box_width + 1)).astype(jnp.int32)
  return erased, top, left, box_height, box_width


def _erase(key, image, settings: Settings):
  erased, top, left, box_height, box_width = erase_box(key, image.shape, settings)
  rows = jnp.arange(image.shape[0])[:, None]
  columns = jnp.arange(image.shape[1])[None, :]
  inside = ((rows >= top) & (rows < top + box_height)
            & (columns >= left) & (columns < left + box_width))
  return jnp.where((erased & inside)[..., None], 0.0, image)


def examples(augment_cfg, seed: int, images: np.ndarray, copies: int) -> np.ndarray:
  """(N, copies, H, W, C) float32 host array: `copies` augmentations of each of `images`
  (uint8 or float in [0, 1]) with the config's strengths, drawn from `seed` (for the run's
  picture: examples of its augmentation, not the draws of any one step)."""
  images = np.asarray(images)
  floats = images.astype(np.float32) / (255.0 if images.dtype == np.uint8 else 1.0)
  key = jax.random.fold_in(jax.random.key(seed), PICTURE_STREAM)
  drawn = _copies(key, jnp.asarray(floats), Settings.from_config(augment_cfg), copies)
  return np.asarray(drawn).swapaxes(0, 1)


# One program per shape and structure for every run of a process (a sweep's pictures).
@functools.partial(jax.jit, static_argnums=3)
def _copies(key, images, settings: Settings, copies: int):
  return jax.vmap(lambda k: augment(k, images, settings))(jax.random.split(key, copies))
