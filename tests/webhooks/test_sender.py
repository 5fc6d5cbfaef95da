"""The outbox and the sender, driven step by step: signatures, retries, redirects, SSRF at
delivery, and one delivery per event when several processes deliver."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import select, update
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from ronghe.db.migrate import upgrade
from ronghe.services import Services
from ronghe.webhooks import keys
from ronghe.webhooks.models import WebhookDelivery
from ronghe.webhooks.outbox import deliveries
from ronghe.webhooks.sender import WebhookSender, backoff
from tests.conftest import PASSWORD, make_settings
from tests.webhook_support import receiver


def user(services: Services, email: str = "hook@example.com") -> int:
    return services.auth.add_user(email, PASSWORD).id


def task_with_hook(services: Services, user_id: int, url: str,
                   events: list[str] | None = None) -> str:
    task = services.tasks.create(user_id, "image", "images.demo", {
        "prompt": "p", "seed": 7, "webhook": {"url": url, "events": events or ["completed"]}})
    return task.id


def finish(services: Services, task_id: str) -> None:
    assert services.tasks.claim(task_id, "w1") is not None
    assert services.tasks.finish(task_id, "w1", {"images": []})


def run_due(sender: WebhookSender) -> list[Any]:
    return [sender.deliver(i) for i in sender.claim()]


def due_now(services: Services) -> None:
    with services.db.session() as s:
        s.execute(update(WebhookDelivery).values(next_attempt_at=WebhookDelivery.created_at))


def test_a_completed_task_is_delivered_once_signed_as_standard_webhooks(
        services: Services) -> None:
    uid = user(services)
    with receiver() as r:
        task_id = task_with_hook(services, uid, r.url(), ["start", "completed"])
        finish(services, task_id)
        sender = WebhookSender(services)
        outcomes = run_due(sender)
        assert [o.status for o in outcomes] == [200, 200]
        assert run_due(sender) == []  # nothing twice
        got = r.received()
    assert [g.json["event"] for g in got] == ["start", "completed"]
    secret = keys.current(services.db, services.settings, uid)
    assert secret.startswith("whsec_")
    for g in got:
        # The reference implementation accepts it: headers, timestamp, signature.
        payload = Webhook(secret).verify(g.body, g.headers)
        assert payload["task_id"] == task_id
        assert g.headers["content-type"] == "application/json"
    assert len({g.id for g in got}) == 2 and all(g.id.startswith("msg_") for g in got)
    assert got[1].json["state"] == "done"
    with pytest.raises(WebhookVerificationError):
        Webhook(keys.derive("another server key" * 3, uid, "salt")).verify(got[0].body,
                                                                         got[0].headers)
    log = deliveries(services.db, task_id, uid)
    assert [(d["event"], d["state"], d["attempts"], d["last_status"]) for d in log] == [
        ("start", "delivered", 1, 200), ("completed", "delivered", 1, 200)]
    assert deliveries(services.db, task_id, uid + 1) == []  # not another user's


def test_failures_retry_with_doubling_backoff_and_the_same_id_and_body(
        services: Services) -> None:
    uid = user(services)
    assert [backoff(n, 5, 3600) for n in range(1, 10)] == [
        5, 10, 20, 40, 80, 160, 320, 640, 1280]
    assert backoff(20, 5, 3600) == 3600
    with receiver() as r:
        r.script = [500, 503]
        task_id = task_with_hook(services, uid, r.url())
        finish(services, task_id)
        sender = WebhookSender(services)
        times = []
        deadline = time.monotonic() + 20
        while len(r.received()) < 3:
            assert time.monotonic() < deadline
            if run_due(sender):
                times.append(time.monotonic())
            time.sleep(0.02)
        got = r.received()
    assert [g.answered for g in got] == [500, 503, 200]
    assert len({g.id for g in got}) == 1 and len({g.body for g in got}) == 1
    # 0.2 s after the first failure, 0.4 s after the second.
    assert times[1] - times[0] >= 0.19 and times[2] - times[1] >= 0.39
    [entry] = deliveries(services.db, task_id, uid)
    assert entry["state"] == "delivered" and entry["attempts"] == 3
    assert [x["status"] for x in entry["log"]] == [500, 503, 200]


def test_after_the_last_attempt_the_delivery_fails_for_good(tmp_path: Any) -> None:
    settings = make_settings(tmp_path / "d", webhook_allowed_networks=["127.0.0.0/8"],
                             webhook_max_attempts=2, chat_models=[])
    services = Services.build(settings)
    upgrade(services.db.engine)
    try:
        uid = user(services)
        with receiver() as r:
            r.status = 500
            task_id = task_with_hook(services, uid, r.url())
            finish(services, task_id)
            sender = WebhookSender(services)
            run_due(sender)
            due_now(services)
            run_due(sender)
            due_now(services)
            assert run_due(sender) == []
            assert len(r.received()) == 2
        [entry] = deliveries(services.db, task_id, uid)
        assert entry["state"] == "failed" and entry["attempts"] == 2
        assert entry["last_error"] == "HTTP 500"
    finally:
        services.close()


def test_redirects_are_not_followed(services: Services) -> None:
    uid = user(services)
    with receiver() as r:
        r.status = 302
        r.redirect_to = r.url("/elsewhere")
        task_id = task_with_hook(services, uid, r.url())
        finish(services, task_id)
        [outcome] = run_due(WebhookSender(services))
        assert outcome.status == 302 and not outcome.ok
        assert "not followed" in outcome.error
        time.sleep(0.3)
        assert [g.path for g in r.received()] == ["/hook"]  # never /elsewhere
    [entry] = deliveries(services.db, task_id, uid)
    assert entry["state"] == "pending" and "redirect" in entry["last_error"]


def test_the_destination_is_checked_again_at_delivery(services: Services) -> None:
    """An address allowed at submit and refused at delivery time (the DNS rebinding case:
    same check, later answer) is not contacted."""
    uid = user(services)
    with receiver() as r:
        task_id = task_with_hook(services, uid, r.url())
        finish(services, task_id)
        services.settings.webhook_allowed_networks = []
        [outcome] = run_due(WebhookSender(services))
        assert outcome.status is None and "loopback" in outcome.error
        assert r.received() == []
    [entry] = deliveries(services.db, task_id, uid)
    assert entry["last_error"].startswith("refused:") and entry["state"] == "pending"


def test_rotation_signs_with_both_secrets_for_a_while(services: Services) -> None:
    uid = user(services)
    old = keys.current(services.db, services.settings, uid)
    new = keys.current(services.db, services.settings, uid, rotate=True)
    assert new != old and keys.current(services.db, services.settings, uid) == new
    with receiver() as r:
        finish(services, task_with_hook(services, uid, r.url()))
        run_due(WebhookSender(services))
        [got] = r.received()
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        Webhook(secret).verify(got.body, got.headers)


def test_several_senders_deliver_each_event_once(db_url: str, tmp_path: Any) -> None:
    """Scale-out: every process runs a sender on the same database; each delivery is
    claimed by exactly one of them."""
    settings = make_settings(tmp_path / "d", database_url=db_url, chat_models=[],
                             webhook_allowed_networks=["127.0.0.0/8"])
    services = Services.build(settings)
    upgrade(services.db.engine)
    try:
        uid = user(services)
        with receiver() as r:
            ids = [task_with_hook(services, uid, r.url()) for _ in range(12)]
            for task_id in ids:
                finish(services, task_id)
            senders = [WebhookSender(services) for _ in range(3)]
            claimed: list[list[str]] = [[] for _ in senders]

            def work(i: int) -> None:
                for _ in range(5):
                    mine = senders[i].claim(limit=4)
                    claimed[i].extend(mine)
                    for delivery_id in mine:
                        senders[i].deliver(delivery_id)

            threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            got = r.received()
        flat = [x for c in claimed for x in c]
        assert len(flat) == len(set(flat)) == 12
        assert sorted(g.json["task_id"] for g in got) == sorted(ids)
        with services.db.session() as s:
            states = set(s.scalars(select(WebhookDelivery.state)))
        assert states == {"delivered"}
    finally:
        services.close()
