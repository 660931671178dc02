"""`opus status` reads its settings without pydantic (`opus.lightconfig`): the same values
as `load_settings`, or none at all (then the full settings are loaded and name the error)."""

from __future__ import annotations

import os
import pprint
from pathlib import Path

import pytest

from opus.config import compact_schema, load_settings, section_validators
from opus.errors import ConfigError
from opus.lightconfig import SCHEMA, VALIDATED, LightSettings, light_settings

INIT_STYLE = """\
[vault]
path = "notes"
settle_s = 0.5
[daemon]
state_dir = "state"
poll_idle_s = 60
heartbeat_s = 10
lease_s = 20
[agents]
engine = "command"
command = ["./agent.sh", "{role}"]
prices = { "m" = { "input" = 3.0, "output" = 15 } }
[budget]
daily_usd = 12
[notify]
urls = []
"""

# (opus.toml, variables): each is either read alike by both, or refused by the light
# reader and then by `load_settings` (invalid) or accepted by it (a form it leaves to it).
CASES: list[tuple[str | None, dict[str, str]]] = [
    (None, {}),
    ("", {}),
    (INIT_STYLE, {}),
    (INIT_STYLE, {"OPUS_BUDGET__DAILY_USD": "7.5", "OPUS_DAEMON__STATE_DIR": "~/elsewhere"}),
    (INIT_STYLE, {"opus_agents__engine": "anthropic", "OPUS_DASHBOARD_TOKEN": "not a setting"}),
    (INIT_STYLE, {"OPUS_DATABASE__URL": "postgresql://u@127.0.0.1/x"}),
    ("[database]\nurl = \"sqlite:////tmp/x.db\"\n", {"OPUS_DAEMON__POLL_IDLE_S": "1e2"}),
    ("[vault]\nmove_notes = false\n", {"OPUS_VAULT__MOVE_NOTES": "yes"}),
]
PLAIN = len(CASES)
"""The cases above are read by the light reader itself."""
CASES += [
    # Forms the light reader leaves to the full settings:
    (INIT_STYLE, {"OPUS_BUDGET": '{"daily_usd": 3}'}),
    (INIT_STYLE, {"OPUS_DASHBOARD__LISTEN": "127.0.0.1:8765"}),
    ("[pipeline]\napprove_plan = [\"critical\", \"high\"]\n", {}),
    (INIT_STYLE, {"OPUS_NOTIFY__URLS": '["json://localhost/"]'}),
    ("[daemon]\nmax_concurrent = 2.0\n", {}),
    ("[budget]\ndaily_usd = \"5\"\n", {}),
    # Invalid, whoever reads it:
    ("[daemon]\nmax_concurent = 2\n", {}),
    ("[daemon]\nmax_concurrent = 0\n", {}),
    ("[daemon]\nheartbeat_s = 100\n", {}),
    ("[vault]\nid_pattern = \"[\"\n", {}),
    ("[agents]\nengine = \"Anthropic\"\n", {}),
    ("[dashboard]\nlisten = \"nowhere\"\n", {}),
    ("[pipeline]\napprove_plan = [\"urgent\"]\n", {}),
    ("[deamon]\nstate_dir = \"x\"\n", {}),
    ("[daemon\n", {}),
    (INIT_STYLE, {"OPUS_DAEMON__MAX_CONCURRENT": "abc"}),
    (INIT_STYLE, {"OPUS_DEAMON__MAX_CONCURRENT": "1"}),
    (INIT_STYLE, {"OPUS_SANDBOX__KIND": "docker"}),
    (INIT_STYLE, {"OPUS_BUDGET__DAILY_USD": "-1"}),
]


def test_the_schema_snapshot_is_the_settings_schema() -> None:
    expected = compact_schema()
    assert expected == SCHEMA, "update opus/lightconfig.py SCHEMA to:\n" + pprint.pformat(
        expected, width=92, sort_dicts=False)


def test_every_validator_of_the_settings_is_known() -> None:
    assert section_validators() == VALIDATED, "update opus/lightconfig.py VALIDATED"


@pytest.mark.parametrize(("toml", "variables"), CASES)
def test_light_settings_are_the_settings_or_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, toml: str | None, variables: dict[str, str]
) -> None:
    for name in [n for n in os.environ if n.upper().startswith("OPUS_")]:
        monkeypatch.delenv(name)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    if toml is not None:
        (tmp_path / "opus.toml").write_text(toml)
    light = light_settings(cwd=tmp_path)
    try:
        full = LightSettings.of(load_settings(cwd=tmp_path))
    except ConfigError:
        assert light is None  # the full settings name the error
        return
    assert light is None or light == full
    assert light is not None or CASES.index((toml, variables)) >= PLAIN


def test_plain_configurations_take_the_light_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPUS_BUDGET__DAILY_USD", "7.5")
    (tmp_path / "opus.toml").write_text(INIT_STYLE)
    light = light_settings(cwd=tmp_path)
    assert light is not None and light == LightSettings.of(load_settings(cwd=tmp_path))
    assert (light.daily_usd, light.poll_idle_s, light.engine) == (7.5, 60.0, "command")
    assert light.vault_path == tmp_path / "notes" and light.state_dir == tmp_path / "state"
