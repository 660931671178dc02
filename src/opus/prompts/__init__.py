"""Role prompts: shipped defaults, overridable per vault.

`vault/00_system/prompts/<role>.md` replaces the shipped `<role>.md` of this package. The
sha256 of the text used is stored with every stage run, so a result can always be traced
to the exact prompt that produced it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from opus.domain import Role
from opus.errors import ConfigError
from opus.prompts import messages

__all__ = ["Prompt", "load_prompt", "messages"]

SHIPPED_DIR = Path(__file__).resolve().parent
OVERRIDE_DIR = Path("00_system") / "prompts"


@dataclass(frozen=True)
class Prompt:
    """A role prompt: its text, the sha256 of its UTF-8 bytes, and the file it came from."""

    text: str
    sha256: str
    source: Path


def load_prompt(role: Role, vault_root: Path | None) -> Prompt:
    """The prompt for `role`: the vault's override if there is one, else the shipped file.

    An override that is empty or not UTF-8 raises `ConfigError` naming the file, rather
    than silently running the agent with a prompt nobody wrote.
    """
    name = f"{Role(role).value}.md"
    if vault_root is not None:
        override = vault_root / OVERRIDE_DIR / name
        if override.is_file():
            return _read(override)
    return _read(SHIPPED_DIR / name)


def _read(path: Path) -> Prompt:
    try:
        data = path.read_bytes()
        text = data.decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read prompt file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"prompt file {path} is not UTF-8; save it as UTF-8 text") from exc
    if not text.strip():
        raise ConfigError(
            f"prompt file {path} is empty; write the role's instructions or delete the file "
            "to use the shipped prompt"
        )
    return Prompt(text=text, sha256=hashlib.sha256(data).hexdigest(), source=path)
