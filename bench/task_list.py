"""task_list speed: a page through the HTTP API against the two reads it is made of.

Seeds ``--tasks`` finished image tasks (three stored images each) for one user among
``--users`` users, in a fresh data directory (SQLite, or ``--database-url``), then times:

- **raw**: ``TaskStore.page`` + one ``FileService.get_many`` for the page (the database work);
- **api**: ``POST /api/v1b/task_list`` through the app in this process (token lookup,
  validation, the same reads, signing every URL, JSON).

for the first page and a deep one, at ``per_page`` 20 and 100; medians of ``--runs``.

    python bench/task_list.py --tasks 10000 --runs 50
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import insert

from ronghe.app import create_app
from ronghe.db import utcnow
from ronghe.db.models import StoredFile
from ronghe.jobs.models import Task
from ronghe.settings import Settings


def seed(services: Any, user_id: int, n: int) -> None:
    now = utcnow()
    files, tasks = [], []
    for i in range(n):
        created = now - timedelta(seconds=n - i)  # one task a second, the newest last
        ids = [str(uuid.uuid4()) for _ in range(3)]
        files += [{"id": f, "user_id": user_id, "key": f"u{user_id}/image/{f}.jpg",
                   "kind": "image", "content_type": "image/jpeg", "size": 1, "sha256": "0",
                   "created_at": created} for f in ids]
        tasks.append({"id": str(uuid.uuid4()), "user_id": user_id, "kind": "image",
                      "queue": "images.demo", "state": "done", "progress": 1.0,
                      "params": {"model": "ronghe-demo", "model_name": "", "prompt": f"p{i}",
                                 "seed": i, "width": 64, "height": 64, "steps": 4,
                                 "loras": [], "controls": [], "task_type": "txt2img"},
                      "result": {"images": [{"large": ids[0], "middle": ids[1],
                                             "small": ids[2], "save_index": 0}]},
                      "error_msg": "", "attempts": 1, "cancel_requested": False,
                      "created_at": created, "updated_at": created})
    with services.db.session() as s:
        s.execute(insert(StoredFile), files)
        s.execute(insert(Task), tasks)


def median_ms(fn: Any, runs: int) -> float:
    fn()  # warm
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


KINDS = {"image": ["image"], "all": None}


def measure(client: TestClient, services: Any, token: str, user_id: int, kind: str,
            per_page: int, page: int, runs: int) -> tuple[float, float]:
    kinds = KINDS[kind]

    def raw() -> None:
        tasks, _ = services.tasks.page(user_id, kinds, None, (page - 1) * per_page, per_page)
        services.files.get_many([f for t in tasks for f in t.result["images"][0].values()
                                 if isinstance(f, str)], user_id)

    def api() -> None:
        r = client.post("/api/v1b/task_list", json={
            "token": token, "page": page, "per_page": per_page, "kind": kind})
        assert r.status_code == 200 and len(r.json()["info"]["items"]) == per_page

    return median_ms(raw, runs), median_ms(api, runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=5)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), database_url=args.database_url,
                            chat_models=[], log_level="warning")
        app = create_app(settings)
        client = TestClient(app)  # no lifespan: no worker touches the seeded rows
        services = app.state.services
        users = [services.auth.add_user(f"u{i}@example.com", "bench password").id
                 for i in range(args.users)]
        for uid in users:
            seed(services, uid, args.tasks // args.users if uid != users[0] else args.tasks)
        token = services.auth.issue_token("u0@example.com").secret
        print(f"{args.tasks} tasks for the measured user, {len(users)} users, "
              f"{services.db.engine.dialect.name}")
        print("kind   per_page  page     raw ms   api ms   ratio")
        cases = [(k, n, p) for k in KINDS for n in (20, 100) for p in (1, args.tasks // n // 2)]
        for kind, per_page, page in cases:
            r_ms, a_ms = measure(client, services, token, users[0], kind, per_page,
                                 page, args.runs)
            print(f"{kind:5s}  {per_page:8d}  {page:4d}  {r_ms:8.2f} {a_ms:8.2f}  "
                  f"{a_ms / r_ms:6.2f}")
        services.close()


if __name__ == "__main__":
    main()
