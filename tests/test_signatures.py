"""The carriers' upgrade signatures, checked against the carriers' own code and published vectors."""

from __future__ import annotations

import base64
import time

import jwt
import pytest
from plivo.utils.signature_v3 import construct_get_url, get_signature_v3

from receiver.security.signatures import (
    SignatureInvalid,
    parse_api_keys,
    parse_signature_input,
    plivo_signature,
    signature_base,
    verify_audiohook,
    verify_plivo,
    verify_vonage_jwt,
)

# The example in Genesys' AudioHook documentation, as its reference implementation tests it.
AUDIOHOOK_HEADERS = {
    "host": "audiohook.example.com",
    "audiohook-organization-id": "d7934305-0972-4844-938e-9060eef73d05",
    "audiohook-session-id": "30b0e395-84d3-4570-ac13-9a62d8f514c0",
    "audiohook-correlation-id": "e160e428-53e2-487c-977d-96989bf5c99d",
    "x-api-key": "SGVsbG8sIEkgYW0gdGhlIEFQSSBrZXkh",
    "signature": "sig1=:NZBwyBHRRyRoeLqy1IzOa9VYBuI8TgMFt2GRDkDuJh4=:",
    "signature-input": 'sig1=("@request-target" "@authority" "audiohook-organization-id" "audiohook-session-id" '
    '"audiohook-correlation-id" "x-api-key");keyid="SGVsbG8sIEkgYW0gdGhlIEFQSSBrZXkh";'
    'nonce="VGhpc0lzQVVuaXF1ZU5vbmNl";alg="hmac-sha256";created=1641013200;expires=3282026430',
}
AUDIOHOOK_KEYS = {"SGVsbG8sIEkgYW0gdGhlIEFQSSBrZXkh": base64.b64decode("TXlTdXBlclNlY3JldEtleVRlbGxOby0xITJAMyM0JDU=")}
TARGET = "/api/v1/voicebiometrics/ws"
SECRET = "vonage-signature-secret-of-32-bytes+"  # PyJWT warns below 32 bytes for HS256
CREATED = 1641013200


def test_the_audiohook_documentation_example_verifies() -> None:
    assert verify_audiohook(AUDIOHOOK_HEADERS, request_target=TARGET, keys=AUDIOHOOK_KEYS, now=CREATED + 5) == (
        "SGVsbG8sIEkgYW0gdGhlIEFQSSBrZXkh"
    )


def test_the_rfc_9421_hmac_example_signs_the_same_base() -> None:
    """draft-ietf-httpbis-message-signatures-11, B.2.5: the signature base as the RFC builds it."""
    [signature_input] = parse_signature_input(
        'sig-b25=("date" "@authority" "content-type");created=1618884473;keyid="test-shared-secret"'
    )
    base = signature_base(
        signature_input,
        {"date": "Tue, 20 Apr 2021 02:07:55 GMT", "@authority": "example.com", "content-type": "application/json"},
    )
    key = base64.b64decode("uzvJfB4u3N0Jy4T7NZ75MDVcr8zSTInedJtkgcu46YW4XByzNJjxBdtjUkdJPBtbmHhIDi6pcl8jsasjlTMtDQ==")

    import hashlib
    import hmac

    digest = base64.b64encode(hmac.new(key, base.encode(), hashlib.sha256).digest()).decode()
    assert digest == "pxcQw6G3AjtMBQjwo8XzkZf/bws5LelbaMk5rGIGtE8="


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"audiohook-session-id": "00000000-84d3-4570-ac13-9a62d8f514c0"}, "bad_audiohook_signature"),
        ({"host": "evil.example.com"}, "bad_audiohook_signature"),
        ({"x-api-key": "another"}, "audiohook_signature_params"),
        ({"x-api-key": None}, "audiohook_api_key_missing"),
        ({"signature": "sig2=:NZBwyBHRRyRoeLqy1IzOa9VYBuI8TgMFt2GRDkDuJh4=:"}, "audiohook_signature_malformed"),
        ({"signature": "sig1=NZBw"}, "audiohook_signature_malformed"),
        (
            {"signature-input": 'sig1=("@authority" "x-api-key");keyid="SGVsbG8sIEkgYW0gdGhlIEFQSSBrZXkh"'},
            "audiohook_signature_incomplete",
        ),
        ({"audiohook-correlation-id": None}, "audiohook_signature_incomplete"),
    ],
)
def test_an_audiohook_signature_that_does_not_hold_is_refused(change: dict[str, str | None], reason: str) -> None:
    headers = {k: v for k, v in {**AUDIOHOOK_HEADERS, **change}.items() if v is not None}

    with pytest.raises(SignatureInvalid) as info:
        verify_audiohook(headers, request_target=TARGET, keys=AUDIOHOOK_KEYS, now=CREATED + 5)

    assert info.value.reason == reason


