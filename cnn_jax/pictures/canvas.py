"""The figure every picture of this package is drawn on, its text size and colours, and its PNG.

`new_figure` is the one place a picture's figure is made (its DPI and layout), and `render`
the one place it becomes PNG bytes, so that the pictures of a run (run_pictures.py), of a
sweep's report and of a notebook come out alike. Figures are built with matplotlib's object
API (no pyplot), so drawing needs no display and may run in a worker thread.

matplotlib is imported on first use: importing it costs about a second, which a run's start
does not pay.
"""
from __future__ import annotations

import io
import struct

DPI = 80
# The smallest text of a picture, in points: 10 px at DPI, about the least that reads at the
# size the pictures are committed and shown (7 pt, 8 px, did not).
SMALL = 9
WRONG_COLOR = '#d62728'
SPLIT_COLORS = {'train': '#1f77b4', 'validation': '#ff7f0e', 'test': '#2ca02c'}


def new_figure(width: float, height: float):
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top  (slow import)
  return Figure(figsize=(width, height), dpi=DPI, layout='constrained')


def render(figure) -> tuple[bytes, int, int]:
  """(PNG bytes, height, width) of a figure; the size read from the PNG itself (its IHDR
  chunk), which the renderer may have rounded."""
  buffer = io.BytesIO()
  figure.savefig(buffer, format='png', dpi=DPI)
  png = buffer.getvalue()
  width, height = struct.unpack('>II', png[16:24])
  return png, height, width
