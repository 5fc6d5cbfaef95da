"""S3Storage over HTTP against a real S3-compatible server (moto's standalone server) on
loopback — no patching of boto3."""

from __future__ import annotations

from pathlib import Path

import boto3
import httpx
import pytest

from ronghe.db.migrate import upgrade
from ronghe.services import Services
from ronghe.storage.s3 import S3Storage
from tests.conftest import make_settings


@pytest.fixture
def s3_settings(tmp_path: Path, s3_endpoint: str):  # type: ignore[no-untyped-def]
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    bucket = f"ronghe-{tmp_path.name.lower().replace('_', '-')[-40:]}"
    client.create_bucket(Bucket=bucket)
    return make_settings(tmp_path, storage_url=f"s3://{bucket}/pre/fix",
                         s3_endpoint_url=s3_endpoint, s3_region="us-east-1",
                         s3_access_key_id="test", s3_secret_access_key="test")


def test_object_roundtrip(s3_settings) -> None:  # type: ignore[no-untyped-def]
    st = S3Storage.from_settings(s3_settings)
    st.put("u1/upload/a.bin", b"hello", "application/octet-stream")
    assert st.exists("u1/upload/a.bin") and st.get("u1/upload/a.bin") == b"hello"
    assert b"".join(st.iter_chunks("u1/upload/a.bin", 2)) == b"hello"
    head = st.client.head_object(Bucket=st.bucket, Key="pre/fix/u1/upload/a.bin")
    assert head["ContentLength"] == 5
    st.delete("u1/upload/a.bin")
    assert not st.exists("u1/upload/a.bin")
    with pytest.raises(FileNotFoundError):
        st.get("u1/upload/a.bin")


def test_file_service_hands_out_presigned_urls(s3_settings) -> None:  # type: ignore[no-untyped-def]
    svc = Services.build(s3_settings)
    upgrade(svc.db.engine)
    try:
        user = svc.auth.add_user("s3@x.co", "longenough")
        info = svc.files.save(user.id, b"\x89PNG fake", "image/png", "upload")
        url = svc.files.url(info, "http://unused/")
        assert url.startswith(s3_settings.s3_endpoint_url) and "Signature" in url
        r = httpx.get(url)
        assert r.status_code == 200 and r.content == b"\x89PNG fake"
        assert svc.files.resolve_url(url, user.id, "init_img").id == info.id
        # moto does not enforce expiry or signatures, so check what we ask the store for.
        assert "X-Amz-Expires=86400" in url
        assert "X-Amz-Expires=7" in svc.files.url(info, "http://unused/", ttl_seconds=7)
    finally:
        svc.close()
