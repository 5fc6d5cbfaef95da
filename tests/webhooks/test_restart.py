"""kill -9 of the server with webhooks not yet delivered: after a restart each event is
delivered, with the webhook-id it had before."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import yaml
from standardwebhooks import Webhook

from ronghe.db.migrate import upgrade
from ronghe.services import Services
from ronghe.settings import Settings
from tests.api.images.test_recovery import start
from tests.conftest import PASSWORD, DemoModel, free_port
from tests.webhook_support import receiver


def test_undelivered_webhooks_survive_kill_9(tmp_path: Path, demo_model: DemoModel) -> None:
    config = tmp_path / "ronghe.yaml"
    config.write_text(yaml.safe_dump({
        "data_dir": str(tmp_path / "data"), "image_models": [demo_model.spec()],
        "cpu_threads": 1, "chat_models": [], "log_level": "warning",
        "webhook_allowed_networks": ["127.0.0.1/32"], "webhook_retry_base_seconds": 0.5,
        "webhook_retry_max_seconds": 2, "webhook_max_attempts": 30}))
    services = Services.build(Settings(config_file=config))
    upgrade(services.db.engine)
    services.auth.add_user("wh@example.com", PASSWORD)
    token = services.auth.issue_token("wh@example.com").secret
    services.close()

    port, log = free_port(), tmp_path / "server.log"
    base = f"http://127.0.0.1:{port}/api/v1b"
    with receiver() as r:
        r.status = 503  # the receiver is down: nothing gets acknowledged
        server = start(config, port, log)
        try:
            secret = httpx.post(f"{base}/webhook_secret", json={"token": token},
                                timeout=10).json()["info"]["secret"]
            task_id = httpx.post(f"{base}/task_submit", timeout=10, json={
                "token": token, "prompt": "a red circle on a blue background", "n_images": 1,
                "ddim_steps": 4, "output_size": "64x64", "webhook": r.url(),
                "webhook_events_filter": ["start", "completed"]}).json()["task_id"]
            got = r.wait_for(lambda g: {x.json["event"] for x in g} == {"start", "completed"})
            before = {x.json["event"]: x.id for x in got}
            server.send_signal(signal.SIGKILL)
            server.wait(timeout=10)
        finally:
            if server.poll() is None:
                server.kill()
        tried = len(r.received())
        r.status = 200  # the receiver is back
        server = start(config, port, log)
        try:
            got = r.wait_for(lambda g: sorted(x.json["event"] for x in g
                                              if x.answered == 200) == ["completed", "start"])
            time.sleep(2)  # nothing more comes once both are acknowledged
            after = r.received()
            log_answer = httpx.post(f"{base}/webhook_deliveries", timeout=10,
                                    json={"token": token, "task_id": task_id}).json()
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    acknowledged = [x for x in after if x.answered == 200]
    assert {x.json["event"]: x.id for x in acknowledged} == before
    assert len(acknowledged) == 2 and len(after) >= tried
    for x in after:
        assert Webhook(secret).verify(x.body, x.headers)["task_id"] == task_id
    # Every try of an event carried the same body.
    for event in ("start", "completed"):
        assert len({x.body for x in after if x.json["event"] == event}) == 1
    entries = log_answer["info"]["deliveries"]
    assert [(e["event"], e["state"]) for e in entries] == [("start", "delivered"),
                                                           ("completed", "delivered")]
    assert all(e["attempts"] >= 2 for e in entries)
