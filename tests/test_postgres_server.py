"""The postgres_url fixture: a real server that Optuna's RDBStorage can keep a study in."""
import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState


def test_optuna_study_round_trips_through_the_server(postgres_url):
  engine = sqlalchemy.create_engine(postgres_url)
  with engine.connect() as connection:  # over TCP on 127.0.0.1, as the role, not a superuser
    assert connection.execute(sqlalchemy.text('SELECT current_user')).scalar() == 'cnn_jax'
  engine.dispose()

  study = optuna.create_study(study_name='fixture_check',
                              storage=optuna.storages.RDBStorage(postgres_url))
  study.optimize(lambda trial: trial.suggest_float('x', -1, 1) ** 2, n_trials=3)

  # A second storage object: the trials come back from the database, not from memory.
  again = optuna.load_study(study_name='fixture_check',
                            storage=optuna.storages.RDBStorage(postgres_url))
  trials = again.get_trials(deepcopy=False)
  assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
  assert all(t.value == t.params['x'] ** 2 for t in trials)


def test_the_server_requires_the_password(postgres_url):
  wrong = sqlalchemy.engine.make_url(postgres_url).set(password='wrong')
  engine = sqlalchemy.create_engine(wrong)
  with pytest.raises(sqlalchemy.exc.OperationalError, match='password authentication failed'):
    engine.connect()
  engine.dispose()
