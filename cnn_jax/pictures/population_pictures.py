"""A population's picture (population-based training, sweeps/population_sweep.py), from its
population.json: each explored number of each member over the steps, as the step function it
was, and the objective each member scored at each interval. A member that took another's
state at an interval is marked there (x), on the line it continues from the member it copied.
"""
from __future__ import annotations

import numpy as np

from cnn_jax.engine import metrics
from cnn_jax.pictures import canvas
from cnn_jax.pictures import scales

FILENAME = 'population.png'
CAPTION = ('Each member\'s explored numbers over the steps and its objective at each '
           'interval; x: it took a better member\'s state there')


def draw(recorded: dict, total_steps: int, title: str):
  """The figure of a population.json (`total_steps`: where the last segments end)."""
  paths, intervals = recorded['paths'], recorded['intervals']
  members = len(recorded['members'])
  figure = canvas.new_figure(4.2 * (len(paths) + 1), 3.8)
  axes = figure.subplots(1, len(paths) + 1, squeeze=False)[0]
  colors = [f'C{k % 10}' for k in range(members)]
  steps = [0] + [i['step'] for i in intervals] + [total_steps]
  for axis, path in zip(axes, paths):
    levels = [recorded['start'][path]] + [i['values'][path] for i in intervals]
    for k in range(members):
      values = [level[k] for level in levels]
      axis.step(steps, values + values[-1:], where='post', color=colors[k], linewidth=1.2,
                label=recorded['members'][k])
      moved = [(i['step'], i['values'][path][k]) for i in intervals if i['source'][k] != k]
      if moved:
        axis.plot(*zip(*moved), 'x', color=colors[k], markersize=7)
    axis.set_title(path)
    axis.set_xlabel('step')
    scales.value_axis(axis, [v for level in levels for v in level], percent=False)
    axis.grid(True, which='both', alpha=0.3)
  objective = recorded['objective']
  name = objective.partition('/')[2]
  axis = axes[-1]
  shown = []
  for k in range(members):
    points = [(i['step'], i['scores'][k]) for i in intervals if i['scores'][k] is not None]
    if points:
      axis.plot(*zip(*points), marker='o', markersize=3, color=colors[k], linewidth=1)
      shown += [v for _, v in points]
  axis.set_title(f'{objective} at each interval')
  axis.set_xlabel('step')
  percent = name in metrics.BY_NAME and metrics.BY_NAME[name].percent
  scales.value_axis(axis, shown or [np.nan], percent)
  axis.grid(True, which='both', alpha=0.3)
  if members <= 16:
    axes[0].legend(fontsize=canvas.SMALL, ncol=2)
  figure.suptitle(title)
  return figure
