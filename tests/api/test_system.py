from __future__ import annotations

from fastapi.testclient import TestClient


def test_health_ready_docs_and_request_ids(client: TestClient) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["database"]["ready"]
    assert client.get("/docs").status_code == 200
    assert "/api/v1b/get_token" in client.get("/openapi.json").json()["paths"]
    r = client.get("/healthz", headers={"X-Request-ID": "abc123"})
    assert r.headers["x-request-id"] == "abc123"
    assert len(client.get("/healthz").headers["x-request-id"]) == 32


def test_metrics_count_requests_by_route(client: TestClient) -> None:
    client.get("/readyz")
    client.post("/api/v1b/get_token", json={})
    text = client.get("/metrics").text
    assert 'ronghe_http_requests_total{method="GET",route="/readyz",status="200"} 1.0' in text
    assert 'route="/api/v1b/get_token",status="400"' in text
    assert "ronghe_http_request_duration_seconds_bucket" in text
