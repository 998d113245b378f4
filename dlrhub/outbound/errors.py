"""Typed errors of the provider clients: the provider's code and message, never a secret.

Every message is scrubbed of the account's credentials before the error is
built, and errors are raised `from None`: an httpx exception (whose text may
hold a URL with a key in it) never rides along as the cause.
"""

from __future__ import annotations


class ProviderError(Exception):
    """A provider call failed. `code` is the provider's own error code, when it gave one."""

    error = "provider_error"

    def __init__(
        self,
        account: str,
        provider: str,
        message: str,
        *,
        code: str | None = None,
        http_status: int | None = None,
    ) -> None:
        self.account = account
        self.provider = provider
        self.message = message
        self.code = code
        self.http_status = http_status
        super().__init__(str(self))

    def __str__(self) -> str:
        details = []
        if self.code is not None:
            details.append(f"code {self.code}")
        if self.http_status is not None:
            details.append(f"HTTP {self.http_status}")
        suffix = f" ({', '.join(details)})" if details else ""
        return f"{self.provider} account {self.account!r}: {self.message}{suffix}"


class ProviderAuthError(ProviderError):
    """The provider refused the credentials; asking again will not help until they change."""

    error = "provider_auth_failed"


class ProviderUnavailable(ProviderError):
    """Could not reach the provider, or it kept failing (5xx, Onurix 520), after the retries."""

    error = "provider_unavailable"


class ProviderBusy(ProviderUnavailable):
    """The provider asked us to slow down (HTTP 429): back-pressure, never a verdict on a
    message. `retry_after` is its `Retry-After` in seconds, when it said."""

    error = "provider_busy"

    def __init__(
        self,
        account: str,
        provider: str,
        message: str,
        *,
        code: str | None = None,
        http_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(account, provider, message, code=code, http_status=http_status)


class ProviderRejected(ProviderError):
    """The provider refused the request itself (bad parameters, unknown id, no credit)."""

    error = "provider_rejected"


class ProviderAnswerError(ProviderError):
    """The provider's answer is not in the documented format."""

    error = "provider_bad_answer"


class NotSupported(ProviderError):
    """The provider has no such API (Conectaline has no status endpoint)."""

    error = "not_supported"
