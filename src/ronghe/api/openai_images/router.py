"""OpenAI Images routes, so the official ``openai`` package (and the tools built on it: Open
WebUI, LibreChat, Nextcloud) draws with Ronghe's models.  Parse, call the service, answer."""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response

from ronghe.api.deps import ApiPrincipal, ServicesDep
from ronghe.api.envelopes import Family, errors
from ronghe.api.openai_images import serving
from ronghe.api.openai_images.protocol import (
    MAX_EDIT_IMAGES,
    STREAM,
    EditForm,
    GenerationRequest,
    ImagesResponse,
    VariationForm,
)
from ronghe.errors import BadRequest

router = APIRouter(prefix="/v1/images", tags=["openai images"])
# 409: the task was cancelled meanwhile; 429: the caller's task limits; 502: the task
# failed; 503: the model is loading or broken; 504: still running after the wait.
IMAGE_ERRORS = (400, 401, 409, 413, 429, 502, 503, 504)


@router.post("/generations", response_model=ImagesResponse,
             responses={200: STREAM, **errors(Family.OPENAI, *IMAGE_ERRORS)},
             summary="Create images from a prompt (OpenAI-compatible)")
async def generations(request: Request, body: GenerationRequest, user: ApiPrincipal,
                      services: ServicesDep) -> ImagesResponse | Response:
    plan = await anyio.to_thread.run_sync(serving.submit_generation, services, user, body)
    if body.stream:
        return serving.stream(services, user, plan)
    return await serving.answer(request, services, user, plan)


async def _sent(files: list[UploadFile], field: str) -> serving.Sent:
    return serving.Sent(field, await files[0].read())


def _images(image: list[UploadFile] | None,
            image_list: list[UploadFile] | None) -> tuple[list[UploadFile], str]:
    given = [*(image or []), *(image_list or [])]
    field = "image" if image else "image[]"
    if not given:
        raise BadRequest("image: send the image to edit as a file part 'image' (or several "
                         "as 'image[]')", field="image")
    if len(given) > MAX_EDIT_IMAGES:
        raise BadRequest(f"{field}: at most {MAX_EDIT_IMAGES} images (got {len(given)})",
                         field=field)
    return given, field


@router.post("/edits", response_model=ImagesResponse,
             responses={200: STREAM, **errors(Family.OPENAI, *IMAGE_ERRORS)},
             summary="Edit an image: inpaint under a mask, else image-to-image "
                     "(OpenAI-compatible)")
async def edits(
    request: Request, user: ApiPrincipal, services: ServicesDep,
    form: Annotated[EditForm, Form()],
    image: Annotated[list[UploadFile] | None, File(description=(
        "the image to edit (PNG, JPEG or WebP); with several (image[]), the first is "
        "edited"))] = None,
    image_list: Annotated[list[UploadFile] | None, File(alias="image[]")] = None,
    mask: Annotated[UploadFile | None, File(description=(
        "a PNG of the image's size, fully transparent where the image is to be edited"))
    ] = None,
) -> ImagesResponse | Response:
    given, field = _images(image, image_list)
    source = await _sent(given, field)
    sent_mask = serving.Sent("mask", await mask.read()) if mask is not None else None
    plan = await anyio.to_thread.run_sync(serving.submit_edit, services, user,
                                          str(request.base_url), form, form.prompt, source,
                                          sent_mask, form.strength)
    if form.stream:
        return serving.stream(services, user, plan)
    return await serving.answer(request, services, user, plan)


@router.post("/variations", response_model=ImagesResponse,
             responses={200: STREAM, **errors(Family.OPENAI, *IMAGE_ERRORS)},
             summary="Variations of an image (image-to-image, OpenAI-compatible)")
async def variations(
    request: Request, user: ApiPrincipal, services: ServicesDep,
    form: Annotated[VariationForm, Form()],
    image: Annotated[list[UploadFile] | None, File(description="the source image")] = None,
) -> ImagesResponse | Response:
    given, field = _images(image, None)
    source = await _sent(given, field)
    plan = await anyio.to_thread.run_sync(serving.submit_edit, services, user,
                                          str(request.base_url), form, form.prompt, source,
                                          None, form.strength, serving.GENERATION)
    if form.stream:
        return serving.stream(services, user, plan)
    return await serving.answer(request, services, user, plan)
