"""Signed file URLs: served when valid, 403 when tampered or expired, owner-only re-signing."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from ronghe.errors import BadRequest, NotFound
from ronghe.services import Services
from tests.conftest import Account

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0000003010100c9fe92ef0000000049454e44ae426082"
)


def relative(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def test_signed_url_serves_the_file_and_refuses_tampering(client: TestClient,
                                                         account: Account) -> None:
    svc: Services = client.app.state.services  # type: ignore[attr-defined]
    info = svc.files.save(account.user_id, PNG, "image/png", "upload", 1, 1)
    url = svc.files.url(info, "http://testserver/")
    assert url.startswith("http://testserver/files/") and "Signature=" in url
    r = client.get(relative(url))
    assert r.status_code == 200 and r.content == PNG
    assert r.headers["content-type"] == "image/png"

    q = parse_qs(urlsplit(url).query)
    sig, exp = q["Signature"][0], int(q["Expires"][0])
    forged_sig = ("A" if sig[0] != "A" else "B") + sig[1:]
    for bad in (f"/files/{info.id}?Expires={exp}&Signature={forged_sig}",
                f"/files/{info.id}?Expires={exp + 3600}&Signature={sig}"):
        r = client.get(bad)
        assert r.status_code == 403 and "bad signature" in r.json()["msg"]
    other = svc.files.save(account.user_id, PNG, "image/png", "upload")
    r = client.get(f"/files/{other.id}?Expires={exp}&Signature={sig}")
    assert r.status_code == 403


def test_expired_url_is_refused(client: TestClient, account: Account) -> None:
    svc: Services = client.app.state.services  # type: ignore[attr-defined]
    info = svc.files.save(account.user_id, PNG, "image/png", "upload")
    expires, sig = svc.files.signer.sign(info.id, -5)
    assert expires < time.time()
    r = client.get(f"/files/{info.id}?Expires={expires}&Signature={sig}")
    assert r.status_code == 403 and "expired" in r.json()["msg"]


def test_only_the_owner_can_list_or_resign(client: TestClient, account: Account,
                                           other_account: Account) -> None:
    svc: Services = client.app.state.services  # type: ignore[attr-defined]
    info = svc.files.save(account.user_id, PNG, "image/png", "upload")
    url = svc.files.url(info, "http://testserver/")

    mine = client.post("/api/v1b/files", json={"token": account.token}).json()["info"]
    assert [i["file_id"] for i in mine["items"]] == [info.id]
    theirs = client.post("/api/v1b/files", json={"token": other_account.token}).json()["info"]
    assert theirs["items"] == [] and theirs["total"] == 0

    fresh = client.post("/api/v1b/file_url", json={"token": account.token, "url": url})
    assert fresh.json()["code"] == 0
    assert client.get(relative(fresh.json()["info"]["url"])).content == PNG
    for body in ({"url": url}, {"file_id": info.id}):
        r = client.post("/api/v1b/file_url", json={"token": other_account.token, **body})
        assert r.status_code in (400, 404) and r.json()["code"] in (400, 404)

    with pytest.raises(BadRequest):
        svc.files.resolve_url(url, other_account.user_id, "init_img")
    with pytest.raises(BadRequest, match="init_img"):
        svc.files.resolve_url("http://169.254.169.254/latest/meta-data", account.user_id,
                              "init_img")
    assert svc.files.resolve_url(url, account.user_id, "init_img").id == info.id
    with pytest.raises(NotFound):
        svc.files.get(info.id, other_account.user_id)


def test_public_base_url_is_used_for_links(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import make_settings

    svc = Services.build(make_settings(tmp_path, public_base_url="https://img.example.com/r/"))
    from ronghe.db.migrate import upgrade

    upgrade(svc.db.engine)
    user = svc.auth.add_user("a@b.co", "longenough")
    info = svc.files.save(user.id, PNG, "image/png", "upload")
    assert svc.files.url(info, "http://ignored/").startswith(
        f"https://img.example.com/r/files/{info.id}?Expires=")
    svc.close()


def test_a_file_rewritten_in_place_is_served_whole(client: TestClient, account: Account) -> None:
    # A live preview is rewritten every second: bytes first, then its row.  A request that
    # read the row before the rewrite must still get a body its Content-Length matches.
    svc: Services = client.app.state.services  # type: ignore[attr-defined]
    info = svc.files.save(account.user_id, PNG, "image/png", "preview", 1, 1)
    newer = PNG + b"\0" * 100
    svc.files.storage.put(info.key, newer, "image/png")  # the row still says len(PNG)
    r = client.get(relative(svc.files.url(info, "http://testserver/")))
    assert r.status_code == 200 and r.content == newer
    assert r.headers["content-length"] == str(len(newer))


def test_a_rewrite_counts_as_new_for_sweeps(client: TestClient, account: Account) -> None:
    from ronghe.db.base import utcnow

    svc: Services = client.app.state.services  # type: ignore[attr-defined]
    first = svc.files.save(account.user_id, PNG, "image/png", "preview", 1, 1)
    between = utcnow()
    time.sleep(0.01)
    assert [f.id for f in svc.files.written_before("preview", utcnow())] == [first.id]
    svc.files.save(account.user_id, PNG, "image/png", "preview", 1, 1, file_id=first.id)
    assert svc.files.written_before("preview", between) == []
    assert [f.id for f in svc.files.written_before("preview", utcnow())] == [first.id]
