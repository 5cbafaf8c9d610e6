"""Stream authentication, sans I/O: tokens, signatures, addresses, the policy."""

from __future__ import annotations

import base64
import ipaddress
from http import HTTPStatus
from urllib.parse import parse_qsl, urlsplit

import pytest

from receiver.errors import ConfigError, StreamRefused
from receiver.security.auth import (
    AuthPolicy,
    AuthRejected,
    HandshakeResult,
    TokenInvalid,
    client_address,
    headers_from,
    parse_networks,
    sign_stream_url,
    stream_token,
    strip_token,
    twilio_signature,
    verify_stream_token,
    verify_twilio_signature,
)

SECRET = "s3cret-key"
NOW = 1_800_000_000


# -- tokens ----------------------------------------------------------------------


def test_stream_token_is_deterministic_for_the_same_call_and_expiry() -> None:
    one = stream_token(call_id="call_1", secret=SECRET, expires_at=NOW + 60)
    two = stream_token(call_id="call_1", secret=SECRET, expires_at=NOW + 60)

    assert one == two
    assert one != stream_token(call_id="call_2", secret=SECRET, expires_at=NOW + 60)
    assert one != stream_token(call_id="call_1", secret=SECRET, expires_at=NOW + 61)
    assert SECRET not in one


def test_sign_stream_url_keeps_the_url_and_its_query_and_is_stable() -> None:
    url = "wss://media.example.com/minivoice?tenant=acme&token=old"

    signed = sign_stream_url(url, call_id="call_1", secret=SECRET, expires_at=NOW + 60)

    parts = urlsplit(signed)
    query = dict(parse_qsl(parts.query))
    assert (parts.scheme, parts.netloc, parts.path) == ("wss", "media.example.com", "/minivoice")
    assert query["tenant"] == "acme"
    assert query["token"] == stream_token(call_id="call_1", secret=SECRET, expires_at=NOW + 60)
    assert signed == sign_stream_url(url, call_id="call_1", secret=SECRET, expires_at=NOW + 60)
    assert signed == sign_stream_url(signed, call_id="call_1", secret=SECRET, expires_at=NOW + 60)


def test_verify_accepts_a_good_token_and_returns_its_call() -> None:
    token = stream_token(call_id="call_ü/1.x", secret=SECRET, expires_at=NOW + 60)

    verified = verify_stream_token(token, secrets=[SECRET], now=NOW, call_id="call_ü/1.x")

    assert (verified.call_id, verified.expires_at) == ("call_ü/1.x", NOW + 60)


def test_verify_accepts_a_token_signed_with_a_previous_secret() -> None:
    token = stream_token(call_id="c", secret="old", expires_at=NOW + 60)

    assert verify_stream_token(token, secrets=["new", "old"], now=NOW).call_id == "c"


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda t: t, None),
        (lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"), "bad_signature"),
        (lambda t: t.replace("v1.", "v2.", 1), "malformed"),
        (lambda t: t + ".x", "malformed"),
        (lambda t: "", "malformed"),
        (lambda t: "v1.notanumber.YQ.YQ", "malformed"),
        (lambda t: "v1.1." + "!!!." + "YQ", "malformed"),
        (lambda t: "x" * 5000, "malformed"),
    ],
)
def test_verify_refuses_forged_or_malformed_tokens(mangle: object, reason: str | None) -> None:
    token = mangle(stream_token(call_id="c", secret=SECRET, expires_at=NOW + 60))  # type: ignore[operator]

    if reason is None:
        verify_stream_token(token, secrets=[SECRET], now=NOW)
        return
    with pytest.raises(TokenInvalid) as caught:
        verify_stream_token(token, secrets=[SECRET], now=NOW)
    assert caught.value.reason == reason


def test_verify_refuses_a_token_signed_with_another_secret() -> None:
    token = stream_token(call_id="c", secret="attacker", expires_at=NOW + 60)

    with pytest.raises(TokenInvalid, match="bad_signature"):
        verify_stream_token(token, secrets=[SECRET], now=NOW)


def test_verify_refuses_a_forged_call_id_with_a_real_signature() -> None:
    real = stream_token(call_id="call_a", secret=SECRET, expires_at=NOW + 60).split(".")
    forged = ".".join([real[0], real[1], base64.urlsafe_b64encode(b"call_b").rstrip(b"=").decode(), real[3]])

    with pytest.raises(TokenInvalid, match="bad_signature"):
        verify_stream_token(forged, secrets=[SECRET], now=NOW)


def test_verify_refuses_an_expired_token() -> None:
    token = stream_token(call_id="c", secret=SECRET, expires_at=NOW - 1)

    with pytest.raises(TokenInvalid, match="expired"):
        verify_stream_token(token, secrets=[SECRET], now=NOW)


def test_verify_refuses_a_token_replayed_for_another_call() -> None:
    token = stream_token(call_id="call_a", secret=SECRET, expires_at=NOW + 60)

    with pytest.raises(TokenInvalid, match="wrong_call"):
        verify_stream_token(token, secrets=[SECRET], now=NOW, call_id="call_b")


