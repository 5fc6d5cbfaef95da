"""`ronghe lora list|publish|unpublish` against a real data directory."""

from __future__ import annotations

from pathlib import Path

from tests.cli.test_cli import run


def test_publish_and_unpublish(tmp_path: Path) -> None:
    from ronghe.services import Services
    from ronghe.settings import Settings

    d = str(tmp_path)
    assert run("user", "add", "--email", "ann@example.com", "--data-dir", d,
               env={"RONGHE_USER_PASSWORD": "pass-word-1"}).exit_code == 0
    services = Services.build(Settings(data_dir=tmp_path))
    try:
        owner = services.auth.list_users()[0].id
        ready = services.loras.create(owner, "ink-wash", "ronghe-demo", trigger_word="ink",
                                      state="ready")
        services.loras.create(owner, "half-done", "ronghe-demo")  # still training
        listing = run("lora", "list", "--data-dir", d)
        assert listing.exit_code == 0
        assert listing.stdout.split() == [str(ready.id), "user", str(owner), "ink-wash",
                                          "ronghe-demo", "ink", "private"]

        r = run("lora", "publish", str(ready.id), "--data-dir", d)
        assert r.exit_code == 0 and "is public" in r.stderr
        assert [x.name for x in services.loras.list_public()[0]] == ["ink-wash"]
        assert "ink-wash" in run("lora", "list", "--public", "--data-dir", d).stdout

        assert run("lora", "unpublish", str(ready.id), "--data-dir", d).exit_code == 0
        assert services.loras.list_public() == ([], 0)
        missing = run("lora", "publish", "999", "--data-dir", d)
        assert missing.exit_code == 1 and "not found" in missing.output
    finally:
        services.close()
