"""docs/config-reference.md is written from the config dataclasses and must match them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from p8core import ConfigSection, hookimpl, parse_table
from p8core.cli import main
from p8core.errors import PluginError
from p8core.plugins import make_plugin_manager
from p8core.reference import config_reference

ROOT = Path(__file__).resolve().parent.parent
REPO_PLUGINS = sorted(p.name for p in (ROOT / "plugins").iterdir()
                      if (p / "pyproject.toml").is_file())


def test_docs_config_reference_is_up_to_date() -> None:
    written = (ROOT / "docs" / "config-reference.md").read_text()
    current = config_reference(make_plugin_manager(REPO_PLUGINS, "<test>"), strict=True)
    assert written == current, (
        "docs/config-reference.md is out of date: run `make docs` and commit the result")


def test_every_key_of_every_table_is_in_it() -> None:
    text = (ROOT / "docs" / "config-reference.md").read_text()
    for heading in ("[server]", "[control]", "[proxy]", "[pubsub]", "[plugins]",
                    "[[routes]]", *(f"[plugins.{name}]" for name in REPO_PLUGINS)):
        assert f"## `{heading}`" in text
    for key in ("tls_listen", "unix_mode", "auto_cross_origin", "jsonp_defmethod",
                "log_level", "handler_wait", "timeout_scale"):
        assert f"| `{key}` |" in text


@dataclass(frozen=True)
class Undocumented:
    """A plugin table with a key nobody described."""

    documented: int = 1
    """Described."""
    secret_knob: bool = False


def _parse(table: Mapping[str, Any], source: str, prefix: str) -> Undocumented:
    return parse_table(Undocumented, table, source, prefix)


class Sloppy:
    @hookimpl
    def p8_config_sections(self) -> list[ConfigSection]:
        return [ConfigSection("sloppy", _parse)]


def test_an_undocumented_key_is_an_error_in_the_docs_and_marked_elsewhere() -> None:
    pm = make_plugin_manager([], "<test>", [Sloppy()])
    with pytest.raises(PluginError, match=r"plugins\.sloppy\.secret_knob has no docstring"):
        config_reference(pm, strict=True)
    assert ("| `secret_knob` | boolean | `false` | (not documented by its plugin) |"
            in config_reference(pm))


def test_the_command_prints_it(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "p8.toml"
    config.write_text(f"[plugins]\nenabled = {REPO_PLUGINS!r}\n".replace("'", '"'))
    assert main(["config-reference", "--config", str(config)]) == 0
    assert capsys.readouterr().out == (ROOT / "docs" / "config-reference.md").read_text()
