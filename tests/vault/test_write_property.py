"""Property: write_fields changes opus's keys and nothing else, for any note shape."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opus.vault import write_fields
from opus.vault.text import BOM, OPUS_KEYS, load_frontmatter, split_note

WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789 _-.", min_size=1, max_size=12)
PRINTABLE = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=10
)
USER_KEY = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(
    # not opus's keys, and not words YAML reads as something else (no, on, null, ...)
    lambda k: k not in OPUS_KEYS and yaml.safe_load(f"{k}: 1") == {k: 1}
)


@st.composite
def user_value(draw: st.DrawFn) -> tuple[str, object]:
    """(YAML source after `key:`, the value it means), in one of several styles."""
    word = "w" + draw(WORD).strip()
    style = draw(st.sampled_from(["plain", "single", "double", "int", "flow", "block", "none"]))
    if style == "plain":
        return f" {word}", word
    if style == "single":
        text = draw(PRINTABLE)
        return " '" + text.replace("'", "''") + "'", text
    if style == "double":
        text = draw(PRINTABLE)
        return " " + json.dumps(text, ensure_ascii=False), text
    if style == "int":
        number = draw(st.integers(-1000, 1000))
        return f" {number}", number
    if style == "flow":
        return f" [{word}, 2]", [word, 2]
    if style == "block":
        return f"\n  - {word}\n\n  - x\n", [word, "x"]
    return "", None


@st.composite
def notes(draw: st.DrawFn) -> tuple[str, dict[str, object], list[str], str]:
    """(note text, user's keys → values, the original opus key lines, body)."""
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    keys = draw(st.lists(USER_KEY, unique=True, max_size=6))
    opus_keys = draw(st.lists(st.sampled_from(sorted(OPUS_KEYS)), unique=True, max_size=4))
    entries: list[tuple[str, str, object, bool]] = []
    for key in keys:
        source, value = draw(user_value())
        entries.append((key, source, value, False))
    for key in opus_keys:
        entries.append((key, f" old-{key}", f"old-{key}", True))
    entries = draw(st.permutations(entries))
    lines: list[str] = []
    opus_lines: list[str] = []
    for key, source, _, is_opus in entries:
        comment = draw(st.sampled_from(["", "   # note", " #x"])) if "\n" not in source else ""
        if draw(st.booleans()):
            lines.append("# comment line" + newline)
        line = (f"{key}:{source}{comment}" + ("" if source.endswith("\n") else "\n"))
        line = line.replace("\n", newline)
        (opus_lines if is_opus else lines).append(line)
        if is_opus:
            lines.append(line)
    body = draw(st.lists(st.one_of(st.just("---"), st.text(max_size=20)), max_size=6))
    body_text = "\n".join(body).replace("\x00", "")
    bom = BOM if draw(st.booleans()) else ""
    text = f"{bom}---{newline}{''.join(lines)}---{newline}{body_text}"
    user = {key: value for key, _, value, is_opus in entries if not is_opus}
    return text, user, opus_lines, body_text


FIELD_VALUE = st.one_of(st.none(), st.integers(0, 10**6),
                        st.text(max_size=30).filter(lambda t: "\x00" not in t))


@settings(
    max_examples=300,
    derandomize=True,  # the same examples every run: a failure reproduces
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(note=notes(), fields=st.dictionaries(st.sampled_from(sorted(OPUS_KEYS - {"error"})),
                                            FIELD_VALUE, max_size=5))
def test_write_changes_only_opus_keys(
    note: tuple[str, dict[str, object], list[str], str], fields: dict[str, object]
) -> None:
    text, user, opus_lines, body = note
    fields.pop("status", None)  # status must be a valid FRStatus; covered elsewhere
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "n.md"
        path.write_bytes(text.encode("utf-8"))
        write_fields(path, fields, move=False, vault_root=Path(tmp))
        after = path.read_bytes().decode("utf-8")
        assert sorted(p.name for p in Path(tmp).iterdir()) == ["n.md"]
    parsed = split_note(after)
    assert parsed.body == body
    assert after.endswith(body)
    meta = load_frontmatter(parsed) or {}
    for key, value in fields.items():
        if value is None:
            assert key not in meta
        else:
            assert meta[key] == str(value)  # opus's keys read back as text
    for key, value in user.items():
        assert meta[key] == value
    before_lines = [ln for ln in split_note(text).fm_lines if ln not in opus_lines]
    after_lines = [ln for ln in parsed.fm_lines if ln.split(":", 1)[0] not in OPUS_KEYS]
    assert after_lines == before_lines
    assert after.startswith(text[: len(BOM)] if text.startswith(BOM) else "---")