def test_an_audiohook_signature_is_refused_when_stale_early_or_for_an_unknown_key_or_another_target() -> None:
    def reason(**kwargs: object) -> str:
        args = {"request_target": TARGET, "keys": AUDIOHOOK_KEYS, "now": CREATED + 5, **kwargs}
        with pytest.raises(SignatureInvalid) as info:
            verify_audiohook(AUDIOHOOK_HEADERS, **args)  # type: ignore[arg-type]
        return info.value.reason

    assert reason(now=CREATED + 60) == "audiohook_signature_expired"
    assert reason(now=CREATED - 60) == "audiohook_signature_expired"
    assert reason(keys={}) == "bad_audiohook_signature"
    assert reason(request_target=TARGET + "?x=1") == "bad_audiohook_signature"


def test_plivo_v3_signatures_match_plivos_sdk() -> None:
    for url in ("http://host.example.com/plivo/websocket", "http://h.example.com:8443/a/websocket?b=2&a=1&a=0"):
        expected = get_signature_v3(b"authtoken", construct_get_url(url, {}), b"12345").decode()

        assert plivo_signature("authtoken", url, "12345") == expected


@pytest.mark.parametrize("path", ["/plivo", "/plivo?token=t&a=1"])
def test_a_plivo_upgrade_signed_as_plivos_stream_sdk_checks_it_verifies(path: str) -> None:
    base, _, query = path.partition("?")
    sdk_url = f"http://media.example.com{base}/websocket" + (f"?{query}" if query else "")
    header = get_signature_v3(b"authtoken", construct_get_url(sdk_url, {}), b"987").decode()

    reading = verify_plivo("authtoken", f"wss://media.example.com{path}", "987", "other," + header)

    assert reading == "stream_sdk"


def test_a_plivo_upgrade_signed_over_the_stream_url_verifies_as_the_other_reading() -> None:
    header = plivo_signature("authtoken", "wss://media.example.com/plivo", "987")

    assert verify_plivo("authtoken", "wss://media.example.com/plivo", "987", header) == "stream_url"


@pytest.mark.parametrize(
    ("token", "nonce", "reason"), [("wrong", "987", "bad_plivo_signature"), ("authtoken", "", "plivo_nonce_missing")]
)
def test_a_bad_plivo_signature_is_refused(token: str, nonce: str, reason: str) -> None:
    header = plivo_signature(token, "http://media.example.com/plivo/websocket", "987")

    with pytest.raises(SignatureInvalid) as info:
        verify_plivo("authtoken", "wss://media.example.com/plivo", nonce, header)

    assert info.value.reason == reason


def test_a_vonage_jwt_made_by_pyjwt_verifies() -> None:
    now = time.time()
    token = jwt.encode({"iat": int(now), "jti": "j", "iss": "Vonage", "application_id": "app"}, SECRET, "HS256")

    verify_vonage_jwt(token, SECRET, now=now)


@pytest.mark.parametrize(
    ("claims", "secret", "algorithm", "reason"),
    [
        ({"iat": 0}, "another-signature-secret-32-bytes-long", "HS256", "bad_jwt_signature"),
        ({"exp": -100}, SECRET, "HS256", "jwt_expired"),
        ({"iat": -1000}, SECRET, "HS256", "jwt_expired"),
        ({"iat": 1000}, SECRET, "HS256", "jwt_not_yet_valid"),
        ({"iat": 0}, SECRET + "-longer-for-hs512-which-wants-64-bytes-of-key", "HS512", "malformed_jwt"),
        ({"iat": "soon"}, SECRET, "HS256", "malformed_jwt"),
    ],
)
def test_a_vonage_jwt_that_does_not_hold_is_refused(
    claims: dict[str, object], secret: str, algorithm: str, reason: str
) -> None:
    now = 1_700_000_000
    token = jwt.encode({k: now + v if isinstance(v, int) else v for k, v in claims.items()}, secret, algorithm)

    with pytest.raises(SignatureInvalid) as info:
        verify_vonage_jwt(token, SECRET, now=now)

    assert info.value.reason == reason


@pytest.mark.parametrize("token", ["a.b.c", "not-a-jwt", "e30.e30."])
def test_a_malformed_jwt_is_refused(token: str) -> None:
    with pytest.raises(SignatureInvalid):
        verify_vonage_jwt(token, SECRET, now=0)


def test_api_keys_parse_and_bad_ones_are_named() -> None:
    assert parse_api_keys(["k:AAEC"]) == {"k": b"\x00\x01\x02"}
    with pytest.raises(ValueError, match="API_KEY:CLIENT_SECRET"):
        parse_api_keys(["nocolon"])
    with pytest.raises(ValueError, match="base64"):
        parse_api_keys(["k:not base64!"])
