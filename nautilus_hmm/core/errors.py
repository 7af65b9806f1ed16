"""Typed errors shared across layers.

Venue errors are classified by what the caller must do next:

* `OrderRejected` — final: the venue refused; do not retry the same request.
* `RetryableError` — nothing happened at the venue; the same request may be retried.
* `UnknownOutcome` — the request may or may not have taken effect (timeout, dropped
  connection after send, 5xx on order entry). Never resend: query by client order id.
* `RateLimited` — back off for `retry_after_s`; `VenueBanned` — stop until `until_ns`.
"""

from __future__ import annotations


class NautilusError(Exception):
    """Base of the project's errors."""


class DataError(NautilusError):
    """A data file is malformed: names the file, the line and the problem."""

    def __init__(self, path: str, line: int | None, problem: str) -> None:
        self.path = path
        self.line = line
        self.problem = problem
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {problem}")


class VenueError(NautilusError):
    """Base of venue errors. `code` is the venue's code (as text) when it gave one."""

    def __init__(self, venue: str, message: str, code: str | None = None) -> None:
        self.venue = venue
        self.code = code
        self.message = message
        tag = f" [{code}]" if code is not None else ""
        super().__init__(f"{venue}{tag}: {message}")


class OrderRejected(VenueError):
    """Final refusal of a request; retrying the same request would fail again."""


class RetryableError(VenueError):
    """The request certainly did not take effect; it may be retried."""


class UnknownOutcome(VenueError):
    """The request may have taken effect. Resolve by query, never by resending."""


class RateLimited(RetryableError):
    """Too many requests; wait `retry_after_s`."""

    def __init__(self, venue: str, message: str, retry_after_s: float, code: str | None = None) -> None:
        super().__init__(venue, message, code)
        self.retry_after_s = retry_after_s


class VenueBanned(VenueError):
    """The venue banned us (e.g. Binance 418) until `until_ns`."""

    def __init__(self, venue: str, message: str, until_ns: int, code: str | None = None) -> None:
        super().__init__(venue, message, code)
        self.until_ns = until_ns


class AuthError(VenueError):
    """Bad or missing credentials, or a signature the venue refused."""


class ParseError(NautilusError):
    """A venue message could not be parsed; it is counted, logged and skipped."""
