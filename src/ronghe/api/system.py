"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import Field
from sqlalchemy import text

from ronghe import __version__
from ronghe.api.deps import ServicesDep
from ronghe.api.envelopes import Body

router = APIRouter(tags=["system"])


class Health(Body):
    code: int = 0
    status: Literal["ok"] = "ok"
    version: str


class Check(Body):
    ready: bool
    detail: str


class Readiness(Body):
    code: int = Field(description="0 when ready, else 503")
    ready: bool
    checks: dict[str, Check] = Field(description="database, images, chat …")


@router.get("/healthz", summary="Liveness: the process is up")
async def healthz() -> Health:
    return Health(version=__version__)


@router.get("/readyz", summary="Readiness: database reachable and every engine loaded",
            responses={503: {"model": Readiness, "description": "Not ready: see checks"}})
def readyz(services: ServicesDep, response: Response) -> Readiness:
    checks: dict[str, Check] = {}
    try:
        with services.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = Check(ready=True, detail=services.db.engine.dialect.name)
    except Exception as exc:  # any driver error means not ready
        checks["database"] = Check(ready=False, detail=type(exc).__name__)
    for name, check in services.readiness.items():
        ready, detail = check()
        checks[name] = Check(ready=ready, detail=detail)
    ready = all(c.ready for c in checks.values())
    response.status_code = 200 if ready else 503
    return Readiness(code=0 if ready else 503, ready=ready, checks=checks)


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    data = generate_latest(request.app.state.metrics_registry)
    return Response(data, media_type=CONTENT_TYPE_LATEST)
