"""ControlNet processors and the brightness / tile ControlNets through task_submit, and
/api/v1b/cn/list."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from ronghe.engines.diffusion.output import read_metadata
from ronghe.engines.shipped import default_controlnet_path
from ronghe.settings import Settings
from tests.api.images.conftest import SUBMIT, submit, upload
from tests.conftest import Account, DemoModel, make_settings
from tests.image_support import add_lora, drawn, fetch_image, wait_done
from tools.demo_models.diffusion import scoring
from tools.demo_models.diffusion.control_eval import luma_correlation

KINDS = ("brightness", "tile")


def trained(kind: str) -> bool:
    meta = json.loads((default_controlnet_path(kind) / "ronghe.json").read_text())
    return meta.get("controlnet_steps", 0) >= 100  # a smoke stand-in has 3


@pytest.fixture
def settings(tmp_path: Path, demo_model: DemoModel) -> Settings:
    # lineart / openpose units borrow the canny weights: what is tested here happens before
    # (the processor choice, the annotators check) or beside (the map) the weights.
    nets = {"canny": str(demo_model.controlnet), "lineart": str(demo_model.controlnet),
            "openpose": str(demo_model.controlnet),
            **{kind: str(default_controlnet_path(kind)) for kind in KINDS}}
    return make_settings(tmp_path / "data", cpu_threads=1,
                         image_models=[demo_model.spec(controlnets=nets)])


def unit(cn: str, img: str, **config: Any) -> dict[str, Any]:
    return {"cn": cn, "img": img, "config": config}


def refused(client: TestClient, account: Account, **fields: Any) -> str:
    body = {"token": account.token, "prompt": "a red circle", **fields}
    response = client.post(SUBMIT, json=body)
    answer = response.json()
    assert (response.status_code, answer.get("code")) == (400, 400), answer
    return answer["msg"]


def test_brightness_controlnet_follows_the_light_and_dark_areas(
        client: TestClient, account: Account, demo_model: DemoModel) -> None:
    source = drawn("yellow", "square", "blue", size=128, seed=7)
    task = submit(client, account, prompt="", select_seed=0, n_images=2, ddim_steps=20,
                  output_size="128x128",
                  cn_configs=[unit("brightness", upload(client, account, source))])
    done = wait_done(client, account.token, task["task_id"])
    assert (done["state"], done["task_type"]) == ("done", "controlnet"), done
    meta = read_metadata(client.get(done["images"][0]["large"]).content)
    assert [(c["cn"], c["processor"]) for c in meta["controlnets"]] == \
        [("brightness", "brightness")]
    demo_model.require_real()
    if not trained("brightness"):
        pytest.skip("the brightness ControlNet weights are a stand-in")
    grey = source.resize((32, 32)).convert("L")
    scores = [luma_correlation(fetch_image(client, im["large"]).resize((32, 32)), grey)
              for im in done["images"]]
    assert min(scores) > 0.6, scores


def test_tile_controlnet_redraws_a_low_resolution_image(
        client: TestClient, account: Account, demo_model: DemoModel) -> None:
    source = drawn("red", "circle", "white", size=128, seed=4)
    small = upload(client, account, source.resize((8, 8), Image.Resampling.BOX))
    task = submit(client, account, prompt="", select_seed=0, n_images=2, ddim_steps=20,
                  output_size="128x128",
                  cn_configs=[unit("tile", small, control_processor="tile_colorfix_sharp",
                                   down_sample_rate=2)])
    done = wait_done(client, account.token, task["task_id"])
    assert done["state"] == "done", done
    meta = read_metadata(client.get(done["images"][0]["large"]).content)
    assert [(c["processor"], c["rate"]) for c in meta["controlnets"]] == \
        [("tile_colorfix_sharp", 2)]
    listed = client.post("/api/v1b/task_list", json={"token": account.token}).json()
    assert listed["info"]["items"][0]["params"]["cn_configs"][0]["config"][
        "down_sample_rate"] == 2
    demo_model.require_real()
    if not trained("tile"):
        pytest.skip("the tile ControlNet weights are a stand-in")
    truth = scoring.foreground_mask(source.resize((32, 32)))
    for image in done["images"]:
        out = fetch_image(client, image["large"]).resize((32, 32))
        assert scoring.iou(scoring.foreground_mask(out), truth) > 0.6
        assert scoring.read_image(out).colour == "red"


def test_every_weight_free_processor_runs(client: TestClient, account: Account) -> None:
    lines = upload(client, account, drawn("black", "triangle", "white", size=64))
    cases = [[unit("canny", lines, control_processor="invert"),
              unit("lineart", lines, control_processor="lineart_standard"),
              unit("tile", lines, control_processor="tile_colorfix", down_sample_rate=8)],
             [unit("canny", lines, control_processor="canny"),
              unit("tile", lines, control_processor="tile_resample"),
              unit("brightness", lines, control_processor="none")]]
    tasks = [submit(client, account, cn_configs=units)["task_id"] for units in cases]
    for task_id, units in zip(tasks, cases, strict=True):
        done = wait_done(client, account.token, task_id)
        assert done["state"] == "done", done
        meta = read_metadata(client.get(done["images"][0]["large"]).content)
        assert [c["processor"] for c in meta["controlnets"]] == \
            [u["config"]["control_processor"] for u in units]


def test_processor_and_rate_are_checked_per_controlnet(client: TestClient,
                                                       account: Account) -> None:
    url = upload(client, account, drawn("red", "circle", "blue"))
    assert refused(client, account, cn_configs=[unit("tile", url, control_processor="canny")]) \
        == ("cn_configs[0].config.control_processor must be one of tile_colorfix, "
            "tile_colorfix_sharp, tile_resample, none for ControlNet 'tile' (got 'canny')")
    assert "one of brightness, none for ControlNet 'brightness' (got 'invert')" in refused(
        client, account, cn_configs=[unit("canny", url),
                                     unit("brightness", url, control_processor="invert")])
    for rate in (0, 9, "fast"):
        assert "cn_configs[0].config.down_sample_rate: must be an integer 1-8" in refused(
            client, account, cn_configs=[unit("tile", url, down_sample_rate=rate)])
    services = client.app.state.services  # type: ignore[attr-defined]
    assert services.tasks.list(account.user_id) == []


def test_processor_that_needs_weights_says_what_to_configure(client: TestClient,
                                                             account: Account) -> None:
    url = upload(client, account, drawn("red", "circle", "blue"))
    message = refused(client, account,
                      cn_configs=[unit("openpose", url, control_processor="openpose_hand")])
    assert message.startswith("cn_configs[0].config.control_processor: control_processor "
                              "'openpose_hand' needs annotator weights")
    assert "set controlnet_annotators_path" in message
    # The unit's default is the weight-needing openpose too.
    assert "controlnet_annotators_path" in refused(client, account,
                                                   cn_configs=[unit("openpose", url)])


def test_configured_annotator_folder_without_the_files(tmp_path: Path, demo_model: DemoModel,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from ronghe.app import create_app
    from tests.conftest import make_account

    nets = {"lineart": str(demo_model.controlnet)}
    settings = make_settings(tmp_path / "data", controlnet_annotators_path=str(tmp_path),
                             image_models=[demo_model.spec(controlnets=nets)])
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        account = make_account(client.app)
        url = upload(client, account, drawn("red", "circle", "blue"))
        message = refused(client, account, cn_configs=[
            unit("lineart", url, control_processor="lineart_realistic")])
        assert "needs sk_model.pth, sk_model2.pth in controlnet_annotators_path" in message
        # lineart_standard needs nothing and is accepted on the same server.
        submit(client, account, cn_configs=[unit("lineart", url)])


def rows(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    assert (answer["code"], answer["msg"]) == (0, ""), answer
    return {row["name"]: row for row in answer["info"]}


def test_cn_list_names_the_controlnets_of_a_model(client: TestClient, account: Account,
                                                  demo_model: DemoModel) -> None:
    answer = client.post("/api/v1b/cn/list",
                         json={"token": account.token, "versionid": "ronghe-demo"}).json()
    listed = rows(answer)
    assert sorted(listed) == ["brightness", "canny", "lineart", "openpose", "tile"]
    tile = listed["tile"]
    assert set(tile) >= {"can_preview", "demo_picture", "demo_preview", "demo_result", "desc",
                         "local_name", "name"}
    assert tile["can_preview"] is True and tile["default_processor"] == "tile_resample"
    assert tile["control_processors"] == ["tile_colorfix", "tile_colorfix_sharp",
                                          "tile_resample", "none"]
    assert listed["openpose"]["can_preview"] is False  # no annotator weights here
    # GET with the query string, the alias, and '' (the default model) list the same.
    got = client.get("/api/v1b/cn/list", params={"token": account.token,
                                                 "versionid": "Artist_V0.1.3"})
    assert got.status_code == 200 and rows(got.json()) == listed
    assert rows(client.post("/api/v1b/cn/list", json={"token": account.token}).json()) == listed
    # A LoRA's versionid lists its base model's ControlNets.
    services = client.app.state.services  # type: ignore[attr-defined]
    lora = add_lora(services, account.user_id, "mylora", demo_model.path, "ronghe-demo")
    by_lora = client.post("/api/v1b/cn/list", json={"token": account.token, "versionid": lora})
    assert rows(by_lora.json()) == listed


def test_cn_list_errors(client: TestClient, account: Account) -> None:
    for response in (client.post("/api/v1b/cn/list", json={"versionid": "ronghe-demo"}),
                     client.get("/api/v1b/cn/list"),
                     client.post("/api/v1b/cn/list", json={"token": "nope"})):
        assert response.status_code == 401, response.text
        assert response.json()["code"] == 401
    unknown = client.post("/api/v1b/cn/list", json={"token": account.token, "versionid": "sd9"})
    assert unknown.status_code == 400
    assert unknown.json()["msg"].startswith("versionid: no base model or LoRA 'sd9'")
    wrong_type = client.post("/api/v1b/cn/list",
                             json={"token": account.token, "versionid": [1]})
    assert wrong_type.status_code == 400 and "versionid" in wrong_type.json()["msg"]
