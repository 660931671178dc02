"""Secret values never reach a page: every text shown passes through `Redactor.clean`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from opus.sandbox.environment import is_secret_name

MIN_SECRET_LEN = 8
"""Shorter values (`1`, `true`) would blank out ordinary words."""
MASK = "[redacted]"


class Redactor:
    """Replaces each known secret value with `[redacted]`."""

    def __init__(self, secrets: Iterable[str]) -> None:
        found = {value for value in secrets if len(value) >= MIN_SECRET_LEN}
        self._secrets = sorted(found, key=len, reverse=True)  # longest first: no partial mask

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} values)"

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], extra: Iterable[str] = ()) -> Redactor:
        """The values of every variable whose name looks like a secret, plus `extra`."""
        values = [value for name, value in environ.items() if is_secret_name(name)]
        return cls([*values, *extra])

    def clean(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text
