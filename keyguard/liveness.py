"""Is a found key still live? ``GET /v1/models`` with the key itself: free, no admin key.

Used by ``keyguard scan --verify``. Only ``sk-ant-api03-`` keys are sent, and only to the
Anthropic API or the base URL the person running keyguard chose (``keyguard.urls``); every
other shape is ``unknown`` without a request. httpx is imported when a checker is built, so a
plain scan (and the pre-commit hook) never loads it.
"""

from __future__ import annotations

from typing import Any

from keyguard.errors import KeyguardError
from keyguard.keys import Secret, is_api_key

LIVE, REVOKED, UNKNOWN = "live", "revoked", "unknown"


class LivenessChecker:
    """Callable ``Secret -> "live" | "revoked" | "unknown"``, cached per fingerprint."""

    def __init__(
        self,
        base_url: str,
        *,
        transport: Any = None,
        deadline_seconds: float = 10.0,
        max_attempts: int = 3,
    ) -> None:
        import httpx

        from keyguard.admin.auth import ANTHROPIC_VERSION, checked_url
        from keyguard.admin.retry import RetryPolicy

        self.base_url = checked_url(base_url)  # keys go only where the person running chose
        self._policy = RetryPolicy(max_attempts=max_attempts, deadline_seconds=deadline_seconds)
        self._http = httpx.Client(
            base_url=self.base_url,
            transport=transport,
            timeout=min(10.0, deadline_seconds),
            follow_redirects=False,  # a key goes to the configured base URL and nowhere else
            headers={"anthropic-version": ANTHROPIC_VERSION, "user-agent": "keyguard"},
        )
        self._cache: dict[str, str] = {}
        self.requests = 0

    def __call__(self, key: Secret) -> str:
        verdict = self._cache.get(key.fingerprint)
        if verdict is None:
            verdict = self._cache[key.fingerprint] = self._check(key)
        return verdict

    def _check(self, key: Secret) -> str:
        if not is_api_key(key.reveal()):
            return UNKNOWN  # admin keys, OAuth tokens: /v1/models says nothing reliable
        from keyguard.admin.auth import KeyAuth
        from keyguard.admin.retry import send_with_retries

        auth = KeyAuth(key)

        def send() -> Any:
            self.requests += 1
            return self._http.request("GET", "/v1/models", auth=auth)

        try:
            response = send_with_retries(send, self._policy, "GET /v1/models", self.base_url)
        except KeyguardError:
            return UNKNOWN
        if response.status_code == 200:
            return LIVE
        if response.status_code in (401, 403):
            return REVOKED
        if response.status_code == 400 and b"anthropic-workspace-id" in response.content:
            return LIVE  # authenticated, then asked which workspace: a live org-scoped key
        return UNKNOWN

    def close(self) -> None:
        self._http.close()
