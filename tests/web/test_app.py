"""The web app end to end in real Chromium against a real ``ronghe serve``: sign in,
generate, gallery, datasets, training, chat, languages, phone width."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import PASSWORD, DemoModel
from tests.training_support import concept_images, encode
from tests.web.conftest import (
    Console,
    WebServer,
    open_page,
    screenshot,
    sign_in,
    start_server,
    stop_server,
)

EMAIL = "ada@example.com"
XSS = "<img src=x onerror=alert(1)>"
PAGES = ["generate", "gallery", "datasets", "training", "models", "chat", "settings"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, demo_model: DemoModel) -> Iterator[WebServer]:
    # Previews five times a second, so a generation of a few seconds shows several.
    srv, log = start_server(tmp_path_factory.mktemp("web") / "data", demo_model, [EMAIL],
                            RONGHE_IMAGE_PREVIEW_SECONDS="0.2")
    yield srv
    stop_server(srv, log)


def generate(page: Any, prompt: str, *, steps: int = 4, count: int = 1, go: bool = True,
             extra: Any = None) -> Any:
    """Fills the generate form (few images, few steps; ``extra(page)`` sets more) and waits
    for the task card's images.  ``go=False`` keeps the form as another page prepared it."""
    if go:
        page.goto("/#/generate")
    page.fill("#generate-form textarea >> nth=0", prompt)
    page.locator("[data-field=n_images] input[type=number]").fill(str(count))
    page.locator("[data-field=ddim_steps] input[type=number]").fill(str(steps))
    if extra:
        extra(page)
    with page.expect_response("**/api/v1b/task_submit") as submitted:
        page.click("#generate-btn")
    task_id = submitted.value.json()["task_id"]
    card = page.locator(f".task-card[data-task='{task_id}']")
    card.wait_for()
    assert page.locator(".task-card").first.get_attribute("data-task") == task_id  # newest on top
    card.locator(".image-grid img").first.wait_for(timeout=180_000)
    assert card.get_attribute("data-state") == "done", card.inner_text()
    return card


def listed_task(page: Any, server: WebServer, task_id: str) -> dict[str, Any]:
    """The task as task_list reports it, with the page's own token: what the form sent."""
    token = page.evaluate("sessionStorage.getItem('ronghe.token')")
    items = httpx.post(server.url + "/api/v1b/task_list", json={"per_page": 100},
                       headers={"Authorization": f"Bearer {token}"}).json()["info"]["items"]
    return next(x for x in items if x["task_id"] == task_id)


def test_sign_in_wrong_password_then_right(page: Any, console: Console) -> None:
    console.allow(r"status of 401")  # Chromium logs the refused get_token
    page.goto("/")
    screenshot(page, "sign-in")
    page.fill("input[type=email]", EMAIL)
    page.fill("input[type=password]", "not the password")
    page.click("form button[type=submit]")
    error = page.locator(".field-error:visible, .form-error:visible")
    error.wait_for()
    assert "email or password is incorrect" in error.inner_text()
    assert page.locator("#sign-out").count() == 0
    page.fill("input[type=password]", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_selector("#sign-out")
    # The token lives in sessionStorage, never in the address.
    assert "rht_" not in page.url
    assert page.evaluate("sessionStorage.getItem('ronghe.token')").startswith("rht_")
    page.click("#sign-out")
    page.wait_for_selector("input[type=password]")
    assert page.evaluate("sessionStorage.getItem('ronghe.token')") is None


def test_generate_xss_prompt_stays_text_and_gallery_after_reload(page: Any) -> None:
    sign_in(page, EMAIL)
    pretty = generate(page, "a red circle on a blue background", steps=20, count=4)
    assert pretty.locator(".image-grid img").count() == 4
    screenshot(page, "generate")
    card = generate(page, XSS)
    assert card.locator(".task-prompt").inner_text() == XSS
    # Nothing the prompt says became markup (the console fixture also fails on alert()).
    assert page.locator("img[src='x']").count() == 0
    image = card.locator(".image-grid img").first
    # The card shows the <img> as soon as the task is done; the bytes arrive a moment later.
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0",
                           arg=image.element_handle())
    assert "/files/" in image.get_attribute("src")

    page.reload()
    page.goto("/#/gallery")
    tile = page.locator(".gallery-item").first
    tile.wait_for()
    assert page.locator(".gallery-item").count() == 2  # newest first
    assert tile.locator(".tile-prompt").inner_text() == XSS
    page.wait_for_function("() => [...document.querySelectorAll('.gallery-item img')]"
                           ".every((i) => i.complete && i.naturalWidth > 0)")
    screenshot(page, "gallery")
    tile.locator("button.tile").click()
    dialog = page.locator("dialog[open]")
    dialog.wait_for()
    assert XSS in dialog.locator(".params").inner_text()
    large = dialog.locator(".viewer-img img")
    assert large.get_attribute("src") and "/files/" in large.get_attribute("src")
    assert dialog.locator("a[download]").get_attribute("href") == large.get_attribute("src")
    page.wait_for_function(
        "() => document.querySelector('dialog[open] .viewer-img img').naturalWidth > 0")
    screenshot(page, "gallery-image")
    dialog.locator("#use-again").click()
    page.wait_for_selector("#generate-form")
    assert page.locator("#generate-form textarea").first.input_value() == XSS
    assert page.locator("#seed-fixed").is_checked()
    assert page.locator("[data-field=ddim_steps] input[type=number]").input_value() == "4"


