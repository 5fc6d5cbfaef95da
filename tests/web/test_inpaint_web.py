"""The generate page's inpainting brush and PNG info drop in real Chromium (issue 29):
painting by mouse and by touch, eraser and undo, the mask that reaches the task, and an
image dropped on the page filling the form."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from tests.conftest import DemoModel
from tests.web.conftest import (
    Console,
    WebServer,
    sign_in,
    start_server,
    stop_server,
    wait_until,
)

EMAIL = "ink@example.com"
# AUTOMATIC1111 1.10's parameters text for a txt2img (its create_infotext's shape).
A1111_TEXT = (
    "a green (square:1.1) on a white background\n"
    "Negative prompt: blurry, lowres\n"
    "Steps: 7, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 5.5, Seed: 4242, "
    "Size: 512x768, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Version: v1.10.1")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, demo_model: DemoModel) -> Iterator[WebServer]:
    srv, log = start_server(tmp_path_factory.mktemp("web-inpaint") / "data", demo_model,
                            [EMAIL])
    yield srv
    stop_server(srv, log)


def png(image: Image.Image, parameters: str = "") -> bytes:
    info = PngImagePlugin.PngInfo()
    if parameters:
        info.add_text("parameters", parameters)
    buf = io.BytesIO()
    image.save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def source_file() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8))
    return {"name": "source.png", "mimeType": "image/png", "buffer": png(image)}


def open_source(page: Any) -> Any:
    """Signs in, puts the source image in the img2img panel and waits for the mask canvas."""
    sign_in(page, EMAIL)
    page.goto("/#/generate")
    page.locator("#panel-img2img summary").click()
    page.locator("#init_img-file").set_input_files(source_file())
    page.locator("[data-field=init_img][data-ready]").wait_for()
    canvas = page.locator("#mask-canvas")
    canvas.wait_for()
    # (The page's CSP forbids eval, so no wait_for_function: poll from here.)
    wait_until(lambda: page.evaluate("document.querySelector('#mask-canvas').width") == 128,
               20, "the mask canvas")
    canvas.scroll_into_view_if_needed()
    return canvas


def painted(page: Any, x: int, y: int) -> bool:
    """Whether the mask has paint at the source's pixel (x, y)."""
    return bool(page.evaluate(
        "([x, y]) => document.querySelector('#mask-canvas').getContext('2d')"
        ".getImageData(x, y, 1, 1).data[3] > 127", [x, y]))


def to_screen(canvas: Any, x: float, y: float) -> tuple[float, float]:
    box = canvas.bounding_box()
    return box["x"] + x * box["width"] / 128, box["y"] + y * box["height"] / 96


def mouse_stroke(page: Any, canvas: Any, points: list[tuple[int, int]]) -> None:
    page.mouse.move(*to_screen(canvas, *points[0]))
    page.mouse.down()
    for p in points[1:]:
        page.mouse.move(*to_screen(canvas, *p), steps=8)
    page.mouse.up()


def test_mask_by_mouse_with_eraser_and_undo_reaches_the_task(page: Any, server: WebServer,
                                                             console: Console) -> None:
    canvas = open_source(page)
    page.locator("#mask-size").fill("12")
    mouse_stroke(page, canvas, [(10, 48), (50, 48)])
    assert painted(page, 30, 48) and not painted(page, 30, 20)
    mouse_stroke(page, canvas, [(90, 20), (90, 80)])  # a second stroke …
    assert painted(page, 90, 50)
    page.click("#mask-undo")  # … undone
    assert not painted(page, 90, 50) and painted(page, 30, 48)
    page.click("#mask-eraser")
    assert page.get_attribute("#mask-eraser", "aria-pressed") == "true"
    mouse_stroke(page, canvas, [(12, 48), (22, 48)])
    assert not painted(page, 15, 48) and painted(page, 40, 48)
    # The options show once something is painted.
    page.locator("[data-field=mask_blur] input[type=number]").fill("2")
    page.fill("#generate-form textarea >> nth=0", "a red circle on a blue background")
    page.locator("[data-field=ddim_steps] input[type=number]").fill("4")
    page.locator("[data-field=n_images] input[type=number]").fill("1")
    with page.expect_request("**/api/v1b/task_submit") as request:
        page.click("#generate-btn")
    body = request.value.post_data_json
    assert body["mask_img"] and body["init_img"] and body["mask_blur"] == 2
    assert (body["inpaint_full_res"], body["inpainting_fill"]) == (False, 1)
    mask = Image.open(io.BytesIO(httpx.get(body["mask_img"]).content)).convert("L")
    assert mask.size == (128, 96)
    m = np.asarray(mask)
    assert m[48, 40] == 255 and m[48, 15] == 0 and m[50, 90] == 0 and m[10, 10] == 0
    response = request.value.response()
    task_id = response.json()["task_id"]
    card = page.locator(f".task-card[data-task='{task_id}']")
    card.locator(".image-grid img").first.wait_for(timeout=180_000)
    token = page.evaluate("sessionStorage.getItem('ronghe.token')")
    result = httpx.post(server.url + "/api/v1b/task_result", json={"task_id": task_id},
                        headers={"Authorization": f"Bearer {token}"}).json()
    assert result["state"] == "done" and result["task_type"] == "inpaint"


