"""Password hashing (Synapse-compatible bcrypt) and the password policy.

bcrypt reads at most 72 bytes. Old bcrypt releases silently dropped the
rest; bcrypt 5 raises instead. Synapse hashes `NFKC(password) + pepper`
encoded as UTF-8 and, since bcrypt 5, cuts that to 72 bytes itself, so
every Synapse hash of a long password was made over its first 72 bytes.

- Checking cuts the input to 72 bytes the same way, so such an imported
  hash (and a Synapse user's long password) still logs in.
- A *new* password whose own bytes exceed 72 is refused with 400
  `M_INVALID_PARAM`, rather than hashed with its tail ignored: a user
  who typed 100 characters must not be able to log in with the first 72
  (or a prefix they never chose). Pre-hashing (bcrypt over a SHA-256 of
  the input) would lift the limit, but the stored hash would no longer be
  one that Synapse or any other bcrypt user can check, and moving
  accounts between servers is the reason the format is Synapse's. Only
  the pepper's tail may be cut for a password near 72 bytes, as Synapse
  does: the pepper exists to lengthen short passwords.
"""

from __future__ import annotations

import asyncio
import unicodedata
from collections.abc import Callable
from typing import TypeVar

import bcrypt

from hamlet.config.model import PasswordConfig
from hamlet.handlers.common.errors import MatrixError
from hamlet.runtime.blocking import run_cpu

MAX_PASSWORD_LENGTH = 512
BCRYPT_MAX_BYTES = 72

T = TypeVar("T")


def _hash(password: bytes, rounds: int) -> str:
    return bcrypt.hashpw(password[:BCRYPT_MAX_BYTES], bcrypt.gensalt(rounds)).decode("ascii")


def _check(candidates: tuple[bytes, ...], stored: bytes) -> bool:
    try:
        return any(bcrypt.checkpw(c[:BCRYPT_MAX_BYTES], stored) for c in candidates)
    except ValueError:
        # Not a bcrypt hash (an imported account with another scheme).
        return False


def check_password_length(password: str) -> None:
    """400 if bcrypt could not use every byte of `password` (see the module doc)."""
    if len(unicodedata.normalize("NFKC", password).encode("utf-8")) > BCRYPT_MAX_BYTES:
        raise MatrixError(
            400,
            "M_INVALID_PARAM",
            f"The password must be at most {BCRYPT_MAX_BYTES} bytes long in UTF-8",
        )


class PasswordHasher:
    """Hashes as Synapse does: `bcrypt(NFKC(password) + pepper)`, stored as `$2b$...`.

    The bcrypt work runs on the CPU pool, charged to `tenant`, and one
    homeserver runs at most `max_concurrent` hashes at a time: a flood of
    logins or password guesses queues here, in its own tenant, instead of
    taking the CPU pool's turns from the others.
    """

    def __init__(self, *, pepper: str, rounds: int, tenant: str, max_concurrent: int = 1) -> None:
        self._pepper = pepper
        self._rounds = rounds
        self._tenant = tenant
        self._dummy_hash: str | None = None
        self._slots = asyncio.Semaphore(max_concurrent)
        self.in_flight = 0
        self.peak_in_flight = 0

    def _peppered(self, password: str) -> bytes:
        return (password + self._pepper).encode("utf-8")

    def _candidates(self, password: str) -> tuple[bytes, ...]:
        # Hashes Hamlet made before it normalised as Synapse does were made
        # over the password as typed; the two differ only for a few inputs.
        normalised = unicodedata.normalize("NFKC", password)
        if normalised == password:
            return (self._peppered(password),)
        return (self._peppered(normalised), self._peppered(password))

    async def hash(self, password: str) -> str:
        """A new hash; 400 for a password too long for bcrypt."""
        check_password_length(password)
        normalised = unicodedata.normalize("NFKC", password)
        return await self._run(_hash, self._peppered(normalised), self._rounds)

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        async with self._slots:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            try:
                return await run_cpu(self._tenant, fn, *args)
            finally:
                self.in_flight -= 1

    async def check(self, password: str, stored_hash: str | None) -> bool:
        """Does `password` match? A missing hash is checked against a dummy one.

        Checking even when there is nothing to check against keeps an unknown
        user as slow to refuse as a wrong password.
        """
        candidates = self._candidates(password)
        if stored_hash is None:
            if self._dummy_hash is None:
                self._dummy_hash = await self.hash("not the password of anyone")
            await self._run(_check, candidates, self._dummy_hash.encode())
            return False
        return await self._run(_check, candidates, stored_hash.encode())


def validate_password(password: object, policy: PasswordConfig) -> str:
    """The password if it is a string within the policy; otherwise a 400."""
    if not isinstance(password, str) or len(password) > MAX_PASSWORD_LENGTH:
        raise MatrixError(400, "M_INVALID_PARAM", "Invalid password")
    check_password_length(password)
    if len(password) < policy.minimum_length:
        raise MatrixError(
            400,
            "M_PASSWORD_TOO_SHORT",
            f"The password must be at least {policy.minimum_length} characters long",
        )
    if policy.require_digit and not any(c.isdigit() for c in password):
        raise MatrixError(400, "M_PASSWORD_NO_DIGIT", "The password must include a digit")
    if policy.require_symbol and all(c.isalnum() for c in password):
        raise MatrixError(400, "M_PASSWORD_NO_SYMBOL", "The password must include a symbol")
    if policy.require_uppercase and not any(c.isupper() for c in password):
        raise MatrixError(
            400, "M_PASSWORD_NO_UPPERCASE", "The password must include an uppercase letter"
        )
    if policy.require_lowercase and not any(c.islower() for c in password):
        raise MatrixError(
            400, "M_PASSWORD_NO_LOWERCASE", "The password must include a lowercase letter"
        )
    return password