def test_strip_token_redacts_only_the_token() -> None:
    assert strip_token("/mv?a=1&token=v1.abc") == "/mv?a=1&token=redacted"
    assert strip_token("/mv?a=1") == "/mv?a=1"
    assert strip_token("/mv") == "/mv"


# -- Twilio ----------------------------------------------------------------------


def test_twilio_signature_matches_twilios_published_vector() -> None:
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+14158675309",
        "Digits": "1234",
        "From": "+14158675309",
        "To": "+18005551212",
    }

    assert (
        twilio_signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", params)
        == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    )


@pytest.mark.parametrize(
    ("signed_url", "checked_url"),
    [
        ("wss://media.example.com/stream", "wss://media.example.com/stream"),
        ("wss://media.example.com:443/stream", "wss://media.example.com/stream"),
        ("wss://media.example.com/stream", "wss://media.example.com:443/stream"),
    ],
)
def test_twilio_signature_is_checked_with_and_without_port_443(signed_url: str, checked_url: str) -> None:
    signature = twilio_signature("tok", signed_url)

    assert verify_twilio_signature("tok", checked_url, signature)
    assert not verify_twilio_signature("other", checked_url, signature)
    assert not verify_twilio_signature("tok", checked_url + "x", signature)


# -- addresses -------------------------------------------------------------------

PROXIES = parse_networks(["10.0.0.0/8"])


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("203.0.113.9", None, "203.0.113.9"),
        ("203.0.113.9", "198.51.100.1", "203.0.113.9"),  # not a trusted proxy: header ignored
        ("10.0.0.5", "198.51.100.1", "198.51.100.1"),
        ("10.0.0.5", "1.1.1.1, 198.51.100.1, 10.0.0.7", "198.51.100.1"),  # rightmost untrusted hop
        ("10.0.0.5", "10.0.0.8, 10.0.0.7", "10.0.0.8"),
        ("10.0.0.5", "198.51.100.1, garbage", None),
        ("::ffff:10.0.0.5", "198.51.100.1:4711", "198.51.100.1"),
        ("10.0.0.5", "[2001:db8::1]:443", "2001:db8::1"),
        ("not-an-ip", None, None),
    ],
)
def test_client_address_believes_forwarded_for_only_from_trusted_proxies(
    peer: str, forwarded: str | None, client: str | None
) -> None:
    found = client_address(peer, forwarded, PROXIES)

    assert (str(found) if found is not None else None) == client


def test_parse_networks_refuses_garbage() -> None:
    assert parse_networks(["10.1.2.3", "2001:db8::/32"]) == (
        ipaddress.ip_network("10.1.2.3/32"),
        ipaddress.ip_network("2001:db8::/32"),
    )
    with pytest.raises(ConfigError):
        parse_networks(["10.0.0.0/33"])


def test_headers_from_lowercases_and_joins_repeated_headers() -> None:
    headers = headers_from([("X-Forwarded-For", "1.1.1.1"), ("x-forwarded-for", "2.2.2.2"), ("Cookie", "no")])

    assert headers == {"x-forwarded-for": "1.1.1.1, 2.2.2.2"}


# -- the policy ------------------------------------------------------------------


def _check(policy: AuthPolicy, path: str = "/mv", peer: str = "127.0.0.1", **headers: str) -> HandshakeResult:
    return policy.check_handshake(
        path=path, headers={k.replace("_", "-"): v for k, v in headers.items()}, peer=peer, now=NOW
    )


def _refused(policy: AuthPolicy, path: str = "/mv", peer: str = "127.0.0.1", **headers: str) -> tuple[int, str]:
    with pytest.raises(AuthRejected) as caught:
        _check(policy, path, peer, **headers)
    return caught.value.status, caught.value.reason


def test_an_empty_policy_accepts_everything() -> None:
    policy = AuthPolicy()

    assert not policy.enabled
    assert _check(policy) == HandshakeResult(None, client="127.0.0.1")


def test_url_token_accepted_and_bound_to_its_call() -> None:
    policy = AuthPolicy(secrets=(SECRET,), start_token=False)
    token = stream_token(call_id="call_a", secret=SECRET, expires_at=NOW + 60)

    result = _check(policy, f"/mv?token={token}", x_minivoice_call_id="call_a")

    assert (result.method, result.call_id, result.pending_start) == ("url_token", "call_a", False)
    assert _refused(policy, f"/mv?token={token}", x_minivoice_call_id="call_b") == (
        HTTPStatus.UNAUTHORIZED,
        "token_wrong_call",
    )
    assert _refused(policy, "/mv") == (HTTPStatus.UNAUTHORIZED, "missing_credentials")
    expired = stream_token(call_id="call_a", secret=SECRET, expires_at=NOW - 1)
    assert _refused(policy, f"/mv?token={expired}") == (HTTPStatus.UNAUTHORIZED, "token_expired")


