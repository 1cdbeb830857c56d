from dataclasses import replace
from datetime import date

import pytest

from hoop_sessions.config import Secret, Settings
from hoop_sessions.errors import ConfigError
from hoop_sessions.sync.plan import first_day


def test_settings_come_from_the_documented_variables():
    s = Settings.from_env(
        {
            "HOOP_API_URL": "https://gw.example",
            "HOOP_API_TOKEN": "tok",
            "HOOP_DATA_DIR": "/x",
            "HOOP_SYNC_START_DATE": "2026-01-02",
            "HOOP_CONCURRENCY": "4",
            "HOOP_API_AUTH_HEADER": "api-key",
        }
    )
    assert s.api_url == "https://gw.example"
    assert s.api_token == Secret("tok")
    assert str(s.data_dir) == "/x"
    assert s.sync_start_date == date(2026, 1, 2)
    assert s.concurrency == 4
    assert s.auth_header == "api-key"


def test_defaults_work_without_any_variable():
    s = Settings.from_env({})
    assert s.concurrency == 8 and str(s.data_dir) == "data" and s.auth_header == "bearer"
    assert first_day(s, date(2026, 3, 31)) == date(2026, 3, 1)


def test_the_token_never_shows_in_a_repr():
    s = Settings.from_env({"HOOP_API_TOKEN": "hpk_supersecret"})
    assert "hpk_supersecret" not in repr(s)
    assert "hpk_supersecret" not in str(s.api_token)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HOOP_CONCURRENCY": "many"}, "HOOP_CONCURRENCY must be a whole number"),
        ({"HOOP_CONCURRENCY": "0"}, "at least 1"),
        ({"HOOP_SYNC_START_DATE": "01/02/2026"}, "YYYY-MM-DD"),
        ({"HOOP_TIMEOUT_SECONDS": "-1"}, "positive"),
    ],
)
def test_bad_values_are_named_in_the_error(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "HOOP_API_URL is not set"),
        ({"HOOP_API_URL": "https://gw"}, "HOOP_API_TOKEN is not set"),
        ({"HOOP_API_URL": "ftp://gw", "HOOP_API_TOKEN": "t"}, "http"),
        ({"HOOP_API_URL": "http://gw.example.com", "HOOP_API_TOKEN": "t"}, "unencrypted"),
        (
            {"HOOP_API_URL": "https://gw", "HOOP_API_TOKEN": "t", "HOOP_API_AUTH_HEADER": "basic"},
            "bearer",
        ),
    ],
)
def test_the_api_settings_are_checked_before_any_request(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env).require_api()


def test_plain_http_is_allowed_to_loopback_or_when_asked():
    assert Settings.from_env(
        {"HOOP_API_URL": "http://127.0.0.1:8009", "HOOP_API_TOKEN": "t"}
    ).require_api()
    assert Settings.from_env(
        {"HOOP_API_URL": "http://gw.internal", "HOOP_API_TOKEN": "t", "HOOP_ALLOW_HTTP": "1"}
    ).require_api()


def test_the_data_directory_is_created_private(tmp_path):
    s = Settings(data_dir=tmp_path / "new" / "data")
    s.ensure_data_dir()
    assert (s.data_dir.stat().st_mode & 0o777) == 0o700


# -- the token -------------------------------------------------------------------------------

TOKEN = "hpk_0123456789abcdefABCDEF"


@pytest.mark.parametrize("read", [f"{TOKEN}\n", f" {TOKEN} ", f"{TOKEN}\r\n", f"\t{TOKEN}\r"])
def test_whitespace_around_the_token_is_stripped(read):
    settings = Settings.from_env({"HOOP_API_URL": "https://gw.example", "HOOP_API_TOKEN": read})
    assert settings.api_token == Secret(TOKEN)
    assert settings.require_api()[1].get() == TOKEN


@pytest.mark.parametrize(
    ("inside", "named"),
    [
        ("\n", "control character (U+000A)"),
        ("\x00", "control character (U+0000)"),
        ("\x7f", "control character (U+007F)"),
        ("\u2013", "outside Latin-1, which an HTTP header cannot carry (U+2013 EN DASH)"),
        ("\u00e9\u2028", "outside Latin-1"),
        (" ", "whitespace, which hoop does not accept inside a token (U+0020 SPACE)"),
    ],
)
def test_a_token_with_a_character_http_or_hoop_refuses_is_a_config_error_that_does_not_show_it(
    inside, named
):
    token = f"hpk_secret{inside}part"
    with pytest.raises(ConfigError, match="HOOP_API_TOKEN holds") as info:
        Settings.from_env({"HOOP_API_URL": "https://gw.example", "HOOP_API_TOKEN": token})
    assert named in str(info.value)
    assert "secret" not in str(info.value) and "part" not in str(info.value)


def test_a_token_of_only_whitespace_is_refused():
    with pytest.raises(ConfigError, match="only whitespace"):
        Settings.from_env({"HOOP_API_TOKEN": " \r\n"})


def test_every_way_a_settings_gets_a_token_checks_it():
    # The Dagster resource gives its token with dataclasses.replace (pipelines/resources.py).
    settings = replace(Settings(), api_token=Secret(f"{TOKEN}\n"))
    assert settings.api_token == Secret(TOKEN)
    assert Settings(api_token=Secret(f" {TOKEN}")).api_token == Secret(TOKEN)
    with pytest.raises(ConfigError, match="control character"):
        replace(settings, api_token=Secret("hpk_a\x1bb"))


def test_a_token_given_as_an_override_replaces_the_environment_s_before_it_is_checked():
    # The warehouse resource reads everything but the API from the environment.
    settings = Settings.from_env({"HOOP_API_TOKEN": "hpk_a\x00b"}, api_token=None)
    assert settings.api_token is None