def test_mask_by_touch(browser: Any, server: WebServer, console: Console) -> None:
    # A touch screen at phone width.
    context = browser.new_context(viewport={"width": 420, "height": 860}, has_touch=True,
                                  base_url=server.url)
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.on("pageerror", lambda e: console.errors.append(f"pageerror: {e}"))
    try:
        canvas = open_source(page)
        # What reaches the canvas: touch pointers, and no pointercancel (no scroll took over).
        page.evaluate("window.__types = []; for (const k of ['pointerdown', 'pointerup',"
                      " 'pointercancel']) document.querySelector('#mask-canvas')"
                      ".addEventListener(k, e => window.__types.push(k + ':' + e.pointerType))")
        scrolled = page.evaluate("window.scrollY")
        cdp = context.new_cdp_session(page)

        def finger(points: list[tuple[int, int]]) -> None:
            """A finger drawn along ``points`` (the source's pixels), through Chromium's
            touch input (CDP), as a touch screen delivers it."""
            at = [to_screen(canvas, x, y) for x, y in points]
            for kind, where in (("touchStart", at[:1]), *(("touchMove", [p]) for p in at[1:]),
                                ("touchEnd", [])):
                cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [
                    {"x": x, "y": y, "radiusX": 4, "radiusY": 4, "force": 1}
                    for x, y in where]})

        finger([(x, 60) for x in range(20, 101, 10)])
        assert page.evaluate("window.__types") == ["pointerdown:touch", "pointerup:touch"]
        # The finger painted along its path, and the page did not scroll under it.
        assert painted(page, 30, 60) and painted(page, 90, 60) and not painted(page, 60, 20)
        assert page.evaluate("window.scrollY") == scrolled
        # The eraser by finger, then undo.  (The tool buttons are pressed with page.click:
        # headless Chromium makes no click of a CDP tap on a scrolled page.)
        page.click("#mask-eraser")
        finger([(50, 60), (70, 60)])
        assert not painted(page, 60, 60) and painted(page, 90, 60)
        page.click("#mask-undo")
        assert painted(page, 60, 60)
        page.click("#mask-undo")
        assert not painted(page, 30, 60)
    finally:
        context.close()


def drop(page: Any, target: str, data: bytes, name: str) -> None:
    """A file dropped on ``target``, as the browser delivers a drop from the desktop."""
    transfer = page.evaluate_handle(
        "([b64, name]) => { const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));"
        " const dt = new DataTransfer(); dt.items.add(new File([bytes], name,"
        " {type: 'image/png'})); return dt; }", [base64.b64encode(data).decode(), name])
    page.dispatch_event(target, "dragover", {"dataTransfer": transfer})
    page.dispatch_event(target, "drop", {"dataTransfer": transfer})


def test_dropping_a_png_fills_the_form(page: Any, server: WebServer, console: Console) -> None:
    sign_in(page, EMAIL)
    page.goto("/#/generate")
    page.wait_for_selector("#sampler-select")
    # An AUTOMATIC1111 PNG, dropped on the results column (anywhere on the page works).
    drop(page, "#results", png(Image.new("RGB", (64, 96)), A1111_TEXT), "00001-4242.png")
    status = page.locator("#png-info-status")
    status.filter(has_text="filled in").wait_for()
    assert "v1-5-pruned-emaonly" in status.inner_text()  # not on this server: said so
    form = page.locator("#generate-form")
    assert form.locator("textarea").nth(0).input_value() == \
        "a green (square:1.1) on a white background"
    assert form.locator("textarea").nth(1).input_value() == "blurry, lowres"
    assert page.locator("[data-field=ddim_steps] input[type=number]").input_value() == "7"
    assert page.locator("[data-field=scale] input[type=number]").input_value() == "5.5"
    assert page.is_checked("#seed-fixed")
    assert page.locator("[data-field=select_seed] input[type=number]").input_value() == "4242"
    assert page.input_value("#sampler-select") == "DPM++ 2M"
    assert page.input_value("#scheduler-select") == "Karras"
    assert page.input_value("#size-select") == "512x768"

    # Ronghe's own PNG: made through the API, dropped on the form's own picker.
    token = page.evaluate("sessionStorage.getItem('ronghe.token')")
    auth = {"Authorization": f"Bearer {token}"}
    task = httpx.post(server.url + "/api/v1b/task_submit", headers=auth, json={
        "prompt": "a blue triangle on a yellow background", "neg_prompt": "red",
        "select_seed": 99, "ddim_steps": 5, "scale": 4, "output_size": "640x640",
        "n_images": 1, "output_format": "png"}).json()
    for _ in range(600):
        result = httpx.post(server.url + "/api/v1b/task_result", headers=auth,
                            json={"task_id": task["task_id"]}).json()
        if result["state"] == "done":
            break
        page.wait_for_timeout(200)
    data = httpx.get(result["images"][0]["large"]).content
    page.locator("#panel-pnginfo summary").click()
    page.locator("#png-info-file").set_input_files(
        {"name": "ronghe.png", "mimeType": "image/png", "buffer": data})
    status.filter(has_text="ronghe.png").filter(has_text="filled in").wait_for()
    assert form.locator("textarea").nth(0).input_value() == "a blue triangle on a yellow background"
    assert page.locator("[data-field=select_seed] input[type=number]").input_value() == "99"
    assert page.input_value("#size-select") == "640x640"
    assert page.input_value("#sampler-select") in ("", "DDIM")  # what the demo ran