def test_live_previews_then_the_images_with_no_failed_request(page: Any) -> None:
    failed: list[str] = []
    page.on("requestfailed", lambda r: failed.append(f"failed {r.url}: {r.failure}"))
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400
            else None)
    sign_in(page, EMAIL)
    page.goto("/#/generate")
    page.fill("#generate-form textarea >> nth=0", "a red circle, step by step")
    # Long enough for several previews (one every 0.2 s) and polls (every 0.4-1.5 s).
    page.locator("[data-field=n_images] input[type=number]").fill("4")
    page.locator("[data-field=ddim_steps] input[type=number]").fill("80")
    with page.expect_response("**/api/v1b/task_submit") as submitted:
        page.click("#generate-btn")
    card = page.locator(f".task-card[data-task='{submitted.value.json()['task_id']}']")
    card.wait_for()
    # A preview frame is on the card while the task still runs (or the test fails below).
    page.wait_for_function(
        "(c) => c.dataset.previews >= 1 || ['done', 'failed', 'cancelled']"
        ".includes(c.dataset.state)", arg=card.element_handle(), timeout=180_000)
    frame = card.locator(".task-preview img")
    assert card.get_attribute("data-state") == "running", card.inner_text()
    assert frame.count() == 1 and "/files/" in frame.get_attribute("src")
    assert page.evaluate("(img) => img.complete && img.naturalWidth > 0",
                         frame.element_handle())
    screenshot(page, "generate-preview")
    card.locator(".image-grid img").first.wait_for(timeout=180_000)
    assert card.get_attribute("data-state") == "done"
    assert card.locator(".task-preview").count() == 0  # the images replace the preview
    assert card.locator(".image-grid img").count() == 4
    page.wait_for_function("(c) => [...c.querySelectorAll('.image-grid img')]"
                           ".every((i) => i.complete && i.naturalWidth > 0)",
                           arg=card.element_handle())
    # Every preview fetched, the last ones around the task's end included, was answered.
    assert int(card.get_attribute("data-previews")) >= 1
    assert failed == []


def test_validation_error_lands_next_to_its_field(page: Any, console: Console) -> None:
    console.allow(r"status of 400")
    sign_in(page, EMAIL)
    page.goto("/#/generate")
    page.select_option("#size-select", "custom")
    page.fill("[data-field=width] input", "100")
    page.click("#generate-btn")
    error = page.locator("[data-field=output_size] .field-error")
    error.wait_for()
    assert "output_size" in error.inner_text() and "multiple of 8" in error.inner_text()


def _png_files(count: int) -> list[dict[str, Any]]:
    return [{"name": f"star-{i}.png", "mimeType": "image/png", "buffer": encode(im)}
            for i, im in enumerate(concept_images(count, size=32))]


