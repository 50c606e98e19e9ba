"""The one error type handlers raise; the HTTP layer (api/) turns it into Matrix JSON."""

from __future__ import annotations

from typing import Any


class MatrixError(Exception):
    def __init__(self, status: int, errcode: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.errcode = errcode
        self.message = message
        self.extra = extra

    def to_json(self) -> dict[str, Any]:
        return {"errcode": self.errcode, "error": self.message, **self.extra}

    def headers(self) -> dict[str, str]:
        return {}


class NotFoundError(MatrixError):
    def __init__(self, message: str = "Not found", errcode: str = "M_NOT_FOUND") -> None:
        super().__init__(404, errcode, message)


class ForbiddenError(MatrixError):
    def __init__(self, message: str = "Forbidden", errcode: str = "M_FORBIDDEN", **extra: Any):
        super().__init__(403, errcode, message, **extra)


class BadJsonError(MatrixError):
    def __init__(self, message: str, errcode: str = "M_BAD_JSON") -> None:
        super().__init__(400, errcode, message)


class InvalidParamError(MatrixError):
    def __init__(self, message: str) -> None:
        super().__init__(400, "M_INVALID_PARAM", message)


class MissingParamError(MatrixError):
    def __init__(self, message: str) -> None:
        super().__init__(400, "M_MISSING_PARAM", message)


class UnrecognizedError(MatrixError):
    def __init__(self, status: int = 404, message: str = "Unrecognized request") -> None:
        super().__init__(status, "M_UNRECOGNIZED", message)


class AuthError(MatrixError):
    """401s: missing or unknown access tokens."""

    def __init__(self, errcode: str, message: str, **extra: Any) -> None:
        super().__init__(401, errcode, message, **extra)


class LimitExceededError(MatrixError):
    """429: over a rate limit or a concurrency cap; the client may retry after a while.

    `limiter_name` says which limiter refused (for tests and logs, never sent).
    """

    def __init__(
        self,
        retry_after_ms: int,
        message: str = "Too many requests",
        *,
        limiter_name: str | None = None,
    ) -> None:
        super().__init__(429, "M_LIMIT_EXCEEDED", message, retry_after_ms=retry_after_ms)
        self.retry_after_ms = retry_after_ms
        self.limiter_name = limiter_name

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, -(-self.retry_after_ms // 1000)))}


class TooLargeError(MatrixError):
    def __init__(self, message: str = "Request too large") -> None:
        super().__init__(413, "M_TOO_LARGE", message)
