"""ronghe.client.Client against a real ``ronghe serve`` subprocess (one for the module)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from ronghe.client import (
    AuthError,
    ChatReply,
    Client,
    ConnectionFailed,
    NotFoundError,
    TaskFailed,
    ValidationError,
)
from tests.conftest import PASSWORD, free_port
from tests.server_support import Server, make_images

PROMPT = "a red circle on a blue background"
SMALL = {"output_size": "64x64", "ddim_steps": 2}


@pytest.fixture(scope="module")
def alice(server: Server) -> Iterator[Client]:
    client = Client(server.url, email="alice@example.com", password=PASSWORD)
    yield client
    client.close()


def test_wrong_password_raises_the_servers_message(server: Server) -> None:
    with Client(server.url) as client, pytest.raises(AuthError) as caught:
        client.login("alice@example.com", "not the password")
    assert caught.value.status == 401 and caught.value.code == 401
    assert caught.value.msg == "email or password is incorrect"
    with Client(server.url, token="rht_forged") as client, pytest.raises(AuthError):
        client.result("x")


def test_login_is_lazy_and_the_token_works_for_chat(alice: Client) -> None:
    reply = alice.chat("Say this is a test!", max_new_tokens=8)
    assert alice.token and alice.token.startswith("rht_")
    assert isinstance(reply, ChatReply) and reply.text and str(reply) == reply.text
    assert reply.finish_reason in ("stop", "length")
    assert reply.usage is not None and 0 < reply.usage.completion_tokens <= 8


def test_chat_streams_deltas_and_takes_message_lists(alice: Client) -> None:
    messages = [{"role": "system", "content": "You are terse."}, ("user", "Name a colour.")]
    deltas = list(alice.chat(messages, stream=True, max_new_tokens=6, temperature=0.1))
    assert deltas and all(isinstance(d, str) and d for d in deltas)
    assert "".join(deltas).strip()


def test_chat_with_an_api_key_only(server: Server, alice: Client) -> None:
    created = alice.create_api_key("laptop")
    assert created.key and created.key.startswith("rhk_") and created.name == "laptop"
    assert created.id in [k.id for k in alice.api_keys()]
    assert all(k.key is None for k in alice.api_keys())  # secrets are shown once
    with Client(server.url, api_key=created.key) as client:
        assert client.chat("Hi", max_new_tokens=4).text
        with pytest.raises(AuthError, match="needs a token"):
            client.result("x")  # image endpoints take the token, never a key
        alice.revoke_api_key(created.id)
        with pytest.raises(AuthError) as caught:
            client.chat("Hi")
    assert caught.value.msg == "API key is invalid or revoked"
    assert created.id not in [k.id for k in alice.api_keys()]
    with pytest.raises(NotFoundError):
        alice.revoke_api_key(created.id)


def test_bad_values_fail_before_sending_or_with_the_servers_message(alice: Client) -> None:
    with pytest.raises(ValidationError, match=r"n_images: must be an integer 1-8"):
        alice.submit(PROMPT, n_images=9)
    with pytest.raises(TypeError, match="unknown field"):
        alice.submit(PROMPT, n_image=2)
    with pytest.raises(ValidationError, match=r"temperature: must be in \(0, 2\]"):
        alice.chat("x", temperature=3)
    with pytest.raises(ValidationError) as caught:  # only the server knows model sizes
        alice.submit(PROMPT, output_size="100x100")
    assert caught.value.status == 400
    assert "output_size must be WxH with each side a multiple of 8" in caught.value.msg


def test_generate_returns_images_with_lazy_data(alice: Client, tmp_path: Path) -> None:
    seen: list[str] = []
    images = alice.generate(PROMPT, n_images=2, select_seed=77, on_progress=lambda r:
                            seen.append(r.state), **SMALL)
    assert seen[-1] == "done" and len(images) == 2
    first, second = images
    assert (first.seed, second.seed) == (77, 78)
    assert (first.width, first.height) == (64, 64) and first.url.startswith(alice.base_url)
    assert first._data is None  # nothing downloaded until asked
    with Image.open(io.BytesIO(first.data)) as decoded:
        assert decoded.format == "JPEG" and decoded.size == (64, 64)
    assert first.parameters["prompt"] == PROMPT and first.parameters["seed"] == 77
    path = second.save(tmp_path)
    assert path == tmp_path / f"{second.task_id}_1.jpg"
    assert path.read_bytes() == second.data  # the server's file, metadata included
    assert first.save(tmp_path / "x.jpg").stat().st_size == len(first.data)


def test_submit_result_results_wait_and_tasks(alice: Client) -> None:
    task_id = alice.submit(PROMPT, n_images=1, **SMALL)
    final = alice.wait(task_id, timeout=120)
    assert final.state == "done" and final.task_id == task_id and len(final.images) == 1
    assert alice.result(task_id).images[0].save_index == 0
    both = alice.results([task_id, "no-such-task"])
    assert [r.state for r in both] == ["done", "not_found"]
    listing = alice.tasks(per_page=100)
    assert task_id in [t.task_id for t in listing.items]
    assert listing.total >= 1 and all(t.kind == "image" for t in listing.items)
    done = alice.tasks(state="done", per_page=100).items
    assert all(t.state == "done" for t in done) and task_id in [t.task_id for t in done]
    assert task_id not in [t.task_id for t in alice.tasks(state="failed").items]
    newer = alice.submit(PROMPT, n_images=1, **SMALL)
    newest = alice.tasks(per_page=1)
    assert [t.task_id for t in newest.items] == [newer] and newest.next_cursor
    after = alice.tasks(per_page=1, cursor=newest.next_cursor)
    assert [t.task_id for t in after.items] == [task_id]
    with pytest.raises(ValidationError, match="cursor"):
        alice.tasks(cursor="not-a-cursor")
    assert alice.wait(newer, timeout=120).state == "done"


def test_cancel_and_a_cancelled_generate_raises(alice: Client) -> None:
    task_id = alice.submit(PROMPT, n_images=8, output_size="64x64", ddim_steps=150)
    answer = alice.cancel(task_id)
    assert answer.task_id == task_id and answer.state in ("cancelled", "running")
    final = alice.wait(task_id, timeout=120)
    assert final.state == "cancelled" and final.images == []
    with pytest.raises(NotFoundError, match="not found"):
        alice.cancel("no-such-task")


def test_others_tasks_are_not_found(server: Server, alice: Client) -> None:
    task_id = alice.submit(PROMPT, n_images=1, **SMALL)
    with Client(server.url, email="bob@example.com", password=PASSWORD) as bob:
        with pytest.raises(NotFoundError) as caught:
            bob.result(task_id)
        assert caught.value.status == 404 and task_id in caught.value.msg
        assert task_id not in [t.task_id for t in bob.tasks().items]
    alice.wait(task_id, timeout=120)


def test_img2img_uploads_a_local_init_image(alice: Client, tmp_path: Path) -> None:
    source = make_images(tmp_path)[0]
    images = alice.generate(PROMPT, n_images=1, init_img=source, strength=0.5, **SMALL)
    assert images[0].task.task_type == "img2img"
    urls = alice.upload([source, source.read_bytes()])
    assert len(urls) == 2 and all(u.startswith(alice.base_url) for u in urls)


def test_datasets_training_and_the_trained_model(alice: Client, tmp_path: Path) -> None:
    paths = make_images(tmp_path)
    dataset_id = alice.create_dataset("stars", paths, description="three stars")
    listed = alice.datasets(per_page=100).items
    assert [d.images_num for d in listed if d.id == dataset_id] == [3]
    progress: list[tuple[str, int]] = []
    model = alice.train("client-stars", [dataset_id], trigger_word="purple star", steps=3,
                        seed=1, on_progress=lambda p: progress.append((p.state, p.step)))
    assert model.name == "client-stars" and model.model_id and model.task_id
    assert progress[-1] == ("done", 3)
    assert alice.train_progress(model.task_id).total_steps == 3
    private = alice.models("private").models
    assert "client-stars" in [m.model_name for m in private]
    images = alice.generate("purple star", n_images=1, model_name=model.name, **SMALL)
    assert images[0].parameters["loras"][0]["name"] == "client-stars"
    assert "ronghe-demo" in [m.model_name for m in alice.models("base").models]
    assert alice.models("lora").models == []
    fields = [f["name"] if isinstance(f, dict) else f for f in alice.generation_form()]
    assert "model_name" in str(fields)


def test_train_from_images_and_train_cancel(alice: Client, tmp_path: Path) -> None:
    paths = make_images(tmp_path)
    with pytest.raises(TaskFailed) as caught:
        # Cancelled from its progress reports: train waits and sees it end cancelled.
        alice.train("to-cancel", paths, trigger_word="x", steps=5000,
                    on_progress=lambda p: alice.train_cancel(p.task_id))
    assert caught.value.task.state == "cancelled"
    task_id = caught.value.task.task_id
    assert alice.train_cancel(task_id).state == "cancelled"  # finished: nothing changes
    with pytest.raises(NotFoundError, match="not a training task"):
        alice.train_progress(alice.submit(PROMPT, n_images=1, **SMALL))


def test_unreachable_server() -> None:
    with (Client(f"http://127.0.0.1:{free_port()}", token="t") as client,
          pytest.raises(ConnectionFailed, match="no answer from")):
        client.result("x")
    with pytest.raises(ValueError, match="http://"):
        Client("127.0.0.1:8000")


def test_a_revoked_token_is_renewed_when_the_password_is_known(server: Server) -> None:
    with Client(server.url, email="bob@example.com", password=PASSWORD) as bob:
        bob.tasks()
        first = bob.token
        with Client(server.url, token=first) as same:
            same.logout()  # revoked on the server: bob's next call gets a 401
        assert bob.tasks().total >= 0 and bob.token != first


def test_logout_revokes_the_token(server: Server) -> None:
    with Client(server.url, email="bob@example.com", password=PASSWORD) as bob:
        bob.login("bob@example.com", PASSWORD)
        token = bob.token
        bob.logout()
    with Client(server.url, token=token) as stale, pytest.raises(AuthError) as caught:
        stale.tasks()
    assert caught.value.status == 401


def test_inpainting_with_local_files_and_png_info(alice: Client, tmp_path: Path) -> None:
    source = make_images(tmp_path)[0]
    mask = tmp_path / "mask.png"
    with Image.open(source) as image:
        width, height = image.size
    picture = Image.new("L", (width, height), 0)
    picture.paste(255, (0, 0, width // 2, height))
    picture.save(mask)
    # Both images are local: uploaded first, then sent as init_img and mask_img.
    [image] = alice.generate(PROMPT, n_images=1, init_img=source, mask_img=mask, mask_blur=2,
                             select_seed=3, output_format="png", **SMALL)
    assert image.task.task_type == "inpaint"
    saved = image.save(tmp_path)
    assert saved.suffix == ".png" and image.filename.endswith(".png")
    assert "Mask blur: 2" in image.infotext and image.parameters["mask_blur"] == 2
    info = alice.png_info(saved)  # a local file: uploaded, then read
    assert info.settings["select_seed"] == 3 and info.settings["mask_blur"] == 2
    assert info.parameters["Size-1"] == "64" and info.text == image.infotext
    assert alice.png_info(image.url).settings == info.settings  # or by the image's URL