def test_dataset_upload_train_and_generate_with_it(page: Any, console: Console,
                                                   server: WebServer) -> None:
    console.allow(r"status of 400")  # the deliberately bad file
    sign_in(page, EMAIL)
    page.goto("/#/datasets")
    page.click("#new-dataset")
    dialog = page.locator("dialog[open]")
    dialog.locator("[data-field=name] input").fill("purple <b>stars</b>")
    bad = {"name": "notes.png", "mimeType": "image/png", "buffer": b"this is not a picture"}
    dialog.locator("input[type=file]").set_input_files([*_png_files(3), bad])
    page.wait_for_function(
        "() => document.querySelectorAll('dialog[open] .upload-row.ok').length === 3"
        " && document.querySelectorAll('dialog[open] .upload-row.failed').length === 1")
    failed = dialog.locator(".upload-row.failed")
    assert "notes.png" in failed.inner_text() and "not a JPEG, PNG or WebP" in failed.inner_text()
    screenshot(page, "datasets-upload")
    dialog.locator("#create-dataset").click()
    card = page.locator(".dataset-card").first
    card.wait_for()
    assert card.locator(".dataset-name").inner_text() == "purple <b>stars</b>"
    assert "3" in card.inner_text()

    # Add one more by drag and drop onto the dataset's drop zone.
    card.click()
    detail = page.locator("dialog[open]")
    detail.locator(".image-grid .thumb").nth(2).wait_for()
    [extra] = _png_files(1)
    data = page.evaluate_handle(
        """(f) => { const dt = new DataTransfer();
           const bytes = Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0));
           dt.items.add(new File([bytes], f.name, { type: 'image/png' })); return dt; }""",
        {"b64": base64.b64encode(extra["buffer"]).decode(), "name": "dropped.png"})
    detail.locator(".drop-zone").dispatch_event("drop", {"dataTransfer": data})
    detail.locator(".upload-row.ok").wait_for()
    detail.locator("#add-images").click()
    page.wait_for_function(
        "() => document.querySelectorAll('dialog[open] .image-grid .thumb').length === 4")
    screenshot(page, "datasets")
    detail.get_by_role("button", name="Delete image 1").click()
    page.wait_for_function(
        "() => document.querySelectorAll('dialog[open] .image-grid .thumb').length === 3")
    detail.locator(".dialog-close").click()
    page.wait_for_function("() => document.querySelector('.dataset-card')"
                           "?.innerText.includes('3 images')")

    page.goto("/#/training")
    page.fill("#train-name", "purple-stars")
    page.fill("#train-trigger", "purple star")
    box = page.locator(".check-card input").first
    if not box.is_checked():
        box.check()
    page.fill("#train-steps", "12")
    page.click("#train-submit")
    run = page.locator(".train-card").first
    run.wait_for()
    seen: list[str] = []
    page.wait_for_function(
        "() => { const c = document.querySelector('.train-card');"
        " return c && ['done', 'failed', 'cancelled'].includes(c.dataset.state); }",
        timeout=300_000, polling=500)
    seen.append(run.locator(".train-stats").inner_text())
    assert run.get_attribute("data-state") == "done", run.inner_text()
    assert re.match(r"100 % · step 12 / 12", seen[-1]), seen
    assert run.locator("[role=progressbar]").get_attribute("aria-valuenow") == "100"
    # The loss curve is drawn (at least one point; more when polls caught the run mid-way).
    # The loss curve is train_progress's loss_history: every step of a short run, so a
    # reload draws the whole curve again (not only what this page saw).
    assert run.locator("svg.chart").get_attribute("data-points") == "12"
    assert run.locator("svg.chart path.line").count() == 1
    page.reload()
    run = page.locator(".train-card").first
    page.wait_for_function("() => document.querySelector('.train-card svg.chart')"
                           "?.dataset.points === '12'")
    assert run.locator("svg.chart path.line").count() == 1
    screenshot(page, "training")

    run.get_by_role("button", name=re.compile("Generate with this model")).click()
    page.wait_for_selector("#generate-form")
    model = page.locator("[data-field=model_name] select")
    assert model.input_value() == "purple-stars"
    card = generate(page, "purple star style", go=False)
    params = listed_task(page, server, card.get_attribute("data-task"))["params"]
    assert params["model_name"] == "purple-stars"

    # The same LoRA as a unit on the base model, at a chosen weight.
    def lora_unit(p: Any) -> None:
        p.locator("#panel-lora summary").click()
        p.get_by_role("button", name="+ LoRA").click()
        unit = p.locator("[data-field='lora_configs[0]']")
        unit.locator("select").select_option(label="purple-stars · purple star")
        unit.locator("input[type=number]").fill("0.8")

    card = generate(page, "purple star style", extra=lora_unit)
    params = listed_task(page, server, card.get_attribute("data-task"))["params"]
    assert [(x["name"], x["merge_weight"]) for x in params["lora_configs"]] == [
        ("purple-stars", 0.8)]

    page.goto("/#/models")
    mine = page.locator("#models-mine .model-card")
    mine.first.wait_for()
    assert "purple-stars" in mine.first.inner_text()
    screenshot(page, "models")


