"""Generation in a child process, behind the same interface as ``ImageEngine``.

Why: a denoising loop is Python-heavy (hundreds of module calls per step, and for small
models little else), and in a thread of the API process it holds the GIL most of the time,
so every poll waits for it: ``task_result`` latency went from milliseconds to ~100 ms.  In a
child process the API process stays free, and a crash or out-of-memory kill in native code
takes down the child only (the next generation starts a new one).

The child is started once through a ``forkserver`` (a clean, single-threaded parent with
torch and diffusers already imported, so starting one is fast and never forks the API
process's threads) and keeps its pipeline cache for its whole life.

Protocol (one request at a time, over a ``Pipe``), every message tagged with the request id:
parent -> child ``generate``, ``lora`` (weights the child asked for), ``stop``; child ->
parent ``step`` (after each denoising step), ``preview`` (a live preview JPEG),
``need_lora``, ``done``, ``stopped``, ``error``.
A ``stop`` is checked by the child between steps, so a cancel stops the next step.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import structlog

from ronghe import errors
from ronghe.engines.cpu import budget
from ronghe.engines.diffusion.generate import (
    GenerationRequest,
    GenerationResult,
    ImageEngine,
    StepCallback,
)
from ronghe.engines.diffusion.pipelines import LoraSource, PipelineCache
from ronghe.engines.diffusion.preview import PreviewCallback
from ronghe.engines.diffusion.registry import ModelRegistry
from ronghe.errors import RongheError
from ronghe.settings import ImageModelSpec

log = structlog.get_logger(__name__)

_PRELOAD = ["torch", "diffusers", "ronghe.engines.diffusion.generate"]
STEP_REPORT_SECONDS = 0.1


class WorkerDied(RongheError):
    status_code = 500


@dataclass(frozen=True)
class ChildConfig:
    """What the child needs to build its registry (a ``registry.ModelsConfig``) and cache."""

    image_models: list[ImageModelSpec]
    image_default_model: str
    capacity: int
    memory_budget_bytes: int | None
    device: str
    # The models folder (and LoRA folder): the child serves what the parent's scan found.
    models_path: Path | None = None
    loras_path: Path | None = None
    dtype: str = "auto"
    offload: str = "auto"
    compile: bool = False


class _Stop(Exception):
    pass


def _child_main(conn: Connection, config: ChildConfig) -> None:
    registry = ModelRegistry(config)
    cache = PipelineCache(registry, config.capacity, config.memory_budget_bytes, config.device,
                          config.dtype, config.offload, config.compile)
    engine = ImageEngine(registry, cache)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if message[0] != "generate":
            continue  # a late stop for a request that already ended
        _, rid, request, loras, threads = message
        _serve(conn, engine, rid, request, loras, threads)


def _serve(conn: Connection, engine: ImageEngine, rid: int, request: GenerationRequest,
           loras: list[tuple[str, str, float]], threads: int) -> None:
    stop = False

    def read_control(wait_for_lora: str | None = None) -> Any:
        nonlocal stop
        while wait_for_lora is not None or conn.poll():
            message = conn.recv()
            if message[1] != rid:
                continue
            if message[0] == "stop":
                stop = True
            elif message[0] == "lora" and message[2] == wait_for_lora:
                if message[3] is None:
                    raise errors.BadRequest(message[4])
                return message[3]
        return None

    last_sent = 0.0

    def on_step(done: int, total: int) -> None:
        nonlocal last_sent
        # Progress goes up at most every STEP_REPORT_SECONDS (the parent rate-limits its
        # writes anyway); a stop is still looked for after every step.
        now = time.monotonic()
        if done == total or now - last_sent >= STEP_REPORT_SECONDS:
            last_sent = now
            conn.send(("step", rid, done, total))
        read_control()
        if stop:
            raise _Stop

    def lora_loader(key: str) -> Any:
        def load() -> Any:
            from safetensors.torch import load as load_safetensors

            conn.send(("need_lora", rid, key))
            return load_safetensors(read_control(wait_for_lora=key))

        return load

    def on_preview(data: bytes, width: int, height: int) -> None:
        conn.send(("preview", rid, data, width, height))

    sources = [LoraSource(key, lname, weight, lora_loader(key)) for key, lname, weight in loras]
    try:
        result = engine.generate(dataclasses.replace(request, loras=sources), on_step,
                                 threads=threads, on_preview=on_preview)
        conn.send(("done", rid, result))
    except _Stop:
        conn.send(("stopped", rid))
    except RongheError as exc:
        conn.send(("error", rid, type(exc).__name__, exc.msg))
    except Exception as exc:  # reported to the parent, which fails the task with it
        log.exception("generation failed in the image worker process")
        conn.send(("error", rid, "", f"{type(exc).__name__}: {exc}"[:1000]))


class IsolatedEngine:
    """``engine.ImageEngineProtocol`` on one long-lived child process."""

    def __init__(self, registry: ModelRegistry, config: ChildConfig) -> None:
        self.registry = registry
        self.config = config
        self._lock = threading.Lock()
        self._process: Any = None
        self._conn: Connection | None = None
        self._rid = 0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def _ensure(self) -> Connection:
        if self._conn is not None and self._process is not None and self._process.is_alive():
            return self._conn
        self._reset()
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)
        parent, child = ctx.Pipe()
        process = ctx.Process(target=_child_main, args=(child, self.config), daemon=True,
                              name="ronghe-image-worker")
        process.start()
        child.close()
        self._process, self._conn = process, parent
        log.info("image worker process started", pid=process.pid)
        return parent

    def _reset(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._process is not None and self._process.is_alive():
            self._process.kill()
            self._process.join(timeout=5)
        self._process = self._conn = None

    def describe(self) -> dict[str, Any]:
        return {"engine": "child process", "device": self.config.device, "pid": self.pid}

    def close(self) -> None:
        with self._lock:
            self._reset()

    def generate(self, req: GenerationRequest,
                 on_step: StepCallback | None = None,
                 on_preview: PreviewCallback | None = None) -> GenerationResult:
        entry = self.registry.get(req.model)
        loras = {lora.key: lora for lora in req.loras}
        bare = dataclasses.replace(req, loras=[],
                                   preview_seconds=req.preview_seconds if on_preview else 0)
        specs = [(lora.key, lora.name, lora.weight) for lora in req.loras]
        with self._lock, budget.lease("torch") as threads:
            conn = self._ensure()
            self._rid += 1
            rid = self._rid
            stopped: BaseException | None = None
            try:
                conn.send(("generate", rid, bare, specs, threads))
                while True:
                    message = conn.recv()
                    if message[1] != rid:
                        continue
                    kind = message[0]
                    if kind == "step" and stopped is None and on_step is not None:
                        try:
                            on_step(message[2], message[3])
                        except BaseException as exc:  # cancel, shutdown, lost claim
                            stopped = exc
                            conn.send(("stop", rid))
                    elif kind == "preview" and stopped is None and on_preview is not None:
                        on_preview(message[2], message[3], message[4])
                    elif kind == "need_lora":
                        conn.send(("lora", rid, *self._lora_bytes(loras[message[2]])))
                    elif kind == "done":
                        if stopped is not None:
                            raise stopped  # a stop that crossed the last step still wins
                        return message[2]
                    elif kind == "stopped":
                        assert stopped is not None
                        raise stopped
                    elif kind == "error":
                        prefix = f"model {entry.name!r} cannot be used: "
                        if message[3].startswith(prefix):  # later submits fail fast too
                            self.registry.mark_broken(entry.name, message[3][len(prefix):])
                        raise _rebuild(message[2], message[3])
            except (EOFError, OSError, BrokenPipeError) as exc:
                self._reset()
                raise WorkerDied("the image worker process died during generation; "
                                 "it restarts with the next task") from exc

    @staticmethod
    def _lora_bytes(lora: LoraSource) -> tuple[str, bytes | None, str]:
        from safetensors.torch import save

        try:
            return lora.key, save(lora.load()), ""
        except RongheError as exc:
            return lora.key, None, exc.msg


def _rebuild(name: str, msg: str) -> RongheError:
    cls = getattr(errors, name, None)
    if isinstance(cls, type) and issubclass(cls, RongheError):
        return cls(msg)
    return RongheError(f"image generation failed: {msg}")
