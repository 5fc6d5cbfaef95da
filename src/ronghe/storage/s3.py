"""Files in an S3-compatible object store (AWS S3, MinIO, Ceph, …) through boto3.

``storage_url = s3://bucket/prefix``.  Clients get the store's own presigned GET URLs, which
expire like the app's signed URLs, so image downloads never pass through the API processes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from ronghe.settings import Settings
from ronghe.storage.base import StorageError
from ronghe.storage.local import KEY_RE


class S3Storage:
    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Storage:
        parts = urlsplit(settings.storage_url or "")
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(f"storage_url must look like s3://bucket/prefix "
                             f"(got {settings.storage_url!r})")
        secret = settings.s3_secret_access_key
        client = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=(settings.s3_access_key_id.get_secret_value()
                               if settings.s3_access_key_id else None),
            aws_secret_access_key=secret.get_secret_value() if secret else None,
            config=Config(signature_version="s3v4", retries={"max_attempts": 5,
                                                             "mode": "standard"},
                          s3={"addressing_style": "path"}),
        )
        return cls(client, parts.netloc, parts.path)

    def _key(self, key: str) -> str:
        if len(key) > 512 or not KEY_RE.match(key) or ".." in key.split("/"):
            raise StorageError(f"invalid storage key {key!r}")
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        # A single PUT is atomic in S3: readers see the old object or the new one.
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data,
                               ContentType=content_type or "application/octet-stream")

    def _object(self, key: str) -> Any:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise FileNotFoundError(key) from None
            raise

    def get(self, key: str) -> bytes:
        return self._object(key)["Body"].read()

    def iter_chunks(self, key: str, chunk_size: int = 1 << 16) -> Iterator[bytes]:
        return iter(self._object(key)["Body"].iter_chunks(chunk_size))

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return False
            raise

    def presigned_url(self, key: str, ttl_seconds: int, content_type: str) -> str | None:
        return self.client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": self._key(key),
                    "ResponseContentType": content_type},
            ExpiresIn=ttl_seconds,
        )
