"""Image task services: a task_submit body to the one submit path, and the result envelopes.

What a request must satisfy and how it becomes a job is ``ronghe.images.submit``'s; here a
body is translated into its ``ImageRequest`` and the task into task_result's answers.
"""

from __future__ import annotations

from typing import Any

from ronghe.api.envelopes import MiaohuaOk, miaohua_ok
from ronghe.api.images.protocol import TaskSubmitRequest
from ronghe.api.images.result_protocol import (
    BatchTask,
    MissingTask,
    SubmittedInfo,
    TaskCancelled,
    TaskResult,
    TaskResults,
    TaskSubmitted,
)
from ronghe.db.models import User
from ronghe.images import submit as images
from ronghe.jobs import Status, TaskView
from ronghe.jobs.previews import preview_url
from ronghe.services import Services
from ronghe.storage.files import FileInfo


def submit(services: Services, user: User, body: TaskSubmitRequest) -> TaskSubmitted:
    task = images.submit(services, user, body.to_request())
    return TaskSubmitted(task_id=task.id, info=SubmittedInfo(task_id=task.id))


# --- results: the poll path, so one batched file lookup per request and models built by
# pydantic's core straight from plain values


def file_ids(task: TaskView) -> list[str]:
    if task.state is not Status.DONE or not task.result:
        return []
    return [item[v] for item in task.result.get("images", [])
            for v in ("large", "middle", "small")]


def image_urls(services: Services, task: TaskView, base_url: str,
               files: dict[str, FileInfo] | None = None) -> list[dict[str, Any]]:
    if task.state is not Status.DONE or not task.result:
        return []
    if files is None:
        files = services.files.get_many(file_ids(task), task.user_id)
    out = []
    for item in task.result.get("images", []):
        entry: dict[str, Any] = {}
        for variant in ("large", "middle", "small"):
            info = files.get(item[variant])
            # An image the user deleted since has no URL any more.
            entry[variant] = services.files.url(info, base_url) if info else ""
        entry.update(save_index=item["save_index"], seed=item.get("seed"),
                     width=item.get("width"), height=item.get("height"))
        out.append(entry)
    return out


def result_fields(services: Services, task: TaskView, base_url: str,
                  live: bool = True) -> dict[str, Any]:
    """``live=False`` leaves out wait_time and preview, which task_list's items do not carry:
    wait_time is a count of the tasks ahead, one read per pending task of a page."""
    result = task.result or {}
    fields = {
        "task_id": task.id, "state": task.state,
        "error_msg": task.error_msg if task.state is not Status.DONE else "",
        "progress": round(task.progress, 4),
        "seed": result.get("seed", task.params.get("seed")),
        "prompt": result.get("prompt", task.params.get("prompt")),
        # add_prompt: false when the chat model added nothing (the prompt was used as sent).
        "prompt_added": bool(result.get("prompt_added", False)),
        # A1111's names: the sampler and schedule type that ran (the model's own when none
        # was named); before the task has run, what was asked ("" = the model's own).
        "sampler_name": result.get("sampler_name", task.params.get("sampler_name", "")),
        "scheduler": result.get("scheduler", task.params.get("scheduler", "")),
        "task_type": task.params.get("task_type", ""),
        # The vendor's later names: select_seed for seed; wait_time = tasks ahead.
        "select_seed": result.get("seed", task.params.get("seed")),
    }
    if live:
        fields["wait_time"] = services.tasks.wait_time(task)
        fields["preview"] = preview_url(services, task, base_url)
    return fields


def task_result(services: Services, task: TaskView, base_url: str) -> TaskResult:
    """task_result's answer: ``{state, images, error_msg, progress}`` plus what was used,
    and the vendor's later fields again under ``info``."""
    images = image_urls(services, task, base_url)
    fields = result_fields(services, task, base_url)
    info = {k: fields[k] for k in ("task_id", "state", "error_msg", "progress", "select_seed")}
    return TaskResult(images=images, info={**info, "images": images}, **fields)


def task_answer(services: Services, task: TaskView, base_url: str) -> dict[str, Any]:
    """task_result's answer as JSON data, for task_events and webhooks (flat: the
    envelope's copy under ``info`` would only double the payload)."""
    return task_result(services, task, base_url).model_dump(
        mode="json", exclude={"code", "msg", "info"})


def task_results(services: Services, user: User, task_ids: list[str],
                 base_url: str) -> TaskResults:
    found = services.tasks.get_many(task_ids, user.id)
    files = services.files.get_many([f for t in found.values() for f in file_ids(t)],
                                    user.id)
    info: list[BatchTask | MissingTask] = []
    for task_id in task_ids:
        task = found.get(task_id)
        if task is None:
            info.append(MissingTask(task_id=task_id))
            continue
        fields = result_fields(services, task, base_url)
        # Each image says which task it belongs to: clients flatten the batch's images.
        images = [{**image, "task_id": task.id, "task_type": fields["task_type"]}
                  for image in image_urls(services, task, base_url, files)]
        info.append(BatchTask(images=images, **fields))
    return TaskResults(info=info)


def cancel(services: Services, user: User, task_id: str) -> MiaohuaOk[TaskCancelled]:
    task = services.tasks.request_cancel(task_id, user.id)
    return miaohua_ok(TaskCancelled(task_id=task.id, state=task.state,
                                    cancel_requested=task.cancel_requested))
