"""AUTOMATIC1111-compatible routes (``/sdapi/v1/…``): parse, call the service, answer.

Every route needs the caller (``auth.sdapi_user``): models, options and progress are theirs.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import Response

from ronghe.api.deps import ServicesDep
from ronghe.api.envelopes import Family, errors
from ronghe.api.sdapi import extras, models, serving
from ronghe.api.sdapi.auth import SdUser
from ronghe.api.sdapi.protocol import (
    ExtraSingleImage,
    ExtraSingleImageRequest,
    ImageResult,
    Img2ImgRequest,
    LatentUpscaleMode,
    LoraEntry,
    PngInfo,
    PngInfoRequest,
    Progress,
    Sampler,
    Scheduler,
    SdModel,
    SdOptions,
    SdVae,
    Txt2ImgRequest,
    Upscaler,
)

router = APIRouter(prefix="/sdapi/v1", tags=["automatic1111"])
# 409: the task was cancelled (upscale); 413: a body or image too large; 429: the caller's
# task limits, or too many wrong passwords; 502: the task failed; 503: the model cannot
# load; 504: still running.
DRAW_ERRORS = errors(Family.SDAPI, 400, 401, 409, 413, 429, 502, 503, 504)
READ_ERRORS = errors(Family.SDAPI, 401, 429)
POST_ERRORS = errors(Family.SDAPI, 400, 401, 413, 429)


@router.post("/txt2img", response_model=ImageResult, responses=DRAW_ERRORS,
             summary="Text to image (A1111-compatible)")
async def txt2img(request: Request, body: Txt2ImgRequest, user: SdUser,
                  services: ServicesDep) -> ImageResult | Response:
    return await serving.draw(request, services, user, body)


@router.post("/img2img", response_model=ImageResult, responses=DRAW_ERRORS,
             summary="Image to image, inpainting with a mask (A1111-compatible)")
async def img2img(request: Request, body: Img2ImgRequest, user: SdUser,
                  services: ServicesDep) -> ImageResult | Response:
    return await serving.draw(request, services, user, body)


@router.get("/options", responses=READ_ERRORS, summary="Your settings: the model you draw with")
def get_options(user: SdUser, services: ServicesDep) -> SdOptions:
    return models.get_options(services, user)


@router.post("/options", responses=POST_ERRORS,
             summary="Choose your model (sd_model_checkpoint); other settings are ignored")
def set_options(user: SdUser, services: ServicesDep,
                body: Annotated[dict[str, Any], Body()]) -> None:
    models.set_options(services, user, body)


@router.get("/sd-models", responses=READ_ERRORS, summary="Models: base models and yours")
def sd_models(user: SdUser, services: ServicesDep) -> list[SdModel]:
    return models.sd_models(services, user)


@router.get("/samplers", responses=READ_ERRORS, summary="Samplers your model takes")
def samplers(user: SdUser, services: ServicesDep) -> list[Sampler]:
    return models.samplers_of(services, user)


@router.get("/schedulers", responses=READ_ERRORS, summary="Schedule types")
def schedulers(user: SdUser) -> list[Scheduler]:
    return models.schedulers()


@router.get("/upscalers", responses=READ_ERRORS, summary="Upscalers")
def upscalers(user: SdUser, services: ServicesDep) -> list[Upscaler]:
    return models.upscalers(services)


@router.get("/latent-upscale-modes", responses=READ_ERRORS, summary="Latent upscale modes")
def latent_upscale_modes(user: SdUser) -> list[LatentUpscaleMode]:
    return models.latent_upscale_modes()


@router.get("/sd-vae", responses=READ_ERRORS, summary="VAEs (each model uses its own)")
def sd_vae(user: SdUser) -> list[SdVae]:
    return models.sd_vaes()


@router.get("/loras", responses=READ_ERRORS, summary="LoRAs: yours and the public ones")
def loras(user: SdUser, services: ServicesDep) -> list[LoraEntry]:
    return models.loras(services, user)


@router.get("/progress", responses=errors(Family.SDAPI, 400, 401, 429),
            summary="Progress of your running image task")
def progress(user: SdUser, services: ServicesDep,
             skip_current_image: Annotated[bool, Query()] = False) -> Progress:
    return extras.progress(services, user, skip_current_image)


@router.post("/interrupt", responses=READ_ERRORS, summary="Stop your running image task")
def interrupt(user: SdUser, services: ServicesDep) -> dict[str, Any]:
    extras.interrupt(services, user)
    return {}


@router.post("/skip", responses=READ_ERRORS,
             summary="Stop your running image task (its images are one batch)")
def skip(user: SdUser, services: ServicesDep) -> dict[str, Any]:
    extras.interrupt(services, user)
    return {}


@router.post("/png-info", responses=POST_ERRORS,
             summary="The generation parameters an image carries")
def png_info(body: PngInfoRequest, user: SdUser, services: ServicesDep) -> PngInfo:
    return extras.png_info(services, body.image)


@router.post("/extra-single-image", response_model=ExtraSingleImage, responses=DRAW_ERRORS,
             summary="Upscale one image (an upscale task of yours)")
async def extra_single_image(request: Request, body: ExtraSingleImageRequest, user: SdUser,
                             services: ServicesDep) -> ExtraSingleImage | Response:
    return await extras.extra_single_image(request, services, user, body)


@router.post("/refresh-checkpoints", responses=READ_ERRORS,
             summary="Look at the models folder again")
def refresh_checkpoints(user: SdUser, services: ServicesDep) -> None:
    models.refresh_checkpoints(services)
