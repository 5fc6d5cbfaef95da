"""What task_submit produces: images, sizes, seeds, metadata, img2img and ControlNet."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from ronghe.app import create_app
from ronghe.engines.diffusion.output import read_metadata, read_user_comment
from tests.api.images.conftest import submit, upload
from tests.conftest import Account, DemoModel, make_account, make_settings
from tests.image_support import drawn, fetch_image, mean_diff, wait_done
from tools.demo_models.diffusion import scoring


def test_text_to_image_draws_the_prompt(client: TestClient, account: Account,
                                        demo_model: DemoModel) -> None:
    task = submit(client, account, n_images=4, output_size="256x256", ddim_steps=20,
                  select_seed=0, scale=5)
    done = wait_done(client, account.token, task["task_id"])
    assert done["state"] == "done" and done["progress"] == 1.0
    assert done["task_type"] == "txt2img" and done["seed"] == 0
    images = [fetch_image(client, im["large"]) for im in done["images"]]
    assert all(im.size == (256, 256) for im in images)
    demo_model.require_real()
    readings = [scoring.read_image(im) for im in images]
    assert Counter(r.colour for r in readings)["red"] >= 3
    assert Counter(r.background for r in readings)["blue"] >= 3


def test_n_images_sizes_and_consecutive_seeds(client: TestClient, account: Account) -> None:
    task = submit(client, account, n_images=3, output_size="640x960", select_seed=41)
    done = wait_done(client, account.token, task["task_id"])
    assert [im["save_index"] for im in done["images"]] == [0, 1, 2]
    assert [im["seed"] for im in done["images"]] == [41, 42, 43]
    first = done["images"][0]
    assert (first["width"], first["height"]) == (640, 960)
    assert fetch_image(client, first["large"]).size == (640, 960)
    assert fetch_image(client, first["middle"]).size == (341, 512)
    assert fetch_image(client, first["small"]).size == (85, 128)
    assert len({im["large"] for im in done["images"]}) == 3
    metrics = client.get("/metrics").text
    assert 'ronghe_image_tasks_submitted_total{model="ronghe-demo",task_type="txt2img"} 1.0' \
        in metrics
    assert 'ronghe_image_tasks_finished_total{model="ronghe-demo",outcome="done"} 1.0' in metrics
    ready = client.get("/readyz").json()["checks"]["images"]
    assert ready["ready"] and "ronghe-demo" in ready["detail"]


def test_same_seed_same_images_and_random_seed_is_returned(client: TestClient,
                                                           account: Account) -> None:
    runs = [submit(client, account, n_images=2, select_seed=1234) for _ in range(2)]
    runs.append(submit(client, account, n_images=2, select_seed=-1))
    done = [wait_done(client, account.token, r["task_id"]) for r in runs]
    a, b, _ = ([np.asarray(fetch_image(client, im["large"]), np.int16) for im in d["images"]]
               for d in done)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert np.abs(a[0] - a[1]).mean() > 1
    assert 0 <= done[2]["seed"] <= 9_999_999 and done[2]["images"][0]["seed"] == done[2]["seed"]


def test_images_carry_their_generation_parameters(client: TestClient, account: Account) -> None:
    task = submit(client, account, select_seed=7, neg_prompt="blurry", scale=6.5,
                  output_size="128x64")
    done = wait_done(client, account.token, task["task_id"])
    data = client.get(done["images"][0]["large"]).content
    meta = read_metadata(data)
    assert meta["prompt"] == "a red circle on a blue background"
    assert (meta["negative_prompt"], meta["seed"], meta["steps"], meta["scale"]) == \
        ("blurry", 7, 4, 6.5)
    assert (meta["width"], meta["height"], meta["model"]) == (128, 64, "ronghe-demo")
    assert meta["render_size"] == "64x32"  # the demo renders at 32 px and says so
    assert "Seed: 7" in read_user_comment(data)
    assert read_metadata(client.get(done["images"][0]["small"]).content)["seed"] == 7


def test_img2img_follows_the_init_image_more_at_low_strength(
        client: TestClient, account: Account) -> None:
    init = drawn("green", "square", "white", size=128)
    url = upload(client, account, init)
    distances = []
    for strength in (0.2, 1.0):
        task = submit(client, account, init_img=url, strength=strength, ddim_steps=10,
                      output_size="128x128", select_seed=3)
        done = wait_done(client, account.token, task["task_id"])
        assert done["task_type"] == "img2img", done
        distances.append(mean_diff(init, fetch_image(client, done["images"][0]["large"])))
    assert distances[0] + 5 < distances[1]


def test_canny_controlnet_model_uses_init_img_as_the_control(
        client: TestClient, account: Account, demo_model: DemoModel) -> None:
    source = drawn("white", "square", "black", size=256, seed=3)
    url = upload(client, account, source)
    task = submit(client, account, init_img=url, controlnet_model="canny", ddim_steps=20,
                  prompt="a blue square on a yellow background", output_size="256x256",
                  n_images=2, select_seed=0)
    done = wait_done(client, account.token, task["task_id"])
    assert done["task_type"] == "controlnet", done
    large = client.get(done["images"][0]["large"]).content
    assert read_metadata(large)["controlnets"][0]["cn"] == "canny"
    demo_model.require_real()
    truth = scoring.foreground_mask(source.resize((32, 32)))
    ious = [scoring.iou(scoring.foreground_mask(fetch_image(client, im["large"]).resize(
        (32, 32))), truth) for im in done["images"]]
    assert sum(ious) / len(ious) > 0.5, ious


def test_cn_configs_units_with_their_own_images_and_thresholds(
        client: TestClient, account: Account) -> None:
    edges = upload(client, account, drawn("red", "triangle", "white"))
    init = upload(client, account, drawn("red", "circle", "white"))
    units = [{"cn": "canny", "weight": 1.2, "guidance_start": 0, "guidance_end": 0.8,
              "img": edges, "config": {"control_processor": "canny", "low_threshold": 50,
                                       "high_threshold": 150}},
             {"cn": "canny", "weight": 0.5, "img": edges}]
    task = submit(client, account, init_img=init, cn_configs=units, strength=0.8)
    done = wait_done(client, account.token, task["task_id"])
    assert done["state"] == "done", done
    meta = read_metadata(client.get(done["images"][0]["large"]).content)
    assert [(c["weight"], c["low"], c["high"]) for c in meta["controlnets"]] == \
        [(1.2, 50, 150), (0.5, 100, 200)]
    assert meta["strength"] == 0.8  # init_img was the img2img input, units had their own


def test_thread_mode_serves_the_same_api(tmp_path: Path, demo_model: DemoModel) -> None:
    settings = make_settings(tmp_path / "data", image_models=[demo_model.spec()],
                             image_worker_process=False, cpu_threads=1)
    app = create_app(settings)
    with TestClient(app) as client:
        account = make_account(app)
        task = submit(client, account, n_images=2, select_seed=9)
        done = wait_done(client, account.token, task["task_id"])
        assert done["state"] == "done" and [im["seed"] for im in done["images"]] == [9, 10]
