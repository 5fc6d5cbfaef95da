"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from ronghe import __version__
from ronghe.api.deps import ServicesDep

router = APIRouter(tags=["system"])


@router.get("/healthz", summary="Liveness: the process is up")
async def healthz() -> dict[str, object]:
    return {"code": 0, "status": "ok", "version": __version__}


@router.get("/readyz", summary="Readiness: database reachable and every engine loaded")
def readyz(services: ServicesDep, response: Response) -> dict[str, object]:
    checks: dict[str, dict[str, object]] = {}
    try:
        with services.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = {"ready": True, "detail": services.db.engine.dialect.name}
    except Exception as exc:  # any driver error means not ready
        checks["database"] = {"ready": False, "detail": type(exc).__name__}
    for name, check in services.readiness.items():
        ready, detail = check()
        checks[name] = {"ready": ready, "detail": detail}
    ready = all(c["ready"] for c in checks.values())
    response.status_code = 200 if ready else 503
    return {"code": 0 if ready else 503, "ready": ready, "checks": checks}


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    data = generate_latest(request.app.state.metrics_registry)
    return Response(data, media_type=CONTENT_TYPE_LATEST)
