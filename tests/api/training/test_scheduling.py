"""How training shares the worker: image tasks run between its steps, trainings queue, and a
training whose images vanished fails with a reason."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import Account
from tests.image_support import wait_done
from tests.training_support import (
    concept_dataset,
    progress,
    submit,
    wait_training,
)


def _cancel(client: TestClient, account: Account, task_id: str) -> None:
    client.post("/api/v1b/train_cancel", json={"token": account.token, "task_id": task_id})


def test_image_task_runs_between_training_steps(client: TestClient, account: Account) -> None:
    dataset, _ = concept_dataset(client, account.token, 2)
    training = submit(client, account.token, [dataset], steps=5000)
    wait_training(client, account.token, training, timeout=180, until=("running",))
    response = client.post("/api/v1b/task_submit", json={
        "token": account.token, "prompt": "a red circle on a blue background", "n_images": 1,
        "output_size": "64x64", "ddim_steps": 4})
    image = wait_done(client, account.token, response.json()["task_id"], timeout=120)
    assert image["state"] == "done", image
    during = progress(client, account.token, training)
    assert during["state"] == "running" and during["step"] < 5000
    _cancel(client, account, training)
    assert wait_training(client, account.token, training, timeout=60)["state"] == "cancelled"


def test_trainings_queue_and_vanished_images_fail_the_run(client: TestClient,
                                                          account: Account) -> None:
    first_set, _ = concept_dataset(client, account.token, 2)
    second_set, urls = concept_dataset(client, account.token, 2)
    first = submit(client, account.token, [first_set], name="first", steps=5000)
    wait_training(client, account.token, first, timeout=180, until=("running",))
    second = submit(client, account.token, [second_set], name="second", steps=3)
    assert progress(client, account.token, second)["state"] == "pending"
    services = client.app.state.services  # type: ignore[attr-defined]
    for url in urls:
        services.files.delete(services.files.resolve_url(url, account.user_id, "u").id,
                              account.user_id)
    _cancel(client, account, first)
    final = wait_training(client, account.token, second, timeout=120)
    assert final["state"] == "failed"
    assert "every image of the selected datasets was deleted" in final["error_msg"]
    lora = services.loras.find(account.user_id, "second")
    assert lora is not None and lora.state == "failed"