def test_cancel_a_generation_and_a_training(page: Any, server: WebServer) -> None:
    sign_in(page, EMAIL)
    page.goto("/#/generate")
    page.fill("#generate-form textarea >> nth=0", "a long task to cancel")
    page.locator("[data-field=n_images] input[type=number]").fill("8")
    page.locator("[data-field=ddim_steps] input[type=number]").fill("150")
    page.click("#generate-btn")
    card = page.locator(".task-card").first
    card.get_by_role("button", name="Cancel").click()
    page.wait_for_function("() => document.querySelector('.task-card')?.dataset.state"
                           " === 'cancelled'", timeout=120_000)
    assert card.locator(".image-grid img").count() == 0

    # A training of its own dataset (made through the API), cancelled from its card.
    token = page.evaluate("sessionStorage.getItem('ronghe.token')")
    auth = {"Authorization": f"Bearer {token}"}
    files = [("init_img", (f["name"], f["buffer"], "image/png")) for f in _png_files(2)]
    urls = httpx.post(server.url + "/api/v1b/upload_imgs", files=files, headers=auth)
    dataset = httpx.post(server.url + "/api/v1b/dataset", headers=auth,
                         json={"name": "to cancel", "images": urls.json()["info"]})
    page.goto(f"/#/training?dataset={dataset.json()['info']['dataset_id']}")
    page.fill("#train-name", "never-finished")
    page.fill("#train-steps", "5000")
    page.click("#train-submit")
    run = page.locator(".train-card").first
    run.locator(".train-name").filter(has_text="never-finished").wait_for()
    run.get_by_role("button", name="Cancel").click()
    page.wait_for_function("() => document.querySelector('.train-card')?.dataset.state"
                           " === 'cancelled'", timeout=120_000)
    assert run.get_by_role("button", name="Generate with this model").count() == 0


def test_img2img_upload_and_controlnet_unit(page: Any, server: WebServer) -> None:
    sign_in(page, EMAIL)
    [start, control] = _png_files(2)

    def units(p: Any) -> None:
        p.locator("#panel-img2img summary").click()
        p.locator("#init_img-file").set_input_files(start)
        p.locator("[data-field=init_img][data-ready] .pick-preview img").wait_for()
        p.locator("[data-field=strength] input[type=number]").fill("0.7")
        p.locator("#panel-cn summary").click()
        p.get_by_role("button", name="+ ControlNet").click()
        unit = p.locator("[data-field='cn_configs[0]']")
        unit.locator("input[type=file]").set_input_files(control)
        unit.locator("[data-field='cn_configs[0].img'][data-ready]").wait_for()
        low = "[data-field='cn_configs[0].config.low_threshold'] input[type=number]"
        unit.locator(low).fill("50")

    card = generate(page, "a red circle on a blue background", extra=units)
    listed = listed_task(page, server, card.get_attribute("data-task"))
    assert listed["task_type"] == "controlnet"
    params = listed["params"]
    assert params["init_img"] and params["strength"] == 0.7
    [unit] = params["cn_configs"]
    assert unit["cn"] == "canny" and unit["img"] and unit["config"]["low_threshold"] == 50


def test_chat_streams_an_answer(page: Any) -> None:
    sign_in(page, EMAIL)
    page.goto("/#/chat")
    page.wait_for_function("() => document.querySelector('#chat-model').options.length > 0")
    # Record the reply's length at every change: a streamed answer grows in pieces.
    page.evaluate("""() => { window.__lengths = new Set();
      new MutationObserver(() => {
        const text = document.querySelector('.bubble.assistant .bubble-text');
        if (text && text.textContent) window.__lengths.add(text.textContent.length);
      }).observe(document.getElementById('chat-log'),
                 { subtree: true, characterData: true, childList: true }); }""")
    page.fill("#chat-input", "Say hello in one short sentence.")
    page.keyboard.press("Enter")
    bubble = page.locator(".bubble.assistant").first
    bubble.wait_for()
    page.wait_for_function("() => window.__lengths.size >= 3", timeout=120_000)
    screenshot(page, "chat")
    # Stop ends a reply still running and keeps what came (a small model may ramble).
    # (clicked from the page, so a reply that ends meanwhile cannot race the click)
    page.evaluate("() => { const stop = document.getElementById('chat-stop');"
                  " if (!stop.hidden) stop.click(); }")
    page.wait_for_function("() => !document.querySelector('.bubble.streaming')")
    assert not page.locator("#chat-stop").is_visible()
    assert bubble.locator(".bubble-text").inner_text().strip()
    question = page.locator(".bubble.user .bubble-text").inner_text()
    assert question == "Say hello in one short sentence."
    # The conversation survives a visit to another page.
    page.goto("/#/models")
    page.goto("/#/chat")
    assert page.locator(".bubble").count() == 2


