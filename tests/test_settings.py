from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from ronghe.settings import SECRET_FILE, Settings, UnsafeSettingsError

DOCS = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def test_every_setting_is_documented() -> None:
    text = DOCS.read_text(encoding="utf-8")
    documented = dict(re.findall(r"^\| `([a-z0-9_]+)` \| `RONGHE_([A-Z0-9_]+)`", text, re.M))
    aliases = {"config_file": "CONFIG"}  # the file itself is named by RONGHE_CONFIG
    for name in Settings.model_fields:
        assert name in documented, f"setting {name} missing from {DOCS.name}"
        assert documented[name] == aliases.get(name, name.upper())


def test_precedence_init_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "ronghe.yaml"
    cfg.write_text("port: 9001\nlog_level: debug\ntoken_ttl_seconds: 600\n")
    monkeypatch.setenv("RONGHE_CONFIG", str(cfg))
    monkeypatch.setenv("RONGHE_LOG_LEVEL", "warning")
    s = Settings(data_dir=tmp_path, token_ttl_seconds=120)
    assert (s.port, s.log_level, s.token_ttl_seconds) == (9001, "warning", 120)


def test_nested_settings_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RONGHE_CHAT_MODELS",
                       '[{"name": "up", "engine": "upstream", "base_url": "http://x/v1"}]')
    s = Settings(data_dir=tmp_path)
    assert s.chat_model("up") is not None and s.chat_model("smollm2") is None


def test_bad_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="port"):
        Settings(data_dir=tmp_path, port=70000)
    with pytest.raises(ValueError, match="no_such_setting"):
        Settings(data_dir=tmp_path, no_such_setting=1)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="needs 'base_url'"):
        Settings(data_dir=tmp_path, chat_models=[{"name": "x", "engine": "upstream"}])


def test_secret_is_generated_once_and_kept(tmp_path: Path) -> None:
    first = Settings(data_dir=tmp_path).prepare()
    second = Settings(data_dir=tmp_path).prepare()
    assert first.secret_key and second.secret_key
    assert first.secret_key.get_secret_value() == second.secret_key.get_secret_value()
    mode = (tmp_path / SECRET_FILE).stat().st_mode
    assert not mode & (stat.S_IRGRP | stat.S_IROTH)


def test_public_host_needs_a_real_secret(tmp_path: Path) -> None:
    with pytest.raises(UnsafeSettingsError, match="RONGHE_SECRET_KEY"):
        Settings(data_dir=tmp_path, host="0.0.0.0").prepare()
    with pytest.raises(UnsafeSettingsError, match="32 characters"):
        Settings(data_dir=tmp_path, host="0.0.0.0", secret_key="short").prepare()
    ok = Settings(data_dir=tmp_path, host="0.0.0.0", secret_key="x" * 40).prepare()
    assert not (tmp_path / SECRET_FILE).exists() and ok.secret_key is not None
    assert Settings(data_dir=tmp_path, host="::1").prepare().is_loopback
