import os
import stat

import pytest

from server.config import ConfigError, load_config, mask_url


def test_defaults_put_everything_inside_home(tmp_path):
    settings = load_config({"HOME": str(tmp_path)}, environ={})
    assert settings["DATABASE_URL"] == f"sqlite:///{tmp_path / 'nudge.db'}"
    assert settings["REDIS_URL"] is None  # embedded Redis
    assert settings["BASE_URL"] == "http://127.0.0.1:8000"


def test_environment_wins_over_file_and_file_over_defaults(tmp_path):
    (tmp_path / "nudge.toml").write_text('base_url = "https://file.example.com"\ndefault_timezone = "Europe/Berlin"\n')
    env = {"NUDGE_BASE_URL": "https://env.example.com/", "NUDGE_HOME": str(tmp_path)}
    settings = load_config(environ=env)
    assert settings["BASE_URL"] == "https://env.example.com"
    assert settings["DEFAULT_TIMEZONE"] == "Europe/Berlin"
    assert load_config({"BASE_URL": "https://arg.example.com"}, environ=env)["BASE_URL"] == "https://arg.example.com"


def test_explicit_config_file_must_exist(tmp_path):
    with pytest.raises(ConfigError, match="NUDGE_CONFIG: no such file"):
        load_config(environ={"NUDGE_HOME": str(tmp_path), "NUDGE_CONFIG": str(tmp_path / "missing.toml")})


@pytest.mark.parametrize(
    "key,value,needle",
    [
        ("DATABASE_URL", "mysql://root@localhost/nudge", "unsupported database 'mysql'"),
        ("DATABASE_URL", "not a url", "is not a database URL"),
        ("REDIS_URL", "http://localhost:6379", "scheme must be redis://"),
        ("BASE_URL", "nudge.example.com", "must be an absolute http(s) URL"),
        ("DEFAULT_TIMEZONE", "Mars/Olympus", "unknown time zone"),
        ("SECRET_KEY", "short", "too short"),
        ("SCHEDULER_INTERVAL", "soon", "must be a number"),
        ("MIGRATE_ON_START", "perhaps", "must be true or false"),
        ("AMBIGUOUS_SENDS", "maybe", "must be hold or resend, got 'maybe'"),
        ("MAX_ATTEMPTS", "0", "must be greater than 0"),
        ("MAX_ATTEMPTS", "101", "must be at most 100"),
        ("MAX_ATTEMPTS", "lots", "must be a whole number"),
    ],
)
def test_bad_setting_names_the_variable(tmp_path, key, value, needle):
    with pytest.raises(ConfigError) as info:
        load_config(environ={"NUDGE_HOME": str(tmp_path), f"NUDGE_{key}": value})
    assert str(info.value).startswith(f"NUDGE_{key}: ")
    assert needle in str(info.value)


def test_postgres_url_gets_the_psycopg3_driver(tmp_path):
    settings = load_config({"HOME": str(tmp_path), "DATABASE_URL": "postgresql://u:p@db/nudge"}, environ={})
    assert settings["DATABASE_URL"] == "postgresql+psycopg://u:p@db/nudge"


def test_secret_key_is_generated_once_and_private(tmp_path):
    first = load_config({"HOME": str(tmp_path)}, environ={})["SECRET_KEY"]
    second = load_config({"HOME": str(tmp_path)}, environ={})["SECRET_KEY"]
    assert first == second and len(first) >= 32
    assert stat.S_IMODE(os.stat(tmp_path / "secret_key").st_mode) == 0o600


