"""Credentials and endpoint from the environment (issue 20, item 1).

The resolution is one pure function over a mapping, tested here case by case without
I/O; the three constructors (``SDK``, ``SyncSDK``, the legacy ``compat.SDK``) are then
checked to use it, with the variables set through ``monkeypatch``.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from panoply_async import SDK, ConfigurationError, CredentialsError, SyncSDK
from panoply_async._wire.credentials import ENDPOINT_VARIABLES, resolve_credentials
from panoply_async.compat import SDK as LegacySDK
from panoply_async.local import make_credentials

KEY, SECRET = make_credentials("envtest")
OTHER_KEY, OTHER_SECRET = make_credentials("other")
ALL_VARIABLES = ("PANOPLY_APIKEY", "PANOPLY_APISECRET", *ENDPOINT_VARIABLES,
                 "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ALL_VARIABLES:
        monkeypatch.delenv(variable, raising=False)


def test_explicit_arguments_need_no_environment() -> None:
    credentials, endpoint = resolve_credentials(KEY, SECRET, None, {})
    assert (credentials.apikey, credentials.apisecret, endpoint) == (KEY, SECRET, None)


def test_each_argument_comes_from_its_variable_when_not_given() -> None:
    environ = {"PANOPLY_APIKEY": KEY, "PANOPLY_APISECRET": SECRET}
    for key, secret in itertools.product((None, KEY), (None, SECRET)):
        credentials, _ = resolve_credentials(key, secret, None, environ)
        assert (credentials.apikey, credentials.apisecret) == (KEY, SECRET)


def test_explicit_arguments_win_over_the_environment() -> None:
    environ = {
        "PANOPLY_APIKEY": OTHER_KEY,
        "PANOPLY_APISECRET": OTHER_SECRET,
        "PANOPLY_ENDPOINT_URL": "http://127.0.0.1:1",
    }
    credentials, endpoint = resolve_credentials(KEY, SECRET, "http://127.0.0.1:2", environ)
    assert (credentials.apikey, credentials.apisecret) == (KEY, SECRET)
    assert endpoint == "http://127.0.0.1:2"
    # One given, the other from the environment: each decides for itself.
    credentials, _ = resolve_credentials(None, SECRET, None, environ)
    assert (credentials.apikey, credentials.apisecret) == (OTHER_KEY, SECRET)


@pytest.mark.parametrize(
    ("environ", "names"),
    [
        ({}, ["api key and api secret", "PANOPLY_APIKEY and PANOPLY_APISECRET"]),
        ({"PANOPLY_APIKEY": KEY}, ["no api secret", "PANOPLY_APISECRET"]),
        ({"PANOPLY_APISECRET": SECRET}, ["no api key", "PANOPLY_APIKEY"]),
        ({"PANOPLY_APIKEY": "", "PANOPLY_APISECRET": SECRET}, ["no api key", "PANOPLY_APIKEY"]),
    ],
)
def test_a_missing_credential_names_the_variables_and_no_value(
    environ: dict[str, str], names: list[str]
) -> None:
    with pytest.raises(CredentialsError) as info:
        resolve_credentials(None, None, None, environ)
    message = str(info.value)
    for name in names:
        assert name in message
    assert SECRET not in message
    assert KEY not in message


def test_a_malformed_variable_is_named_and_not_echoed() -> None:
    bad_secret = "bm90LWEtc2VjcmV0"  # base64, but not four parts
    with pytest.raises(CredentialsError) as info:
        resolve_credentials(None, None, None, {"PANOPLY_APIKEY": KEY,
                                               "PANOPLY_APISECRET": bad_secret})
    message = str(info.value)
    assert "PANOPLY_APISECRET" in message
    assert bad_secret not in message
    # Given in code, the message does not point at the environment.
    with pytest.raises(CredentialsError) as info:
        resolve_credentials(KEY, bad_secret, None, {})
    assert "PANOPLY_" not in str(info.value)


@pytest.mark.parametrize("first", range(len(ENDPOINT_VARIABLES)))
def test_the_endpoint_is_the_first_variable_set(first: int) -> None:
    environ = {
        variable: f"http://127.0.0.1:{1000 + index}"
        for index, variable in enumerate(ENDPOINT_VARIABLES)
        if index >= first
    }
    environ["PANOPLY_APIKEY"], environ["PANOPLY_APISECRET"] = KEY, SECRET
    _, endpoint = resolve_credentials(None, None, None, environ)
    assert endpoint == f"http://127.0.0.1:{1000 + first}"


def test_empty_endpoint_variables_are_skipped_and_none_means_aws() -> None:
    environ = {"PANOPLY_ENDPOINT_URL": "", "AWS_ENDPOINT_URL_SQS": "  ",
               "AWS_ENDPOINT_URL": "http://127.0.0.1:3"}
    assert resolve_credentials(KEY, SECRET, None, environ)[1] == "http://127.0.0.1:3"
    assert resolve_credentials(KEY, SECRET, None, {})[1] is None


def test_botocores_switch_turns_off_the_aws_variables_only() -> None:
    environ = {"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true",
               "AWS_ENDPOINT_URL": "http://127.0.0.1:3"}
    assert resolve_credentials(KEY, SECRET, None, environ)[1] is None
    environ["PANOPLY_ENDPOINT_URL"] = "http://127.0.0.1:4"
    assert resolve_credentials(KEY, SECRET, None, environ)[1] == "http://127.0.0.1:4"


def test_a_malformed_endpoint_variable_is_named_and_not_echoed() -> None:
    value = "127.0.0.1:4566-user:hunter2"
    with pytest.raises(ConfigurationError) as info:
        resolve_credentials(KEY, SECRET, None, {"AWS_ENDPOINT_URL_SQS": value})
    assert "AWS_ENDPOINT_URL_SQS" in str(info.value)
    assert "hunter2" not in str(info.value)


# -- the constructors use it ----------------------------------------------------------


def _set_environment(monkeypatch: pytest.MonkeyPatch) -> str:
    endpoint = "http://127.0.0.1:4999"
    monkeypatch.setenv("PANOPLY_APIKEY", KEY)
    monkeypatch.setenv("PANOPLY_APISECRET", SECRET)
    monkeypatch.setenv("PANOPLY_ENDPOINT_URL", endpoint)
    return endpoint


def _expected_url(endpoint: str, key: str = KEY, secret: str = SECRET) -> str:
    return resolve_credentials(key, secret, endpoint, {})[0].queue_url(endpoint)


@pytest.mark.parametrize("cls", [SDK, SyncSDK, LegacySDK])
def test_every_constructor_reads_the_environment(
    cls: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = _set_environment(monkeypatch)
    conn = cls()
    url = conn.qurl if cls is LegacySDK else conn.queue_url
    assert url == _expected_url(endpoint)
    if cls is not SDK:
        conn.close()


@pytest.mark.parametrize("cls", [SDK, SyncSDK, LegacySDK])
def test_every_constructor_prefers_its_arguments(
    cls: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _set_environment(monkeypatch)
    conn = cls(OTHER_KEY, OTHER_SECRET, endpoint_url="http://127.0.0.1:5000")
    url = conn.qurl if cls is LegacySDK else conn.queue_url
    assert url == _expected_url("http://127.0.0.1:5000", OTHER_KEY, OTHER_SECRET)
    if cls is not SDK:
        conn.close()


@pytest.mark.parametrize("cls", [SDK, SyncSDK, LegacySDK])
def test_every_constructor_names_the_missing_variables(cls: Any) -> None:
    with pytest.raises(CredentialsError, match="PANOPLY_APIKEY and PANOPLY_APISECRET"):
        cls()


def test_the_legacy_sdk_shows_the_secret_it_read(monkeypatch: pytest.MonkeyPatch) -> None:
    _set_environment(monkeypatch)
    legacy = LegacySDK()
    assert (legacy.apikey, legacy.apisecret) == (KEY, SECRET)
    assert SECRET not in repr(legacy)
    legacy.close()
