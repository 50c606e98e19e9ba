"""The one exception type the config layer raises."""

from __future__ import annotations

from collections.abc import Iterable


class ConfigError(Exception):
    """The configuration is unusable.

    ``errors`` lists every problem found, each naming the key path first,
    e.g. ``database.args.database: must be a string``.
    """

    errors: list[str]

    def __init__(self, errors: Iterable[str] | str) -> None:
        self.errors = [errors] if isinstance(errors, str) else list(errors)
        super().__init__(self._render())

    def _render(self) -> str:
        if len(self.errors) == 1:
            return f"invalid configuration: {self.errors[0]}"
        lines = "\n".join(f"  {e}" for e in self.errors)
        return f"invalid configuration ({len(self.errors)} errors):\n{lines}"

    def __str__(self) -> str:
        return self._render()
