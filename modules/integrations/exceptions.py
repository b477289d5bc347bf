"""What callers of an upstream may see: our errors, never purgatory's or httpx's internals."""

from __future__ import annotations


class IntegrationError(Exception):
    """Base of every error an outbound call raises. `circuit` names the upstream."""

    def __init__(self, circuit: str, message: str) -> None:
        super().__init__(f"{circuit}: {message}")
        self.circuit = circuit


class CircuitOpenError(IntegrationError):
    """The upstream's circuit is open (or its single half-open trial is running): the call
    failed fast and nothing was sent. Replaces purgatory's unexported `OpenedState`."""

    def __init__(self, circuit: str, retry_after: float) -> None:
        super().__init__(circuit, f"circuit open, next trial in {retry_after:.1f} s")
        self.retry_after = retry_after


class UpstreamError(IntegrationError):
    """The upstream failed: connection refused or reset, timeout, 5xx, protocol error.
    Raised inside the circuit, so it counts as one failure."""

    def __init__(self, circuit: str, message: str, status_code: int | None = None) -> None:
        super().__init__(circuit, message)
        self.status_code = status_code


class UpstreamTimeoutError(UpstreamError):
    """The upstream did not answer in time (counts as a failure)."""


class UpstreamRefusedError(IntegrationError):
    """The upstream answered and refused this one request (an HTTP 4xx; an SMTP recipient
    refused at RCPT, an address it cannot take, a 5xx for this message): the upstream works,
    so the circuit records a success, and the caller gets this error.

    `temporary`: the refusal may pass later (an SMTP 4xx at RCPT, e.g. greylisting or a
    recipient domain that does not resolve yet): worth retrying, still not the upstream's fault.
    """

    def __init__(self, circuit: str, message: str, *, temporary: bool = False) -> None:
        super().__init__(circuit, message)
        self.temporary = temporary
