"""OpenID tokens: short-lived proofs of a user's identity for third parties."""

from __future__ import annotations

from hamlet.storage.database import Database, Transaction


class OpenIdStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, token: str, user_id: str, valid_until_ms: int, *, keep: int) -> None:
        """Store a token; beyond `keep` tokens of the user, the ones that expire first go."""

        async def run(txn: Transaction) -> None:
            await txn.execute(
                "INSERT INTO openid_tokens (token, user_id, valid_until_ms) VALUES (?, ?, ?)",
                (token, user_id, valid_until_ms),
            )
            await txn.execute(
                "DELETE FROM openid_tokens WHERE user_id = ? AND token NOT IN ("
                " SELECT token FROM openid_tokens WHERE user_id = ?"
                " ORDER BY valid_until_ms DESC, token LIMIT ?)",
                (user_id, user_id, keep),
            )

        await self.db.run_interaction("add_openid_token", run)

    async def get_user(self, token: str, now_ms: int) -> str | None:
        """The user a token that has not expired belongs to."""
        user_id = await self.db.fetchval(
            "get_openid_token_user",
            "SELECT user_id FROM openid_tokens WHERE token = ? AND valid_until_ms > ?",
            token,
            now_ms,
        )
        return None if user_id is None else str(user_id)

    async def delete_expired(self, now_ms: int) -> int:
        return await self.db.execute(
            "delete_expired_openid_tokens",
            "DELETE FROM openid_tokens WHERE valid_until_ms <= ?",
            now_ms,
        )
