"""Base config: every field an experiment can set, with the T2 (CNTK pooling) recipe.

The fields, their defaults, allowed values and meanings are one table,
cnn_jax/config/fields.py (docs/CONFIG.md shows it).

Experiment files start from `get_config()` here and change a few fields. Any field can be
overridden on the command line, e.g.

  python launch.py --config=experiments/default.py --config.model.activation=tanh

Derived quantities (steps per epoch, total steps) are computed where they are used, so an
override of batch size or length carries through.
"""
import ml_collections

from cnn_jax.config import architectures
from cnn_jax.config import fields


def get_config() -> ml_collections.ConfigDict:
  """Every field at its default (cnn_jax/config/fields.py, which says what each means and
  allows; docs/CONFIG.md lists them), with T2's model."""
  config = fields.defaults()
  config.model = architectures.cntk_pool()
  return config
