"""`opus init`: a vault skeleton, a commented `opus.toml` and an example FR.

Nothing that exists is ever overwritten, so running it again is harmless and repairs
only what is missing.
"""

from __future__ import annotations

import json
import logging
from importlib import resources
from pathlib import Path
from types import UnionType
from typing import Literal, Union, get_args, get_origin

from pydantic import BaseModel

from opus.config import CONFIG_FILE, Settings
from opus.domain import FOLDER_FOR_STATUS
from opus.vault.scan import FEATURES_DIR

log = logging.getLogger(__name__)

VAULT_DIR = "vault"
PROMPTS_DIR = Path("00_system") / "prompts"
EXAMPLE_NOTE = Path(FEATURES_DIR) / "02_drafts" / "FR-001.md"
FEATURE_FOLDERS = ("01_ideas", *sorted(set(FOLDER_FOR_STATUS.values())))
NOT_SET = "(not set)"
"""Shown for keys without a default; uncommenting such a line needs a real value."""
KEEP_FILE = ".gitkeep"
"""Placed in empty folders so a vault kept in git keeps its shape."""

_CONFIG_HEADER = """\
# opus configuration. Every key is listed with its default, commented out:
# uncomment a line to change it. Environment variables OPUS_<SECTION>__<KEY>
# (e.g. OPUS_DAEMON__MAX_CONCURRENT=1) override this file. Relative paths are
# resolved against the folder that holds this file.
#
# Before `opus run`, set git.default_repo (or `repo:` in each FR) to the git
# repository opus should work on.
"""


def init_targets(directory: Path) -> dict[Path, bytes]:
    """Every file `init_vault` would create under `directory`, with its content."""
    vault = directory / VAULT_DIR
    files: dict[Path, bytes] = {
        directory / CONFIG_FILE: render_config().encode("utf-8"),
        vault / PROMPTS_DIR / "README.md": _template("prompts_readme.md"),
        vault / EXAMPLE_NOTE: _template("example_fr.md"),
    }
    for folder in FEATURE_FOLDERS:
        if folder != EXAMPLE_NOTE.parent.name:
            files[vault / FEATURES_DIR / folder / KEEP_FILE] = b""
    return files


def init_vault(directory: Path) -> list[Path]:
    """Create the vault skeleton, `opus.toml` and an example FR under `directory`.

    Returns the files created; files that already exist are left alone and logged.
    """
    created: list[Path] = []
    for path, content in init_targets(directory).items():
        if path.exists():
            log.info("%s exists; left alone", path)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with path.open("xb") as handle:  # "x": never replace a file made meanwhile
                handle.write(content)
        except FileExistsError:
            log.info("%s exists; left alone", path)
            continue
        created.append(path)
    return created


def _template(name: str) -> bytes:
    return (resources.files("opus") / "templates" / name).read_bytes()


def render_config() -> str:
    """`opus.toml` text listing every setting with its default and meaning, commented out."""
    parts = [_CONFIG_HEADER]
    for section, info in Settings.model_fields.items():
        model = info.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue  # base_dir and config_path are not file settings
        parts.append(f"\n[{section}]\n")
        for key, field in model.model_fields.items():
            default = field.get_default(call_default_factory=True)
            value = NOT_SET if default is None else toml_value(default)
            note = f"{field.description}{choices_note(field.annotation)}"
            parts.append(f"# {f'{key} = {value}':<36} # {note}\n")
    return "".join(parts)


def choices(annotation: object) -> tuple[list[str], bool]:
    """The values a `Literal` key allows (also inside a union), and whether a list is too."""
    if get_origin(annotation) is Literal:
        return [str(arg) for arg in get_args(annotation)], False
    if get_origin(annotation) in (Union, UnionType):
        found: list[str] = []
        listed = False
        for member in get_args(annotation):
            values, _ = choices(member)
            found += values
            listed = listed or get_origin(member) is list
        return found, listed and bool(found)
    return [], False


def choices_note(annotation: object) -> str:
    """" Choices: a, b, c." for a key with a fixed set of values; "" otherwise."""
    values, listed = choices(annotation)
    if not values:
        return ""
    return f" Choices: {', '.join(values)}" + (", or a list." if listed else ".")


def toml_value(value: object) -> str:
    """A TOML literal for a default value (strings, paths, numbers, lists, tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value))
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in value.items())
        return "{" + (f" {items} " if items else "") + "}"
    raise TypeError(f"no TOML form for {type(value).__name__}")
