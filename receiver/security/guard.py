"""
The server's gatekeeper: authentication, limits, their counters and log lines.

``ReceiverServer`` asks the guard at each decision point (the upgrade request,
the start message, the limit sweep) and acts on the answer; the guard itself
never touches a socket. The decisions are in ``auth`` and ``limits`` (pure);
this module adds the clock, the counting and the logging: one line per refusal
and one per limit a stream hits, under the ``receiver.security`` logger,
never with a secret or a token in it.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from receiver.config import Settings
from receiver.errors import StreamRefused
from receiver.events import StreamStarted
from receiver.logging import Logger, get_logger
from receiver.security.auth import AuthPolicy, AuthRejected, HandshakeResult, headers_from, strip_token
from receiver.security.limits import ConnectionLimits, Limit, LimitSettings
from receiver.security.replay import TokenBudget

SECURITY = "receiver.security"

security_log = get_logger(SECURITY)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Answer the upgrade request with this instead of switching protocols."""

    status: HTTPStatus
    body: dict[str, Any]
    headers: tuple[tuple[str, str], ...] = ()


class Guard:
    """Authentication and limits for one server.

    Args:
        settings: The configuration (auth, limits).
    """

    def __init__(self, settings: Settings) -> None:
        self.policy = AuthPolicy.from_settings(settings)
        self.limits = LimitSettings(
            max_messages_per_second=settings.max_messages_per_second,
            rate_window=settings.rate_window,
            idle_timeout=settings.idle_timeout,
            start_timeout=settings.start_timeout,
            max_stream_seconds=settings.max_stream_seconds,
        )
        self.max_streams = settings.max_streams
        self.tokens = TokenBudget(settings.auth_token_max_streams)
        # Upgrades without a credential, waiting for a start token: a budget of their own.
        self.max_unauthenticated = settings.max_unauthenticated
        self.max_unauthenticated_per_client = settings.max_unauthenticated_per_client
        self.unauthenticated = 0
        self.unauthenticated_by_client: Counter[str] = Counter()
        self._flood: dict[str, tuple[float, int]] = {}
        self.counts: Counter[str] = Counter()  # refusals and limits hit, by name

    def log_startup(self) -> None:
        """Say which auth modes are on; loudly, when none is."""
        if self.policy.enabled:
            security_log.info("auth_configured", modes=self.policy.modes())
        else:
            security_log.warning(
                "auth_disabled",
                message="NO STREAM AUTHENTICATION IS CONFIGURED: anyone who can reach this port can stream to it. "
                "Set auth_secrets, auth_bearer_tokens, auth_basic_users, twilio_auth_token or ip_allowlist.",
            )

    # -- the upgrade request ---------------------------------------------------

    def check_request(
        self,
        *,
        path: str,
        headers: Iterable[tuple[str, str]],
        peer: str | None,
        pending: int,
        draining: bool,
    ) -> HandshakeResult | Refusal:
        """Decide on a stream's upgrade request (``pending``: authenticated streams live).

        An upgrade without a credential that may still authenticate with a start
        token is held in the unauthenticated budget (``release_unauthenticated``
        gives its place back): it never takes one of ``max_streams``.
        """
        if draining:
            return self.refuse(HTTPStatus.SERVICE_UNAVAILABLE, "draining", path, peer)
        now = time.time()
        try:
            result = self.policy.check_handshake(path=path, headers=headers_from(headers), peer=peer, now=now)
        except AuthRejected as exc:
            extra: tuple[tuple[str, str], ...] = ()
            if exc.status is HTTPStatus.UNAUTHORIZED:
                extra = (("WWW-Authenticate", 'Bearer realm="receiver"'),)
            return self.refuse(exc.status, exc.reason, path, peer, headers=extra)
        if result.pending_start:
            return self._hold_unauthenticated(result, path, peer)
        if pending >= self.max_streams:
            self.count(Limit.CAPACITY)
            return self.refuse(
                HTTPStatus.SERVICE_UNAVAILABLE, "over_capacity", path, peer, max_streams=self.max_streams
            )
        if result.method == "url_token":
            token = self.policy.query_token(path)
            assert token is not None
            if not self.tokens.claim(token, now):
                return self.refuse(
                    HTTPStatus.FORBIDDEN, "token_used_up", path, peer, max_streams=self.tokens.max_streams
                )
        return result

    def _hold_unauthenticated(self, result: HandshakeResult, path: str, peer: str | None) -> HandshakeResult | Refusal:
        client = result.client or ""
        if self.unauthenticated >= self.max_unauthenticated:
            reason = "too_many_unauthenticated"
        elif self.unauthenticated_by_client[client] >= self.max_unauthenticated_per_client:
            reason = "too_many_unauthenticated_from_client"
        else:
            self.unauthenticated += 1
            self.unauthenticated_by_client[client] += 1
            return result
        self.counts[f"refused_{reason}"] += 1
        self.flood(
            reason,
            status=HTTPStatus.SERVICE_UNAVAILABLE.value,
            remote=peer,
            path=strip_token(path, self.policy.token_param),
            max_unauthenticated=self.max_unauthenticated,
            max_unauthenticated_per_client=self.max_unauthenticated_per_client,
        )
        return Refusal(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "unavailable", "reason": reason})

    def release_unauthenticated(self, client: str | None) -> None:
        """An upgrade held in the unauthenticated budget authenticated, or its connection ended."""
        key = client or ""
        self.unauthenticated -= 1
        left = self.unauthenticated_by_client[key] - 1
        if left > 0:
            self.unauthenticated_by_client[key] = left
        else:
            del self.unauthenticated_by_client[key]

    def flood(self, reason: str, **fields: Any) -> None:
        """Log a refusal that can come by the thousand: at most one line a second per reason,
        with how many were not logged since the last one (``suppressed``); counting is the caller's."""
        now = time.monotonic()
        logged_at, suppressed = self._flood.get(reason, (-1.0, 0))
        if now - logged_at < 1.0:
            self._flood[reason] = (logged_at, suppressed + 1)
            return
        self._flood[reason] = (now, 0)
        security_log.warning("stream_refused", reason=reason, suppressed=suppressed, **fields)

    def refuse(
        self,
        status: HTTPStatus,
        reason: str,
        path: str,
        peer: str | None,
        *,
        headers: tuple[tuple[str, str], ...] = (),
        **fields: Any,
    ) -> Refusal:
        self.counts[f"refused_{reason}"] += 1
        security_log.warning(
            "stream_refused",
            status=status.value,
            reason=reason,
            remote=peer,
            path=strip_token(path, self.policy.token_param),
            **fields,
        )
        error = {
            HTTPStatus.SERVICE_UNAVAILABLE: "unavailable",
            HTTPStatus.UNAUTHORIZED: "unauthorized",
            HTTPStatus.BAD_REQUEST: "bad_request",
        }.get(status, "forbidden")
        return Refusal(status, {"error": error, "reason": reason}, headers)

    def redact(self, path: str | None) -> str | None:
        """``path`` with the stream token's value hidden (for logs)."""
        return strip_token(path, self.policy.token_param) if path is not None else None

    # -- the start message -----------------------------------------------------

    def admit_start(
        self, handshake: HandshakeResult | None, limits: ConnectionLimits, started: StreamStarted, log: Logger
    ) -> StreamStarted:
        """Check the start message; return it without our token (what sinks may see).

        Raises:
            StreamRefused: The stream is not authenticated for this call.
        """
        if handshake is None:  # the upgrade never went through check_request: fail closed
            if self.policy.enabled:
                raise StreamRefused("stream was not authenticated")
            handshake = HandshakeResult(None)
        now = time.time()
        try:
            method = self.policy.check_start(
                handshake, call_id=started.call_id, custom_parameters=started.custom_parameters, now=now
            )
            if method == "start_token" and not self.tokens.claim(
                started.custom_parameters[self.policy.token_param], now
            ):
                raise StreamRefused("stream token used up")
        except StreamRefused:
            # The server logs the refusal (stream_rejected, 1008) and closes.
            self.counts["refused_start"] += 1
            raise
        limits.mark_started()
        if method is not None:
            extra = {"reading": handshake.reading} if handshake.reading else {}
            log.info("stream_authenticated", method=method, **extra)
        if self.policy.token_param in started.custom_parameters:
            started = dataclasses.replace(started, custom_parameters=self.policy.scrub(started.custom_parameters))
        return started

    # -- limits ----------------------------------------------------------------

    def new_limits(self) -> ConnectionLimits:
        return ConnectionLimits(self.limits, time.monotonic())

    def limit_hit(self, log: Logger, limit: Limit, **fields: Any) -> None:
        """Count a limit hit and log it (callers make sure it is once per stream)."""
        self.count(limit)
        log.warning(
            "limit_hit",
            limit=limit.value,
            close_code=None if limit.close_code is None else int(limit.close_code),
            **fields,
        )

    def count(self, limit: Limit) -> None:
        """Count a limit hit (``limit_hit`` also logs it; the message size is logged by the server)."""
        self.counts[f"limit_{limit.value}"] += 1

    def limit_value(self, limit: Limit) -> float | int:
        """The configured value of ``limit`` (for the log line)."""
        settings = self.limits
        return {
            Limit.RATE: settings.max_messages_per_second,
            Limit.IDLE: settings.idle_timeout,
            Limit.START_TIMEOUT: settings.start_timeout,
            Limit.MAX_DURATION: settings.max_stream_seconds,
            Limit.CAPACITY: self.max_streams,
        }.get(limit, 0)
