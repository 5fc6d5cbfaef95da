"""Webhooks through the API: the submit fields, SSRF refusals, a real delivery of a real
generation to a receiver on 127.0.0.1, the secret endpoint and the delivery log."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from standardwebhooks import Webhook

from ronghe.settings import Settings
from ronghe.webhooks.models import WebhookDelivery
from tests.conftest import Account, DemoModel, make_settings
from tests.image_support import wait_done
from tests.webhook_support import events_of, receiver

SUBMIT = "/api/v1b/task_submit"
BODY = {"prompt": "a red circle on a blue background", "n_images": 1,
        "output_size": "64x64", "ddim_steps": 4}


@pytest.fixture
def settings(tmp_path: Path, demo_model: DemoModel) -> Settings:
    return make_settings(tmp_path / "data", image_models=[demo_model.spec()], cpu_threads=1,
                         chat_models=[], webhook_allowed_networks=["127.0.0.1/32"],
                         webhook_retry_base_seconds=0.2)


@pytest.fixture
def closed_settings(tmp_path: Path, demo_model: DemoModel) -> Settings:
    return make_settings(tmp_path / "closed", image_models=[demo_model.spec()],
                         cpu_threads=1, chat_models=[])


def secret(client: TestClient, account: Account, rotate: bool = False) -> str:
    answer = client.post("/api/v1b/webhook_secret",
                         json={"token": account.token, "rotate": rotate}).json()
    assert answer["code"] == 0 and answer["msg"] == "", answer
    return answer["info"]["secret"]


def test_a_generation_is_reported_to_the_receiver_signed(client: TestClient,
                                                        account: Account) -> None:
    key = secret(client, account)
    assert key.startswith("whsec_") and secret(client, account) == key
    with receiver() as r:
        task_id = client.post(SUBMIT, json={
            **BODY, "token": account.token, "ddim_steps": 60, "n_images": 4,
            "webhook": r.url(), "webhook_events_filter": ["start", "progress", "completed"],
        }).json()["task_id"]
        done = wait_done(client, account.token, task_id)
        got = r.wait_for(lambda g: "completed" in events_of(g))
    assert done["state"] == "done"
    kinds = events_of(got)
    assert kinds[0] == "start" and kinds[-1] == "completed" and kinds.count("completed") == 1
    services = client.app.state.services  # type: ignore[attr-defined]
    with services.db.session() as s:
        made = list(s.scalars(select(WebhookDelivery.created_at).where(
            WebhookDelivery.task_id == task_id, WebhookDelivery.event == "progress")
            .order_by(WebhookDelivery.created_at)))
    # progress at most every 2 s
    assert all((b - a).total_seconds() >= 2 for a, b in itertools.pairwise(made))
    final = got[-1]
    payload = Webhook(key).verify(final.body, final.headers)
    assert payload["task_id"] == task_id and payload["state"] == "done"
    # The body is task_result's answer plus the event.
    assert [i["seed"] for i in payload["images"]] == [i["seed"] for i in done["images"]]
    assert payload["select_seed"] == done["select_seed"] == done["seed"]
    log = client.post("/api/v1b/webhook_deliveries",
                      json={"token": account.token, "task_id": task_id}).json()
    entries = log["info"]["deliveries"]
    assert {e["state"] for e in entries} == {"delivered"}
    assert [e["webhook_id"] for e in entries] == [g.id for g in got]


def test_callback_url_is_the_vendors_name_for_webhook(client: TestClient,
                                                      account: Account) -> None:
    with receiver() as r:
        task_id = client.post(SUBMIT, json={**BODY, "token": account.token,
                                            "callback_url": r.url("/cb")}).json()["task_id"]
        wait_done(client, account.token, task_id)
        got = r.wait_for(lambda g: len(g) >= 1)
    assert [(g.path, g.json["event"]) for g in got] == [("/cb", "completed")]


@pytest.mark.parametrize(("url", "reason"), [
    ("http://127.0.0.1:9/x", "loopback"),
    ("http://10.1.2.3/x", "private"),
    ("http://169.254.169.254/latest/meta-data/", "metadata"),
    ("http://[::1]:8080/x", "loopback"),
    ("http://localhost:8080/x", "loopback"),
    ("http://0.0.0.0/x", "unspecified"),
    ("http://224.0.0.1/x", "multicast"),
    ("http://[::ffff:10.0.0.1]/x", "private"),
    # 6to4 and NAT64 forms of loopback and of the metadata service (issue 26, item 6)
    ("http://[2002:7f00:1::]/", "6to4 address for 127.0.0.1, a loopback"),
    ("http://[2002:a9fe:a9fe::]/", "6to4 address for 169.254.169.254, a cloud metadata"),
    ("http://[64:ff9b::7f00:1]/x", "NAT64 address for 127.0.0.1, a loopback"),
])
def test_private_destinations_are_refused_at_submit(closed_settings: Settings, url: str,
                                                    reason: str) -> None:
    from ronghe.app import create_app
    from tests.conftest import make_account

    app = create_app(closed_settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        account = make_account(app)
        response = client.post(SUBMIT, json={**BODY, "token": account.token, "webhook": url})
        assert response.status_code == 400, response.text
        answer = response.json()
        assert reason in answer["msg"] and "webhook" in answer["msg"]
        services = app.state.services
        assert services.tasks.list(account.user_id) == []


@pytest.mark.parametrize(("fields", "needle"), [
    ({"webhook": "ftp://example.com/x"}, "http or https"),
    ({"webhook": "http://user:pw@example.com/x"}, "credentials"),
    ({"webhook": "https://x.invalid/x"}, "cannot resolve"),
    ({"webhook_events_filter": ["completed"]}, "needs a webhook"),
    ({"webhook": "http://127.0.0.1/x", "webhook_events_filter": ["done"]}, "start, progress"),
    ({"webhook": "http://127.0.0.1/a", "callback_url": "http://127.0.0.1/b"}, "one of them"),
    ({"webhook": "http://127.0.0.1/" + "a" * 2100}, "at most"),
])
def test_bad_webhook_fields_name_the_field(client: TestClient, account: Account,
                                           fields: dict[str, object], needle: str) -> None:
    response = client.post(SUBMIT, json={**BODY, "token": account.token, **fields})
    assert response.status_code == 400, response.text
    assert needle in response.json()["msg"]


def test_rotating_the_secret(client: TestClient, account: Account,
                             other_account: Account) -> None:
    first = secret(client, account)
    rotated = secret(client, account, rotate=True)
    assert rotated != first and secret(client, account) == rotated
    assert secret(client, other_account) not in (first, rotated)
    assert client.post("/api/v1b/webhook_secret", json={}).status_code == 401


def test_the_delivery_log_is_the_owners_only(client: TestClient, account: Account,
                                             other_account: Account) -> None:
    task_id = client.post(SUBMIT, json={**BODY, "token": account.token}).json()["task_id"]
    answer = client.post("/api/v1b/webhook_deliveries",
                         json={"token": other_account.token, "task_id": task_id})
    assert answer.status_code == 404
