"""LoRA files from ``<data_dir>/loras/`` as catalog entries of the operator (the first admin).

Each ``.safetensors`` there (kohya or diffusers format, family read from its tensor names by
the scan) becomes a ready LoRA named after the file, owned by the first admin account, with
its base *family* as ``base_model``: it applies to any image model of that family, and is
public (listed in ``/models/lora`` for every user) unless its sidecar says otherwise.  Its
weights are copied into storage at the usual key, so every worker (also on other machines,
with S3 storage) loads it like a trained one.  A file removed from the folder takes its
entry with it; a changed file replaces its weights; one whose family cannot be told is kept
as a failed entry with the reason.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from ronghe.catalog.service import LoraCatalog, LoraInfo, LoraState
from ronghe.db import Database
from ronghe.db.models import User
from ronghe.engines.diffusion.library import Found
from ronghe.errors import Conflict
from ronghe.storage.base import Storage

if TYPE_CHECKING:
    from ronghe.services import Services

SOURCE = "folder"
WEIGHTS_FILE = "pytorch_lora_weights.safetensors"


def is_folder_lora(info: LoraInfo) -> bool:
    return info.meta.get("source") == SOURCE


def operator_id(db: Database) -> int | None:
    """The account that owns the folder's LoRAs: the first active admin."""
    with db.session() as s:
        return s.scalar(select(User.id).where(User.is_admin.is_(True),
                                              User.is_active.is_(True)).order_by(User.id))


def _key(item: Found) -> str:
    digest = hashlib.sha256(f"{item.path}:{item.signature}".encode()).hexdigest()[:16]
    return f"folder/loras/{digest}"


def sync(catalog: LoraCatalog, db: Database, storage: Storage,
         items: list[Found]) -> list[dict[str, Any]]:
    """Make the catalog match the folder; returns one row per file (name, family, state)."""
    owner = operator_id(db)
    loras = [item for item in items if item.kind == "lora"]
    if owner is None:
        return [{"name": i.name, "family": i.family, "state": "waiting",
                 "problem": "no admin account yet: LoRAs are added for the first admin"}
                for i in loras]
    mine, _ = catalog.list(owner, limit=100_000, ready_only=False)
    existing = {info.meta.get("path"): info for info in mine if is_folder_lora(info)}
    rows = []
    for item in loras:
        rows.append(_sync_one(catalog, storage, owner, item, existing.pop(item.path, None)))
    for gone in existing.values():  # its file was removed
        _drop_weights(storage, gone.weights_key)
        catalog.delete(gone.id)
    return rows


def _sync_one(catalog: LoraCatalog, storage: Storage, owner: int, item: Found,
              info: LoraInfo | None) -> dict[str, Any]:
    row: dict[str, Any] = {"name": item.name, "family": item.family, "path": item.path}
    meta = {"source": SOURCE, "path": item.path, "signature": list(item.signature),
            "family": item.family, "problem": item.problem}
    if info is not None and info.meta.get("signature") == list(item.signature) \
            and info.name == item.name:
        return {**row, "id": info.id, "state": info.state, "problem": item.problem}
    if info is None:
        try:
            info = catalog.create(owner, item.name, item.family or "unknown",
                                  description=item.description or f"{item.name} (LoRA folder)",
                                  trigger_word=str(item.meta.get("trigger_word") or ""),
                                  state=LoraState.TRAINING.value)
        except Conflict:
            return {**row, "state": "skipped",
                    "problem": f"the operator already has a LoRA named {item.name!r}"}
    state, key = LoraState.READY.value, info.weights_key
    if item.problem is None:
        key = _key(item)
        try:
            with open(item.path, "rb") as fh:
                storage.put(f"{key}/{WEIGHTS_FILE}", fh.read(), "application/octet-stream")
        except OSError as exc:
            state, meta["problem"] = LoraState.FAILED.value, f"cannot be read: {exc}"
        else:
            if info.weights_key and info.weights_key != key:
                _drop_weights(storage, info.weights_key)
    else:
        state = LoraState.FAILED.value
    # The operator put it on the server for its users, as in AUTOMATIC1111 or ComfyUI:
    # listed in /models/lora and usable by everyone, unless its sidecar says "public": false.
    info = catalog.update(info.id, name=item.name, base_model=item.family or "unknown",
                          state=state, weights_key=key, meta=meta,
                          public=item.meta.get("public", True) is not False,
                          trigger_word=str(item.meta.get("trigger_word") or ""))
    return {**row, "id": info.id, "state": state, "problem": meta["problem"]}


def _drop_weights(storage: Storage, key: str) -> None:
    if key.startswith("folder/loras/"):
        with contextlib.suppress(OSError):  # already gone is fine
            storage.delete(f"{key}/{WEIGHTS_FILE}")


def scan_all(services: Services) -> dict[str, list[dict[str, Any]]]:
    """Scan the models and LoRA folders and bring every registry up to date: what
    ``ronghe models scan``, the admin endpoint and the server's start run."""
    items = services.image_models.scan()
    return summary(services, items, sync(services.loras, services.db, services.files.storage,
                                         items))


def summary(services: Services, items: list[Found],
            loras: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    registry = services.image_models
    images = []
    for item in items:
        if item.kind != "image":
            continue
        entry = registry.find(item.name)
        served = entry is not None and registry.folder_item(entry) is not None
        problem = registry.problem(entry) if entry is not None and served else (
            item.problem or "a configured model has this name; rename the file")
        images.append({"name": item.name, "family": item.family or "unknown",
                       "path": item.path, "problem": problem})
    chats = [{"name": i.name, "path": i.path, "problem": i.problem}
             for i in items if i.kind == "chat"]
    return {"image": images, "chat": chats, "lora": loras}


def sync_at_start(services: Services) -> None:
    """The LoRA folder into the catalog as a server starts; a failure is logged, never
    fatal (the folder's files are the operator's, and may be anything)."""
    import structlog

    try:
        rows = sync(services.loras, services.db, services.files.storage,
                    services.image_models.found)
    except Exception:
        structlog.get_logger(__name__).exception("LoRA folder sync failed")
        return
    for row in rows:
        if row.get("problem"):
            structlog.get_logger(__name__).warning("LoRA folder", **row)