def test_chinese_ui_and_switch(browser: Any, server: WebServer, console: Console) -> None:
    page = open_page(browser, server.url, console, locale="zh-CN")
    try:
        page.goto("/")
        assert page.locator("h2").first.inner_text() == "登录"
        sign_in(page, EMAIL)
        assert page.locator(".nav-link").first.inner_text() == "创作"
        assert page.locator("#generate-btn").inner_text() == "立即生成"
        assert page.evaluate("document.documentElement.lang") == "zh-CN"
        screenshot(page, "generate-zh")
        page.click("#lang-switch")
        page.wait_for_function(
            "() => document.querySelector('#generate-btn')?.textContent === 'Generate'")
        assert page.locator(".nav-link").first.inner_text() == "Generate"
        page.reload()  # the choice is kept
        page.wait_for_selector("#generate-btn")
        assert page.locator(".nav-link").first.inner_text() == "Generate"
    finally:
        page.context.close()


def test_phone_width_has_no_horizontal_scroll(browser: Any, server: WebServer,
                                              console: Console) -> None:
    page = open_page(browser, server.url, console, width=390, height=844)
    try:
        sign_in(page, EMAIL)
        for name in PAGES:
            page.goto(f"/#/{name}")
            page.wait_for_timeout(600)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"{name}: page is {width} px wide at 390 px"
        page.goto("/#/generate")
        page.wait_for_selector("#generate-btn")
        screenshot(page, "phone-generate")
        menu = page.locator(".menu-btn")
        assert menu.is_visible() and not page.locator("#nav").is_visible()
        menu.click()
        page.locator("#nav a[href='#/gallery']").click()
        page.wait_for_selector(".page-gallery")
        assert not page.locator("#nav").is_visible()
    finally:
        page.context.close()


def test_keyboard_only_sign_in_and_focus_is_visible(page: Any) -> None:
    page.goto("/")
    page.wait_for_selector("input[type=email]:focus")
    page.keyboard.type(EMAIL)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_selector("#sign-out")
    # The first page renders once its requests answer, replacing what had focus: a Tab
    # pressed before that moves focus into nodes about to go, and focus falls to <body>.
    page.wait_for_load_state("networkidle")
    page.keyboard.press("Tab")
    shadow = page.evaluate("getComputedStyle(document.activeElement).boxShadow")
    assert shadow and shadow != "none"
    # Every form control on every page has a label.
    for name in PAGES:
        page.goto(f"/#/{name}")
        page.wait_for_timeout(500)
        unlabelled = page.evaluate("""() => [
          ...document.querySelectorAll('input, select, textarea')].filter((el) =>
            el.type !== 'hidden' && !el.labels?.length && !el.getAttribute('aria-label'))
          .map((el) => el.outerHTML)""")
        assert not unlabelled, (name, unlabelled)


def test_security_headers(server: WebServer) -> None:
    response = httpx.get(server.url + "/")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    # No inline script or handler in the shipped page itself.
    html = response.text
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert not re.search(r"\son[a-z]+\s*=", html)
    static = Path(__file__).resolve().parents[2] / "src/ronghe/web/static"
    for js in static.rglob("*.js"):
        assert "innerHTML" not in js.read_text(encoding="utf-8"), js


def test_both_languages_have_every_string(page: Any) -> None:
    page.goto("/")
    missing = page.evaluate("""async () => {
      const { en, zh } = await import('/static/js/strings.js');
      return [Object.keys(en).filter((k) => !(k in zh)), Object.keys(zh).filter((k) => !(k in en))];
    }""")
    assert missing == [[], []]
