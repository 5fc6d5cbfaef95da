"""ronghe.client.AsyncClient: the same operations from asyncio, against the real server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ronghe.client import AsyncClient, AuthError, NotFoundError, TaskFailed, ValidationError
from tests.conftest import PASSWORD
from tests.server_support import Server, make_images

PROMPT = "a red circle on a blue background"
SMALL = {"output_size": "64x64", "ddim_steps": 2}


async def test_chat_and_accounts(server: Server) -> None:
    async with AsyncClient(server.url) as client:
        with pytest.raises(AuthError, match="email or password is incorrect"):
            await client.login("alice@example.com", "wrong")
        token = await client.login("alice@example.com", PASSWORD)
        assert token.token == client.token and token.expires_at
        reply = await client.chat("Say hi", max_new_tokens=5)
        assert reply.text and reply.usage and reply.usage.completion_tokens <= 5
        stream = await client.chat("Say hi", stream=True, max_new_tokens=5)
        deltas = [d async for d in stream]
        assert deltas and all(isinstance(d, str) for d in deltas)
        with pytest.raises(ValidationError, match="max_new_tokens: must be at least 1"):
            await client.chat("x", max_new_tokens=0)
        key = await client.create_api_key("async")
        assert [k.id for k in await client.api_keys()] == [key.id]
        async with AsyncClient(server.url, api_key=key.key) as keyed:
            assert (await keyed.chat("Hi", max_new_tokens=3)).text
        await client.revoke_api_key(key.id)
        assert await client.api_keys() == []
        await client.logout()
        assert client.token is None
    async with AsyncClient(server.url, token=token.token) as stale:
        with pytest.raises(AuthError):
            await stale.tasks()


async def test_generate_and_task_calls(server: Server, tmp_path: Path) -> None:
    async with AsyncClient(server.url, email="alice@example.com", password=PASSWORD) as client:
        images = await client.generate(PROMPT, n_images=2, select_seed=5, **SMALL)
        assert [i.seed for i in images] == [5, 6]
        with pytest.raises(RuntimeError, match=r"await image\.read"):
            _ = images[0].data
        saved = await images[0].save(tmp_path)
        assert saved.name == f"{images[0].task_id}_0.jpg"
        assert saved.read_bytes() == images[0].data == await images[0].read()
        assert images[0].parameters["seed"] == 5

        # Two clients poll two tasks at once on one event loop.
        ids = await asyncio.gather(client.submit(PROMPT, n_images=1, **SMALL),
                                   client.submit(PROMPT, n_images=1, **SMALL))
        finals = await asyncio.gather(*(client.wait(i, timeout=120) for i in ids))
        assert [f.state for f in finals] == ["done", "done"]
        assert [r.task_id for r in await client.results(ids)] == ids
        assert (await client.result(ids[0])).images
        assert set(ids) <= {t.task_id for t in (await client.tasks(per_page=50)).items}
        slow = await client.submit(PROMPT, n_images=8, output_size="64x64", ddim_steps=150)
        await client.cancel(slow)
        assert (await client.wait(slow, timeout=120)).state == "cancelled"
        with pytest.raises(NotFoundError):
            await client.result("no-such-task")
        assert (await client.models("base")).models
        assert await client.generation_form()


async def test_uploads_datasets_and_training(server: Server, tmp_path: Path) -> None:
    paths = make_images(tmp_path)
    async with AsyncClient(server.url, email="bob@example.com", password=PASSWORD) as client:
        urls = await client.upload(paths)
        dataset_id = await client.create_dataset("async-stars", urls)
        assert dataset_id in [d.id for d in (await client.datasets()).items]
        task_id = await client.train_submit("async-lora", [dataset_id], trigger_word="x",
                                            steps=5000)
        assert (await client.train_progress(task_id)).total_steps == 5000
        await client.train_cancel(task_id)
        final = await client.wait_training(task_id, timeout=120)
        assert final.state == "cancelled"
        reported = asyncio.Event()
        seen: list[str] = []

        def report(progress: object) -> None:
            seen.append(progress.task_id)  # type: ignore[attr-defined]
            reported.set()

        training = asyncio.create_task(client.train(
            "async-lora-2", paths, trigger_word="x", steps=5000, timeout=120,
            on_progress=report))
        await asyncio.wait_for(reported.wait(), 60)
        await client.train_cancel(seen[0])  # while train() is polling on the same loop
        with pytest.raises(TaskFailed) as caught:
            await training
        assert caught.value.task.state == "cancelled"
        assert (await client.models("private")).models == []
