"""Notes shaped like the ones people keep in real vaults, to point opus at.

`OTHERS` are not FRs: opus must leave every byte of them where it is. `UNUSABLE` ask to
run (`status: planned`, or carry an FR id with a broken status) but cannot be used: each
must be reported with its reason, and rewritten only where that is safe. `GOOD` is one
valid FR. Paths are relative to the features folder.
"""

from __future__ import annotations

BIG = 1_150_000  # over the 1 MiB limit

OTHERS: dict[str, bytes] = {
    "01_ideas/Reading list.md": (
        b"---\ntitle: Reading list\nstatus: active\ntags: [books, '2024']\n---\n"
        b"- [[Thinking, Fast and Slow]]\n- [[The Pragmatic Programmer]]\n"
    ),
    "01_ideas/Garden.md": (
        b'---\nstatus: ["[[Active]]"]\naliases:\n  - garden\ncreated: 2023-04-01\n---\n'
        b"Tomatoes need more sun. See [[Seeds#Tomato|tomato notes]].\n"
    ),
    "01_ideas/Evergreen.md": b"---\nstatus: seedling\ntype: evergreen\n---\nAn idea growing.\n",
    "01_ideas/bom-crlf.md": (
        b"\xef\xbb\xbf---\r\ntitle: Windows note\r\nstatus: done\r\n---\r\nSaved on Windows.\r\n"
    ),
    "01_ideas/tabs-comments.md": (
        b"---\ntitle: Tabs\t# a comment\nrating: 5  # stars\nstatus: reading\n---\n\tIndented.\n"
    ),
    "01_ideas/flow.md": b"---\n{title: Flow mapping, status: someday}\n---\nBody.\n",
    "01_ideas/horizontal-rule.md": (
        b"---\n\nThis note opens with a horizontal rule, not frontmatter.\n\n---\n\nMore text.\n"
    ),
    "01_ideas/unclosed-rule.md": b"---\nJust a rule and text, never closed.\n",
    "01_ideas/no-frontmatter.md": b"# Meeting 2024-03-01\n\nNo frontmatter at all.\n",
    "01_ideas/emoji 🚀.md": (
        "---\ntitle: Launch 🚀 plan\nstatus: 🔥 hot\n---\nEmoji everywhere 🎉\n".encode()
    ),
    "01_ideas/日本語.md": "---\ntitle: 日本語のノート\nstatus: 進行中\n---\n本文です。\n".encode(),
    "01_ideas/Русский.md": "---\nзаголовок: Заметка\nstatus: черновик\n---\nТекст.\n".encode(),  # noqa: RUF001
    "01_ideas/list-frontmatter.md": b"---\n- one\n- two\n---\nA list, not a mapping.\n",
    "01_ideas/broken-yaml.md": b"---\ntitle: a: b: c\nstatus: [unclosed\n---\nBroken YAML.\n",
    "01_ideas/lowercase-id.md": b"---\nid: note-12\nstatus: evergreen\n---\nnot FR-shaped\n",
    "01_ideas/big.md": b"---\ntitle: Big\nstatus: archive\n---\n" + b"lorem ipsum " * 100_000,
    "01_ideas/utf16.md": "---\ntitle: UTF-16\nstatus: active\n---\nwide\n".encode("utf-16"),
    "01_ideas/latin1.md": "---\ntitle: Café\nstatus: à faire\n---\nÉté.\n".encode("latin-1"),
    "01_ideas/yes-no.md": b"---\ntitle: yes\npublish: on\nversion: 0042\n---\nYAML 1.1 words.\n",
}

UNUSABLE: dict[str, tuple[bytes, str, bool]] = {
    # path: (bytes, words the reason must contain, whether opus may rewrite the note)
    "03_planned/FR-901.md": (
        b"---\nid: FR-901\nstatus: planned\n---\nno title\n", "missing title", True
    ),
    "03_planned/typo.md": (
        b"---\nid: FR-902\ntitle: Typo\nstatus: plannned\n---\n", "unknown status", True
    ),
    "03_planned/FR-903.md": (
        b"---\nid: FR-903\ntitle: Unclosed\nstatus: planned\nno closing line\n", "never closed",
        False,
    ),
    "03_planned/huge.md": (
        b"---\nid: FR-904\ntitle: Huge\nstatus: planned\n---\n" + b"x" * BIG, "1 MiB", True
    ),
    "03_planned/wide.md": (
        "---\nid: FR-905\ntitle: Wide\nstatus: planned\n---\nbody\n".encode("utf-16"),
        "UTF-16", False,
    ),
    "03_planned/latin.md": (
        "---\nid: FR-906\ntitle: Latin\nstatus: planned\n---\nCafé\n".encode("latin-1"),
        "not valid UTF-8", True,
    ),
    "03_planned/listy.md": (
        b"---\n- id: FR-907\n- status: planned\n---\n", "not a mapping", False
    ),
    "03_planned/no-id.md": (
        b"---\ntitle: Planned but no id\nstatus: Planned\n---\n", "missing id", True
    ),
}

GOOD: dict[str, bytes] = {
    "03_planned/FR-1.md": (
        b"---\nid: FR-1\ntitle: Write FR-1\nstatus: planned\t# go\n"
        b"test_command: grep -q FR-1 fr-1.txt\n---\n# Summary\n\nWrite the file for FR-1.\n"
    ),
}