def test_without_a_url_token_the_start_message_must_carry_one() -> None:
    policy = AuthPolicy(secrets=(SECRET,))
    handshake = _check(policy, "/twilio")
    good = stream_token(call_id="CA1", secret=SECRET, expires_at=NOW + 60)

    assert handshake.pending_start
    assert policy.check_start(handshake, call_id="CA1", custom_parameters={"token": good}, now=NOW) == "start_token"
    for params, call in (
        ({}, "CA1"),
        ({"token": good}, "CA2"),
        ({"token": good[:-3] + "AAA"}, "CA1"),
        ({"token": "x"}, "CA1"),
    ):
        with pytest.raises(StreamRefused):
            policy.check_start(handshake, call_id=call, custom_parameters=params, now=NOW)
    with pytest.raises(StreamRefused):
        policy.check_start(handshake, call_id="CA1", custom_parameters={"token": good}, now=NOW + 61)


def test_a_url_token_for_one_call_cannot_start_another() -> None:
    policy = AuthPolicy(secrets=(SECRET,))
    token = stream_token(call_id="call_a", secret=SECRET, expires_at=NOW + 60)
    handshake = _check(policy, f"/mv?token={token}")

    assert policy.check_start(handshake, call_id="call_a", custom_parameters={}, now=NOW) == "url_token"
    with pytest.raises(StreamRefused, match="another call"):
        policy.check_start(handshake, call_id="call_b", custom_parameters={}, now=NOW)


def test_bearer_and_basic_credentials() -> None:
    policy = AuthPolicy(bearer_tokens=("tok-1", "tok-2"), basic_users=("alice:pw",))
    basic = base64.b64encode(b"alice:pw").decode()

    assert _check(policy, authorization="Bearer tok-2").method == "bearer"
    assert _check(policy, authorization=f"Basic {basic}").method == "basic"
    assert _refused(policy, authorization="Bearer tok-3") == (HTTPStatus.UNAUTHORIZED, "bad_bearer_token")
    wrong = base64.b64encode(b"alice:nope").decode()
    assert _refused(policy, authorization=f"Basic {wrong}") == (HTTPStatus.UNAUTHORIZED, "bad_basic_credentials")
    assert _refused(policy, authorization="Basic !!!") == (HTTPStatus.UNAUTHORIZED, "bad_basic_credentials")
    assert _refused(policy) == (HTTPStatus.UNAUTHORIZED, "missing_credentials")


def test_twilio_signature_accepted_when_right_and_refused_when_wrong() -> None:
    policy = AuthPolicy(twilio_auth_token="tw", public_base_url="wss://media.example.com/")
    signature = twilio_signature("tw", "wss://media.example.com/twilio")

    assert _check(policy, "/twilio", x_twilio_signature=signature).method == "twilio_signature"
    assert _refused(policy, "/twilio", x_twilio_signature="AAAA") == (HTTPStatus.UNAUTHORIZED, "bad_twilio_signature")
    assert _refused(policy, "/other", x_twilio_signature=signature) == (HTTPStatus.UNAUTHORIZED, "bad_twilio_signature")
    # Without a public base URL, the Host header names the public host.
    by_host = AuthPolicy(twilio_auth_token="tw")
    assert (
        _check(by_host, "/twilio", host="media.example.com", x_twilio_signature=signature).method == "twilio_signature"
    )


def test_a_wrong_credential_refuses_even_next_to_a_right_one() -> None:
    policy = AuthPolicy(secrets=(SECRET,), bearer_tokens=("tok",))
    token = stream_token(call_id="c", secret=SECRET, expires_at=NOW + 60)

    assert _refused(policy, f"/mv?token={token}", authorization="Bearer nope") == (
        HTTPStatus.UNAUTHORIZED,
        "bad_bearer_token",
    )


def test_ip_allowlist_is_required_on_top_of_credentials() -> None:
    policy = AuthPolicy(bearer_tokens=("tok",), allow=parse_networks(["192.0.2.0/24"]), trusted_proxies=PROXIES)

    assert _check(policy, peer="192.0.2.7", authorization="Bearer tok").method == "bearer"
    assert _refused(policy, peer="198.51.100.1", authorization="Bearer tok") == (
        HTTPStatus.FORBIDDEN,
        "address_not_allowed",
    )
    assert (
        _check(policy, peer="10.1.1.1", authorization="Bearer tok", x_forwarded_for="192.0.2.9").client == "192.0.2.9"
    )
    assert (
        _refused(policy, peer="198.51.100.1", authorization="Bearer tok", x_forwarded_for="192.0.2.9")[0]
        == HTTPStatus.FORBIDDEN
    )


def test_reasons_and_reprs_never_carry_secrets() -> None:
    policy = AuthPolicy(
        secrets=(SECRET,),
        bearer_tokens=("bearer-secret",),
        basic_users=("u:basic-secret",),
        twilio_auth_token="tw-secret",
    )
    texts = [repr(policy)]
    for headers in ({"authorization": "Bearer wrong-guess"}, {"x_twilio_signature": "forged"}, {}):
        try:
            _check(policy, "/mv?token=v1.1.YQ.YQ", **headers)
        except AuthRejected as exc:
            texts += [str(exc), exc.reason]

    for text in texts:
        for secret in (SECRET, "bearer-secret", "basic-secret", "tw-secret", "wrong-guess"):
            assert secret not in text
