from __future__ import annotations

from typing import Any

import pytest

from panoply_async import SDK, ConfigurationError, CredentialsError, parse_credentials


def test_every_vector_gives_its_queue(vectors: dict[str, Any]) -> None:
    for case in vectors["credentials"]:
        creds = parse_credentials(case["apikey"], case["apisecret"])
        assert creds.account == case["account"]
        assert creds.region == case["region"]
        assert creds.aws_account == case["aws_account"]
        assert creds.queue_url() == case["queue_url"]
        assert SDK(case["apikey"], case["apisecret"]).queue_url == case["queue_url"]


def test_bytes_are_accepted(vectors: dict[str, Any]) -> None:
    case = vectors["credentials"][0]
    creds = parse_credentials(case["apikey"].encode(), case["apisecret"].encode())
    assert creds.queue_url() == case["queue_url"]


def test_endpoint_override_keeps_the_path(vectors: dict[str, Any]) -> None:
    case = vectors["credentials"][1]
    creds = parse_credentials(case["apikey"], case["apisecret"])
    path = case["queue_url"].split("amazonaws.com", 1)[1]
    assert creds.queue_url("http://127.0.0.1:4566/") == "http://127.0.0.1:4566" + path


def test_bad_credentials_refused_at_construction(vectors: dict[str, Any]) -> None:
    for case in vectors["bad_credentials"]:
        with pytest.raises(CredentialsError) as info:
            SDK(case["apikey"], case["apisecret"])
        assert isinstance(info.value, ValueError)
        message = str(info.value)
        assert message, case["why"]
        if case["apisecret"]:
            assert case["apisecret"] not in message
            assert case["apisecret"] not in repr(info.value)


@pytest.mark.parametrize(
    ("apikey", "words"),
    [("", "empty"), ("/x", "account"), (None, "str or bytes"), (b"\xff/x", "ASCII")],
)
def test_bad_api_key_messages(vector_credentials: tuple[str, str], apikey: Any, words: str) -> None:
    with pytest.raises(CredentialsError, match=words):
        parse_credentials(apikey, vector_credentials[1])


def test_bad_secret_messages_name_the_part(vectors: dict[str, Any]) -> None:
    expected = {
        "secret is not base64": "base64",
        "secret decodes to fewer than 4 '/'-separated parts": "parts",
        "empty secret": "empty",
        "region is not a valid AWS region name": "region",
        "AWS account id is not 12 digits": "12 digits",
        "empty queue suffix (RAND2)": "queue suffix",
    }
    for case in vectors["bad_credentials"]:
        if case["why"] in expected:
            with pytest.raises(CredentialsError, match=expected[case["why"]]):
                parse_credentials(case["apikey"], case["apisecret"])


def test_repr_hides_the_secret(vector_credentials: tuple[str, str]) -> None:
    apikey, apisecret = vector_credentials
    creds = parse_credentials(apikey, apisecret)
    assert apisecret not in repr(creds)
    assert apisecret not in str(creds)
    sdk = SDK(apikey, apisecret)
    assert apisecret not in repr(sdk)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("flush_interval", 0),
        ("flush_interval", -1.0),
        ("flush_interval", "2"),
        ("max_message_bytes", 100),
        ("max_message_bytes", 1.5),
        ("max_buffer_bytes", 262_144),
        ("max_concurrent_sends", 0),
        ("max_attempts", True),
        ("shutdown_timeout", float("nan")),
        ("endpoint_url", "127.0.0.1:9"),
        ("sign", "yes"),
    ],
)
def test_bad_options_refused(vector_credentials: tuple[str, str], option: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=option):
        SDK(*vector_credentials, **{option: value})


# Issue 14 item 12: such keys were accepted, and the queue derived from them was wrong.
@pytest.mark.parametrize(
    ("apikey", "words"),
    [
        ("mykey", "no '/'"),
        (" acme/r1abc", "whitespace"),
        ("acme/r1abc\n", "whitespace"),
        (b"acme/r1abc\t", "whitespace"),
    ],
)
def test_item12_malformed_api_keys_refused(
    vector_credentials: tuple[str, str], apikey: str | bytes, words: str
) -> None:
    apisecret = vector_credentials[1]
    with pytest.raises(CredentialsError, match=words) as info:
        SDK(apikey, apisecret)
    assert apisecret not in str(info.value)
    assert apisecret not in repr(info.value)
    with pytest.raises(CredentialsError, match=words):
        parse_credentials(apikey, apisecret)
