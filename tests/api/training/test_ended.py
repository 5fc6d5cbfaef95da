"""A training that ends without its handler: failed by recovery after its worker was lost
too often, or cancelled while pending.  Its LoRA entry ends with the task; train_progress
only reads; the checkpoints go when the next training starts on the worker."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from ronghe.app import create_app
from ronghe.catalog.service import LoraState
from ronghe.db.base import utcnow
from ronghe.jobs.models import Task
from ronghe.jobs.runner import JobContext
from ronghe.queues import Kind
from ronghe.services import Services
from ronghe.tasks import training
from ronghe.tasks.context import TrainTaskContext
from ronghe.tasks.training import TrainJob, work_dir, work_root
from ronghe.training.service import Training
from ronghe.webhooks.request import Webhook
from tests.conftest import Account, make_account, make_settings
from tests.training_support import progress


@pytest.fixture
def idle(tmp_path: Path) -> Iterator[TestClient]:
    """An app whose worker never starts (no lifespan): tasks stay where the test puts them."""
    app = create_app(make_settings(tmp_path / "data"))
    yield TestClient(app, raise_server_exceptions=False)
    app.state.services.close()


def services_of(client: TestClient) -> Services:
    return client.app.state.services  # type: ignore[attr-defined,no-any-return]


def stored_training(services: Services, account: Account, name: str) -> tuple[str, int]:
    """A training task and its 'training' catalog entry, as train_submit leaves them."""
    lora = services.loras.create(account.user_id, name, "ronghe-demo")
    job = TrainJob(lora_id=lora.id, name=name, base_model="ronghe-demo", family="demo",
                   trigger_word="tw", main_body="Style", file_ids=[], preset={"steps": 40},
                   seed=1)
    task = services.tasks.create(account.user_id, Kind.TRAIN, "training", job.to_params())
    services.loras.update(lora.id, task_id=task.id)
    return task.id, lora.id


def lose_for_good(services: Services, task_id: str) -> None:
    """Its worker dies on the last attempt: the lease runs out, recovery fails the task."""
    assert services.tasks.claim(task_id, "gone-worker") is not None
    with services.db.session() as s:
        s.execute(update(Task).where(Task.id == task_id).values(
            attempts=services.tasks.max_attempts,
            lease_expires_at=utcnow() - timedelta(seconds=1)))
    assert services.tasks.recover()[1] == [task_id]


def checkpoint(services: Services, task_id: str) -> Path:
    folder = work_dir(services.settings.data_dir, task_id)
    folder.mkdir(parents=True)
    (folder / "state.pt").write_bytes(b"steps so far")
    return folder


def test_a_run_lost_for_good_ends_its_lora_and_progress_only_reads(idle: TestClient) -> None:
    services, account = services_of(idle), make_account(idle.app)
    task_id, lora_id = stored_training(services, account, "lost")
    folder = checkpoint(services, task_id)
    lose_for_good(services, task_id)
    # The entry ended in the same change, before anyone read the training.
    assert services.loras.get(lora_id).state == LoraState.FAILED
    answer = progress(idle, account.token, task_id)
    assert answer["state"] == "failed" and answer["model_name"] == "lost"
    assert folder.exists()  # reading the progress deletes nothing


def test_train_progress_changes_nothing_and_a_write_settles_what_ended_before(
        idle: TestClient) -> None:
    services, account = services_of(idle), make_account(idle.app)
    task_id, lora_id = stored_training(services, account, "old-run")
    # Ended before entries ended with their tasks: failed, the entry still 'training'.
    with services.db.session() as s:
        s.execute(update(Task).where(Task.id == task_id).values(
            state="failed", finished_at=utcnow(), error_msg="worker lost 3 times; giving up"))
    assert progress(idle, account.token, task_id)["state"] == "failed"
    assert services.loras.get(lora_id).state == LoraState.TRAINING
    # train_submit's name check and train_cancel settle it before deciding anything.
    lora = services.loras.get(lora_id)
    assert Training(services).settle(lora).state == LoraState.FAILED


def test_a_training_cancelled_while_pending_ends_its_lora(idle: TestClient) -> None:
    services, account = services_of(idle), make_account(idle.app)
    task_id, lora_id = stored_training(services, account, "never-ran")
    services.tasks.request_cancel(task_id, account.user_id)
    assert services.loras.get(lora_id).state == LoraState.CANCELLED


def test_the_next_training_removes_checkpoints_that_can_never_resume(
        idle: TestClient) -> None:
    services, account = services_of(idle), make_account(idle.app)
    lost, _ = stored_training(services, account, "lost")
    elsewhere, _ = stored_training(services, account, "elsewhere")
    waiting, _ = stored_training(services, account, "waiting")
    starting, _ = stored_training(services, account, "starting")
    folders = {t: checkpoint(services, t) for t in (lost, elsewhere, waiting, starting)}
    lose_for_good(services, lost)
    gone = work_dir(services.settings.data_dir, "a-task-deleted-since")
    gone.mkdir()
    assert services.tasks.claim(elsewhere, "another-worker") is not None
    claimed = services.tasks.claim(starting, "this-worker")
    assert claimed is not None
    job = JobContext(services.tasks, claimed, "this-worker", threading.Event())
    training.sweep(TrainTaskContext(job, services.files, services.loras,
                                    services.image_models,
                                    work_root(services.settings.data_dir), None,
                                    services.datasets, services.tasks.ended))
    assert not folders[lost].exists() and not gone.exists()
    # Running elsewhere, waiting to run, or its own: kept.
    assert all(folders[t].exists() for t in (elsewhere, waiting, starting))


def test_train_progress_reads_the_captions_from_the_memo_or_where_older_rows_kept_them(
        idle: TestClient) -> None:
    services, account = services_of(idle), make_account(idle.app)
    job = TrainJob(lora_id=1, name="c", base_model="ronghe-demo", family="demo",
                   trigger_word="tw", main_body="Style", file_ids=["f1", "f2"],
                   preset={"steps": 40}, seed=1)
    used = {"f2": "tw, two", "f1": "tw, one"}
    for params in ({**job.to_params(), "memo": {"captions": used}},
                   {**job.to_params(), "captions": used}):  # before issue 27
        task = services.tasks.create(account.user_id, Kind.TRAIN, "training", params)
        assert progress(idle, account.token, task.id)["captions"] == ["tw, one", "tw, two"]


def test_the_train_job_round_trips_with_its_webhook() -> None:
    job = TrainJob(lora_id=1, name="c", base_model="ronghe-demo", family="demo",
                   trigger_word="tw", main_body="Style", file_ids=["f1"],
                   preset={"steps": 40}, seed=1, sample_prompts=["p"],
                   webhook=Webhook("https://example.com/hook", ("completed",)))
    params = job.to_params()
    assert params["webhook"] == {"url": "https://example.com/hook", "events": ["completed"]}
    assert TrainJob.from_params(params) == job
    bare = TrainJob.from_params({k: v for k, v in params.items() if k != "webhook"})
    assert bare.webhook is None and "webhook" not in bare.to_params()
