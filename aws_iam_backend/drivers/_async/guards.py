"""One-time use of a login: replay protection (signatures) and the server challenge (nonces).

Both claim keys in a :class:`~aws_iam_backend.drivers.replay.AsyncReplayCache`, so several processes
sharing a storage-backed cache agree on what was used.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aws_iam_backend.drivers._async.keys import stored_key
from aws_iam_backend.drivers.replay import AsyncReplayCache
from aws_iam_backend.errors import InvalidRequestError
from aws_iam_backend.io.clock import Clock
from aws_iam_backend.io.protocols import AsyncStorage
from aws_iam_backend.login.challenge import CHALLENGE_HEADER, KEY_BYTES, issue_nonce, verify_nonce
from aws_iam_backend.login.decode import LoginPayload
from aws_iam_backend.login.messages import OutboundRequest

CHALLENGE_KEY_PATH = "challenge/key"


class AsyncLoginGuards:
    """Claims signed requests and challenge nonces once.

    ``max_age`` is how long a signed request stays valid (the request policy's window);
    ``challenge_ttl`` how long an issued nonce does.
    """

    def __init__(
        self,
        *,
        storage: AsyncStorage,
        replay_cache: AsyncReplayCache,
        clock: Clock,
        max_age: timedelta,
        challenge_ttl: int,
    ) -> None:
        self.replay_cache = replay_cache
        self._storage = storage
        self._clock = clock
        self._max_age = max_age
        self._challenge_ttl = challenge_ttl
        self._key: bytes | None = None

    async def claim_signature(self, outbound: OutboundRequest) -> str:
        """Claim ``sig:<signature>`` until the request's validity ends; 400 if already used.

        Returns the claimed key, for :meth:`release` if STS never gives a verdict.
        """
        info = outbound.sigv4
        valid_until = info.request_time + self._max_age
        if info.expires is not None:
            valid_until = min(valid_until, info.request_time + timedelta(seconds=info.expires))
        key = f"sig:{info.signature}"
        if not await self.replay_cache.claim(key, valid_until):
            raise InvalidRequestError(
                "login request rejected: this signed request was already used (replay)"
            )
        return key

    async def release(self, key: str) -> None:
        """Forget a claim whose request was never accepted (it was not used)."""
        await self.replay_cache.release(key)

    async def _challenge_key(self) -> bytes:
        if self._key is None:
            self._key = await stored_key(self._storage, CHALLENGE_KEY_PATH, size=KEY_BYTES)
        return self._key

    async def issue_challenge(self) -> dict[str, Any]:
        """A new server challenge: the nonce, its lifetime and the header to sign it in."""
        ttl = self._challenge_ttl
        nonce, _expires = issue_nonce(await self._challenge_key(), self._clock.now(), ttl)
        return {"nonce": nonce, "expires_in": ttl, "header": CHALLENGE_HEADER}

    async def check_challenge(self, payload: LoginPayload, outbound: OutboundRequest) -> None:
        """The login must carry an unused, unexpired nonce of ours in a signed header."""
        values = payload.headers.values(CHALLENGE_HEADER)
        if not values:
            raise InvalidRequestError("missing challenge nonce")
        if CHALLENGE_HEADER.lower() not in outbound.sigv4.signed_headers:
            raise InvalidRequestError("challenge nonce is not signed")
        nonce = values[0]
        expires = verify_nonce(await self._challenge_key(), nonce, self._clock.now())
        if len(values) != 1 or expires is None:
            raise InvalidRequestError("challenge nonce expired or invalid")
        claimed = await self.replay_cache.claim(
            f"nonce:{nonce}", datetime.fromtimestamp(expires, UTC)
        )
        if not claimed:
            raise InvalidRequestError("challenge nonce already used")
