"""Gateway errors, each mapped to an HTTP status and OpenAI's error body.

Raised anywhere below the HTTP layer (routing, providers, caching); the one
exception handler in :mod:`llmline.gateway.app` turns them into
``{"error": {"message", "type", "param", "code"}}`` responses, so clients
written for OpenAI's API handle them unchanged.
"""

from __future__ import annotations

from typing import Any, ClassVar

from llmline.errors import LLMLineError

__all__ = [
    "AuthenticationError",
    "BackendError",
    "BackendRateLimited",
    "BackendTimeout",
    "BackendUnavailable",
    "GatewayError",
    "InvalidRequestError",
    "NotFoundError",
    "NotReadyError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
]


class GatewayError(LLMLineError):
    """Base of errors the gateway reports to clients."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"
    default_code: ClassVar[str | None] = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code or self.default_code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequestError(GatewayError, ValueError):
    status = 400
    type = "invalid_request_error"


class AuthenticationError(GatewayError, PermissionError):
    status = 401
    type = "authentication_error"
    default_code = "invalid_api_key"


class PermissionDeniedError(GatewayError, PermissionError):
    status = 403
    type = "permission_error"


class NotFoundError(GatewayError, LookupError):
    status = 404
    type = "invalid_request_error"
    default_code = "model_not_found"


class PayloadTooLargeError(GatewayError, ValueError):
    status = 413
    type = "invalid_request_error"
    default_code = "request_too_large"


class RateLimitError(GatewayError):
    status = 429
    type = "rate_limit_error"
    default_code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after_s: float, code: str | None = None) -> None:
        # Retry-After is whole seconds; round up so a client never retries early.
        seconds = max(1, int(-(-retry_after_s // 1)))
        super().__init__(message, code=code, headers={"Retry-After": str(seconds)})
        self.retry_after_s = retry_after_s


class BackendError(GatewayError, ConnectionError):
    """A backend failed or answered with something that is not a completion."""

    status = 502
    type = "upstream_error"
    default_code = "bad_gateway"


class BackendRateLimited(BackendError):
    """Every backend that could answer is rate-limiting us: 429, and when
    to come back (the upstream's own ``Retry-After`` when it sent one)."""

    status = 429
    type = "rate_limit_error"
    default_code = "upstream_rate_limited"

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        seconds = 1 if retry_after_s is None else max(1, int(-(-retry_after_s // 1)))
        super().__init__(message, headers={"Retry-After": str(seconds)})
        self.retry_after_s = retry_after_s


class BackendTimeout(BackendError, TimeoutError):
    status = 504
    default_code = "upstream_timeout"


class BackendUnavailable(BackendError):
    """A backend is loading, failed to load, or its circuit breaker is open."""

    status = 503
    type = "service_unavailable"
    default_code = "backend_unavailable"


class NotReadyError(GatewayError):
    status = 503
    type = "service_unavailable"
    default_code = "not_ready"
