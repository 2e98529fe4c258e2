"""The resume command a stopped command prints: a password in a URL masked wherever a command
shows it (credentials.py), and under srun, srun's."""
import sys

import pytest

from cnn_jax import credentials
from cnn_jax import interrupts


@pytest.mark.parametrize('text, shown', [
    ('postgresql://sweeper:s3cret@db.lab:5432/optuna', 'postgresql://sweeper:***@db.lab:5432/optuna'),
    ('--storage=postgresql+psycopg://u:p%40ss@10.0.0.1/db --workers=2',
     '--storage=postgresql+psycopg://u:***@10.0.0.1/db --workers=2'),
    ('mysql://a:b@c and postgresql://:pw@host/db', 'mysql://a:***@c and postgresql://:***@host/db'),
    ('postgresql://sweeper@db.lab/optuna', 'postgresql://sweeper@db.lab/optuna'),  # no password
    ('sqlite:////runs/search/study.db', 'sqlite:////runs/search/study.db'),
])
def test_the_password_of_every_url_is_masked(text, shown):
  assert credentials.masked(text) == shown


def test_the_resume_command_masks_the_password_and_says_where_to_keep_it(monkeypatch):
  monkeypatch.setattr(sys, 'argv', ['launch.py', '--sweep',
                                    '--storage=postgresql://sweeper:s3cret@db.lab/optuna'])
  command = interrupts.resume_command()
  assert 's3cret' not in command and 'sweeper:***@db.lab' in command
  assert '~/.pgpass' in command and '$PGPASSWORD' in command
  monkeypatch.setattr(sys, 'argv', ['launch.py', '--storage=postgresql://sweeper@db.lab/optuna'])
  assert interrupts.resume_command() == (
      'python launch.py --storage=postgresql://sweeper@db.lab/optuna')


def test_under_srun_the_resume_command_is_srun_s(monkeypatch):
  monkeypatch.setattr(sys, 'argv', ['launch.py', '--distributed=auto'])
  monkeypatch.setenv('SLURM_STEP_ID', '0')
  assert interrupts.resume_command().startswith('srun python launch.py --distributed=auto (in a job')
