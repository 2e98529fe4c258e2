"""The one rule for a picture's value axes: when an axis is logarithmic, and how its ticks
are written (in percent for error rates, '0.05' rather than 5x10^-2), and integer ticks for
counts.

Every picture applies it, ours (charts.py) and Optuna's plots of a study (study_pictures.py,
on the Axes Optuna returns), as does a sweep's report, so that an error rate reads the same
wherever it is drawn. matplotlib is imported on first use, as in canvas.py.
"""
from __future__ import annotations

import numpy as np

# A value axis is logarithmic when every value is positive and the largest is more than
# LOG_RATIO times the smallest. On a linear axis the values near the smallest would then
# share the bottom fifth of its height, and their differences, the ones a reader looks for
# (the best trials, the last epochs), vanish: one chance-level trial at 90% error flattens
# trials at 1.4-4% into a line at zero. A zero or negative value keeps the axis linear, as a
# log axis cannot draw it.
LOG_RATIO = 5.0


def spans_decades(values) -> bool:
  """Whether an axis showing `values` is logarithmic (LOG_RATIO); NaNs are left out."""
  values = np.asarray(values, np.float64)
  values = values[np.isfinite(values)]
  return bool(values.size) and values.min() > 0 and values.max() > LOG_RATIO * values.min()


def value_axis(axes, values, percent: bool, which: str = 'y') -> None:
  """The scale and tick labels of the axis (`which`: 'x' or 'y') of `axes` that shows
  `values`: logarithmic where they span decades (spans_decades), labelled in percent
  ('1.5%') when `percent` (the values are fractions, as the metrics and the study keep
  them)."""
  log = spans_decades(values)
  if log:
    getattr(axes, f'set_{which}scale')('log')
  value_ticks(getattr(axes, f'{which}axis'), percent, log)


def value_ticks(axis, percent: bool, log: bool) -> None:
  """Tick labels of a matplotlib Axis (a colorbar's too) that shows fractions or plain
  values, written plainly: '1.5%', '96.5%', '0.05' (not 1.50%, 96.50%, 5x10^-2), short enough
  not to run into each other. On a log axis, ticks at 1, 2 and 5 of each decade, so that an
  axis spanning a decade or two has several labels (matplotlib labels the decades alone, or
  on a shorter span every minor tick, 0.06 0.07 0.08 ... on top of each other)."""
  from matplotlib import ticker  # pylint: disable=g-import-not-at-top  (slow import)
  if log:
    axis.set_major_locator(ticker.LogLocator())  # the decades
    # Beyond ~9 decades matplotlib drops these minor ticks and keeps the decades alone.
    axis.set_minor_locator(ticker.LogLocator(subs=(2.0, 5.0)))
  if log or percent:
    written = ticker.FuncFormatter(lambda value, _: f'{100 * value:g}%' if percent
                                   else f'{value:g}')
    axis.set_major_formatter(written)
    if log:
      axis.set_minor_formatter(written)


def count_ticks(axis) -> None:
  """Integer ticks only, on a matplotlib Axis of counts (epochs, evaluations, trials), where
  matplotlib would put ticks at 1.25 and 1.75 between evaluations 1 and 2."""
  from matplotlib import ticker  # pylint: disable=g-import-not-at-top  (slow import)
  axis.set_major_locator(ticker.MaxNLocator(integer=True))
