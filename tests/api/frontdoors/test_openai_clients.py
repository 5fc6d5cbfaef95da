"""``/v1/images/…`` in the exact shapes the tools that use it send (read from their public
source), reading what they read."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import jsonschema

from tests.api.frontdoors.conftest import Live, decoded, picture, png

PROMPT = "a red circle on a blue background"


def post(live: Live, path: str, **kw: Any) -> Any:
    r = httpx.post(f"{live.url}/v1/images/{path}",
                   headers={"Authorization": f"Bearer {live.alice.api_key}"}, timeout=300, **kw)
    assert r.status_code == 200, r.text
    return r.json()


def test_open_webui_generations_and_edits(live: Live) -> None:
    # backend/open_webui/routers/images.py, engine "openai": JSON with response_format
    # b64_json (for models not matched as URL-answering), reads data[i].b64_json.
    res = post(live, "generations", json={"model": "dall-e-2", "prompt": PROMPT, "n": 1,
                                          "size": "64x64", "response_format": "b64_json"})
    assert decoded(res["data"][0]["b64_json"]).size == (64, 64)
    # Its edits: multipart fields as strings, one image as `image` (uuid.png).
    res = post(live, "edits", data={"model": "dall-e-2", "prompt": PROMPT, "n": "1",
                                    "size": "64x64", "response_format": "b64_json"},
               files=[("image", ("0b9f.png", png(picture()), "image/png"))])
    assert decoded(res["data"][0]["b64_json"]).size == (64, 64)


def test_librechat_openai_image_tools(live: Live) -> None:
    # api/app/clients/tools/structured/OpenAIImageTools.js: image_gen_oai ...
    res = post(live, "generations", json={"model": "gpt-image-1", "prompt": PROMPT, "n": 1,
                                          "background": "auto", "output_format": "png",
                                          "quality": "auto", "size": "auto"})
    image = decoded(res["data"][0]["b64_json"])
    assert image.format == "PNG" and image.size == (512, 512)  # auto: the model's default
    # ... and image_edit_oai: multipart, the images as image[], no n.
    res = post(live, "edits", data={"model": "gpt-image-1", "prompt": PROMPT,
                                    "quality": "auto", "size": "auto"},
               files=[("image[]", ("photo.png", png(picture()), "image/png"))])
    assert res["data"][0]["b64_json"]


def test_nextcloud_text_to_image(live: Live) -> None:
    # lib/Service/OpenAiAPIService.php requestImageCreation: {prompt, size, n, model} with
    # "Default" sent as dall-e-2; TextToImageProvider takes every url AND every b64_json,
    # so an answer must carry only one of them per image.
    res = post(live, "generations", json={"prompt": PROMPT, "size": "64x64", "n": 2,
                                          "model": "dall-e-2"})
    assert len(res["data"]) == 2
    assert all("url" not in item and base64.b64decode(item["b64_json"]) for item in res["data"])


def test_both_apis_are_documented_and_answers_match_the_document(live: Live) -> None:
    doc = httpx.get(f"{live.url}/openapi.json", timeout=30).json()
    paths = doc["paths"]
    for path in ("/v1/images/generations", "/v1/images/edits", "/v1/images/variations",
                 "/sdapi/v1/txt2img", "/sdapi/v1/img2img", "/sdapi/v1/options",
                 "/sdapi/v1/progress", "/sdapi/v1/png-info", "/sdapi/v1/extra-single-image"):
        assert path in paths, path
    errors = paths["/v1/images/generations"]["post"]["responses"]
    assert errors["429"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/OpenAIError")
    errors = paths["/sdapi/v1/txt2img"]["post"]["responses"]
    assert errors["401"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/SdapiError")
    assert "text/event-stream" in paths["/v1/images/generations"]["post"]["responses"][
        "200"]["content"]

    def check(path: str, method: str, body: Any) -> None:
        schema = paths[path][method]["responses"]["200"]["content"]["application/json"][
            "schema"]
        jsonschema.Draft202012Validator({**schema, "components": doc["components"]}
                                        ).validate(body)

    check("/v1/images/generations", "post",
          post(live, "generations", json={"prompt": PROMPT, "size": "64x64",
                                          "response_format": "url"}))
    auth = {"Authorization": f"Bearer {live.alice.api_key}"}
    answer = httpx.post(f"{live.url}/sdapi/v1/txt2img", headers=auth, timeout=300,
                        json={"prompt": PROMPT, "width": 64, "height": 64, "steps": 2})
    check("/sdapi/v1/txt2img", "post", answer.json())
    for path in ("options", "sd-models", "samplers", "schedulers", "upscalers", "progress",
                 "loras"):
        check(f"/sdapi/v1/{path}", "get",
              httpx.get(f"{live.url}/sdapi/v1/{path}", headers=auth, timeout=30).json())
