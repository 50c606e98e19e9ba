"""Password hashing (Synapse-compatible bcrypt) and the password policy."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

import bcrypt

from hamlet.config.model import PasswordConfig
from hamlet.handlers.common.errors import MatrixError
from hamlet.runtime.blocking import run_blocking

MAX_PASSWORD_LENGTH = 512

T = TypeVar("T")


def _hash(password: bytes, rounds: int) -> str:
    return bcrypt.hashpw(password, bcrypt.gensalt(rounds)).decode("ascii")


def _check(password: bytes, stored: bytes) -> bool:
    try:
        return bcrypt.checkpw(password, stored)
    except ValueError:
        # Not a bcrypt hash (an imported account with another scheme).
        return False


class PasswordHasher:
    """Hashes as Synapse does: `bcrypt(password + pepper)`, stored as `$2b$...`.

    bcrypt runs on the blocking pool every tenant shares (their SQLite
    statements too), so one homeserver runs at most `max_concurrent` hashes
    at a time: a flood of logins or password guesses queues here instead of
    taking every thread of the pool from the other tenants.
    """

    def __init__(self, *, pepper: str, rounds: int, max_concurrent: int = 1) -> None:
        self._pepper = pepper
        self._rounds = rounds
        self._dummy_hash: str | None = None
        self._slots = asyncio.Semaphore(max_concurrent)
        self.in_flight = 0
        self.peak_in_flight = 0

    def _peppered(self, password: str) -> bytes:
        return (password + self._pepper).encode("utf-8")

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        async with self._slots:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            try:
                return await run_blocking(fn, *args)
            finally:
                self.in_flight -= 1

    async def hash(self, password: str) -> str:
        return await self._run(_hash, self._peppered(password), self._rounds)

    async def check(self, password: str, stored_hash: str | None) -> bool:
        """Does `password` match? A missing hash is checked against a dummy one.

        Checking even when there is nothing to check against keeps an unknown
        user as slow to refuse as a wrong password.
        """
        if stored_hash is None:
            if self._dummy_hash is None:
                self._dummy_hash = await self.hash("not the password of anyone")
            await self._run(_check, self._peppered(password), self._dummy_hash.encode())
            return False
        return await self._run(_check, self._peppered(password), stored_hash.encode("ascii"))


def validate_password(password: object, policy: PasswordConfig) -> str:
    """The password if it is a string within the policy; otherwise a 400."""
    if not isinstance(password, str) or len(password) > MAX_PASSWORD_LENGTH:
        raise MatrixError(400, "M_INVALID_PARAM", "Invalid password")
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