def test_mask_url_hides_passwords():
    assert mask_url("postgresql://u:secret@h/db") == "postgresql://u:***@h/db"
    assert mask_url("sqlite:///x.db") == "sqlite:///x.db"


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("email3/7d", "NUDGE_FREQUENCY_CAPS: expected CHANNEL=COUNT/WINDOW, got 'email3/7d'"),
        ("email=3/7x", "NUDGE_FREQUENCY_CAPS: email: must be a count and a window such as 3/7d"),
        ("Email=3/7d", "NUDGE_FREQUENCY_CAPS: expected CHANNEL=COUNT/WINDOW"),
    ],
)
def test_bad_per_channel_caps_name_the_variable_and_the_channel(tmp_path, value, needle):
    with pytest.raises(ConfigError) as error:
        load_config({"HOME": str(tmp_path)}, environ={"NUDGE_FREQUENCY_CAPS": value})
    assert needle in str(error.value)


def test_per_channel_caps_are_normalised_and_the_optimisation_settings_checked(tmp_path):
    env = {"NUDGE_FREQUENCY_CAPS": " email=3/7d , sms=02/1w ", "NUDGE_FREQUENCY_CAP_RESERVE": "1"}
    settings = load_config({"HOME": str(tmp_path)}, environ=env)
    assert settings["FREQUENCY_CAPS"] == "email=3/7d,sms=2/1w" and settings["FREQUENCY_CAP_RESERVE"] == 1
    assert settings["BEST_TIME_PRIOR"] == 5.0
    with pytest.raises(ConfigError, match=r"NUDGE_BEST_TIME_PRIOR: must be at most 1000, got 5000\.0"):
        load_config({"HOME": str(tmp_path)}, environ={"NUDGE_BEST_TIME_PRIOR": "5000"})
    with pytest.raises(ConfigError, match="NUDGE_FREQUENCY_CAP_RESERVE: must be greater than 0"):
        load_config({"HOME": str(tmp_path)}, environ={"NUDGE_FREQUENCY_CAP_RESERVE": "-2"})


@pytest.mark.parametrize(
    ("value", "stored", "seconds"),
    [("90m", "90m", 5400), (" 36H ", "36h", 129600), ("2w", "2w", 1209600), ("3600", "3600", 3600), ("0", "0", 0)],
)
def test_an_attribution_window_is_a_span_or_plain_seconds(tmp_path, value, stored, seconds):
    """The strict form of the span parser the stats windows share (server.durations): a unit or plain seconds."""
    from server.durations import window_seconds

    settings = load_config({"HOME": str(tmp_path), "ATTRIBUTION_CLICK_WINDOW": value}, environ={})
    assert settings["ATTRIBUTION_CLICK_WINDOW"] == stored and window_seconds(stored) == seconds


@pytest.mark.parametrize("value", ["7 days", "7days", "1234567d", "-1d", "1.5h", "7x", "d", " ", "\u0663d"])
def test_a_window_that_is_no_span_names_the_variable(tmp_path, value):
    problem = r"NUDGE_ATTRIBUTION_DELIVERY_WINDOW: must be a window like 7d, 36h, 90m or 0"
    with pytest.raises(ConfigError, match=problem):
        load_config({"HOME": str(tmp_path), "ATTRIBUTION_DELIVERY_WINDOW": value}, environ={})


def test_a_comma_separated_setting_reads_as_its_names():
    from server.config_checks import names_of

    assert names_of(" email, ,sms,email ") == {"email", "sms"}
    assert names_of(None) == names_of("") == names_of(" , ") == frozenset()


def test_frequency_caps_follow_the_settings_they_are_read_from():
    """The caps are parsed once per setting values: other values (a settings page save) give other caps."""
    from server.engine.caps import caps_for

    first = caps_for({"FREQUENCY_CAP": "3/7d", "FREQUENCY_CAPS": "email=2/1d,sms=1/1d"}, "email")
    assert [(c.channel, c.count, c.seconds) for c in first] == [(None, 3, 604800), ("email", 2, 86400)]
    changed = caps_for({"FREQUENCY_CAP": None, "FREQUENCY_CAPS": "email=5/1h"}, "email")
    assert [(c.channel, c.count, c.seconds) for c in changed] == [("email", 5, 3600)]
    assert caps_for({"FREQUENCY_CAPS": "email=5/1h"}, "sms") == ()
