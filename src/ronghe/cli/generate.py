"""``ronghe generate`` / ``tasks`` / ``result`` / ``cancel``: image tasks on the server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ronghe.cli import err, fail, out
from ronghe.cli.session import INTERRUPTED, Json, api_errors, client, note, print_json
from ronghe.client import Client, GeneratedImage, NotFoundError, TaskResult, TrainProgress

PANEL = "Using a server"


def progress_bar() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                    TextColumn("{task.fields[state]}"), TimeElapsedColumn(), console=err)


def parse_lora(text: str) -> dict[str, Any]:
    """``NAME`` or ``NAME:WEIGHT`` (a name, or a model id) as a ``lora_configs`` unit."""
    name, _, weight = text.rpartition(":")
    try:
        merge_weight = float(weight) if name else 1.0
    except ValueError:
        name, merge_weight = text, 1.0
    name = name or text
    if not name:
        raise typer.BadParameter(f"--lora must be NAME or NAME:WEIGHT (got {text!r})")
    return {"versionid": int(name) if name.isdigit() else name, "merge_weight": merge_weight}


def save_images(images: list[GeneratedImage], out_dir: Path) -> list[Path]:
    """``<task>_<index>.jpg`` (.png, .webp) in ``out_dir``: the server's files, parameters
    inside."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return [image.save(out_dir) for image in images]


def image_rows(images: list[GeneratedImage], paths: list[Path] | None) -> list[dict[str, Any]]:
    return [{"path": str(paths[i]) if paths else None, "url": im.url, "seed": im.seed,
             "width": im.width, "height": im.height, "index": im.index}
            for i, im in enumerate(images)]


def generate(
    prompt: Annotated[str, typer.Argument(help="What to draw.")],
    n: Annotated[int, typer.Option("-n", help="Images in the task (1-8).")] = 1,
    seed: Annotated[int | None, typer.Option(help="Seed of the first image (image i uses "
                                             "seed + i); random if absent.",
                                             show_default=False)] = None,
    size: Annotated[str | None, typer.Option(help="WxH, e.g. 512x512 (the server's "
                                             "default otherwise).", show_default=False)] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="A model name or alias, "
                                              "or your trained model's name.",
                                              show_default=False)] = None,
    init: Annotated[str | None, typer.Option("--init", help="img2img input: a local image "
                                             "(uploaded first) or an upload's URL.",
                                             show_default=False)] = None,
    strength: Annotated[float | None, typer.Option(help="img2img: 0 keeps the input, 1 "
                                                   "ignores it.", show_default=False)] = None,
    lora: Annotated[list[str] | None, typer.Option(help="NAME[:WEIGHT], repeatable: a LoRA "
                                                   "to apply (name or model id).",
                                                   show_default=False)] = None,
    steps: Annotated[int | None, typer.Option(help="Denoising steps (ddim_steps).",
                                              show_default=False)] = None,
    negative: Annotated[str | None, typer.Option("--negative", help="What not to draw.",
                                                 show_default=False)] = None,
    sampler: Annotated[str | None, typer.Option(help="A sampler by A1111's name (Euler a, "
                                                "DPM++ 2M …; 'ronghe catalog' models list "
                                                "theirs); the model's own if absent.",
                                                show_default=False)] = None,
    scheduler: Annotated[str | None, typer.Option(help="With --sampler: Automatic, Karras, "
                                                  "Exponential or SGM Uniform.",
                                                  show_default=False)] = None,
    mask: Annotated[str | None, typer.Option(help="Inpainting: a mask over --init (white "
                                             "repaints, black keeps), a local image or an "
                                             "upload's URL.", show_default=False)] = None,
    mask_blur: Annotated[int | None, typer.Option(help="Feather the mask's edge by this "
                                                  "many pixels (0-64; 4).",
                                                  show_default=False)] = None,
    invert_mask: Annotated[bool, typer.Option("--invert-mask", help="Repaint the black "
                                              "area instead.")] = False,
    only_masked: Annotated[bool, typer.Option("--only-masked", help="Paint only the mask's "
                                              "box at --size, then paste it back into the "
                                              "full-size image.")] = False,
    padding: Annotated[int | None, typer.Option(help="--only-masked: pixels around the "
                                                "mask's box (0-256; 32).",
                                                show_default=False)] = None,
    fill: Annotated[str | None, typer.Option(help="What the masked area starts from: "
                                             "original (default), fill (the colours "
                                             "around it), 'latent noise' or 'latent "
                                             "nothing' (Stable Diffusion models).",
                                             show_default=False)] = None,
    output_format: Annotated[str | None, typer.Option("--format", help="jpeg (default), "
                                                      "png (lossless) or webp.",
                                                      show_default=False)] = None,
    hires: Annotated[float | None, typer.Option(help="Hires fix: upscale by this (1-4), then "
                                                "paint over with a second pass.",
                                                show_default=False)] = None,
    hr_upscaler: Annotated[str | None, typer.Option(help="--hires: Latent (default; and its "
                                                    "variants), Lanczos, Nearest or an "
                                                    "upscaler model ('ronghe upscalers').",
                                                    show_default=False)] = None,
    hr_steps: Annotated[int | None, typer.Option(help="--hires: steps of the second pass "
                                                 "(0-150; 0 = --steps).",
                                                 show_default=False)] = None,
    hr_denoise: Annotated[float | None, typer.Option(help="--hires: how much the second "
                                                     "pass changes (0-1; 0.7).",
                                                     show_default=False)] = None,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Where to write the images.",
                                          file_okay=False)] = Path("."),
    as_json: Json = False,
) -> None:
    """Generate images; writes <task>_<index>.jpg (.png, .webp) files and prints their paths.

    A progress bar follows the task; Ctrl-C cancels it.  The images carry their generation
    parameters (AUTOMATIC1111's text, which 'ronghe png-info' reads back, and Ronghe's
    JSON)."""
    fields: dict[str, Any] = {"n_images": n}
    for key, value in (("select_seed", seed), ("output_size", size), ("model_name", model),
                       ("init_img", init), ("strength", strength), ("ddim_steps", steps),
                       ("neg_prompt", negative), ("mask_img", mask), ("mask_blur", mask_blur),
                       ("inpaint_full_res_padding", padding), ("inpainting_fill", fill),
                       ("output_format", output_format), ("sampler_name", sampler),
                       ("scheduler", scheduler)):
        if value is not None:
            fields[key] = value
    if hires is not None:
        fields.update(enable_hr=True, hr_scale=hires)
    elif any(v is not None for v in (hr_upscaler, hr_steps, hr_denoise)):
        fail("--hr-upscaler, --hr-steps and --hr-denoise need --hires SCALE")
    for key, value in (("hr_upscaler", hr_upscaler), ("hr_second_pass_steps", hr_steps),
                       ("hr_denoising_strength", hr_denoise)):
        if value is not None:
            fields[key] = value
    if invert_mask:
        fields["inpainting_mask_invert"] = True
    if only_masked:
        fields["inpaint_full_res"] = True
    if mask and not mask.startswith(("http://", "https://")) and not Path(mask).is_file():
        fail(f"--mask: no such file {mask!r}")
    if lora:
        fields["lora_configs"] = [parse_lora(x) for x in lora]
    if init and not init.startswith(("http://", "https://")) and not Path(init).is_file():
        fail(f"--init: no such file {init!r}")
    with client() as c, api_errors():
        task_id = c.submit(prompt, **fields)
        final = follow(c, task_id)
        if final.state != "done":
            fail(f"task {task_id} {final.state}: {final.error_msg or final.state}")
        images = c.images(final)
        paths = save_images(images, out_dir)
    if as_json:
        print_json({"task_id": task_id, "seed": final.seed, "prompt": final.prompt,
                    "sampler_name": final.sampler_name, "scheduler": final.scheduler,
                    "images": image_rows(images, paths)})
        return
    for path in paths:
        print(path)


def follow(c: Client, task_id: str) -> TaskResult:
    """Waits with a progress bar; Ctrl-C cancels the task and exits 130."""
    try:
        with progress_bar() as bar:
            row = bar.add_task(f"task {task_id[:8]}", total=1.0, state="pending")
            return c.wait(task_id, on_progress=lambda r: bar.update(
                row, completed=r.progress, state=r.state))
    except KeyboardInterrupt:
        with api_errors():
            state = c.cancel(task_id)
        note(f"cancelled task {task_id} (state {state.state})")
        raise typer.Exit(INTERRUPTED) from None


def tasks(
    state: Annotated[str | None, typer.Option(help="Only tasks in this state: pending, "
                                              "running, done, failed, cancelled.",
                                              show_default=False)] = None,
    kind: Annotated[str, typer.Option(help="image, train or all.")] = "all",
    page: Annotated[int, typer.Option(help="Page (newest first).")] = 1,
    per_page: Annotated[int, typer.Option(help="Tasks a page (1-100).")] = 20,
    as_json: Json = False,
) -> None:
    """List your tasks: id, kind, state, progress, prompt (or model), created."""
    with client() as c, api_errors():
        listing = c.tasks(page=page, per_page=per_page, state=state, kind=kind)
    if as_json:
        print_json(listing)
        return
    table = Table(title=f"tasks, page {listing.page} ({listing.total} in all)")
    table.add_column("id", no_wrap=True, min_width=36)  # whole: it is what result/cancel take
    for column in ("kind", "state", "progress", "prompt / model", "created (UTC)"):
        table.add_column(column)
    for item in listing.items:
        what = item.prompt if item.kind == "image" else item.model_name
        table.add_row(item.task_id, item.kind, item.state, f"{item.progress:.0%}",
                      (what or "")[:60], item.create_time or "")
    out.print(table)
    if listing.has_next:
        note(f"more: ronghe tasks --page {listing.page + 1}")


def _training(c: Client, task: TaskResult) -> TrainProgress | None:
    """The training view of a task: task_result has no task_type for training tasks."""
    if task.task_type:
        return None
    try:
        return c.train_progress(task.task_id)
    except NotFoundError:
        return None


def result(
    task_id: Annotated[str, typer.Argument(help="A task id (image or training).")],
    out_dir: Annotated[Path | None, typer.Option("--out", "-o", file_okay=False,
                                                 help="Download the images here.",
                                                 show_default=False)] = None,
    as_json: Json = False,
) -> None:
    """State and results of one task; --out downloads its images."""
    with client() as c, api_errors():
        task = c.result(task_id)
        training = _training(c, task)
        images = c.images(task)
        paths = save_images(images, out_dir) if out_dir is not None and images else None
    if as_json:
        print_json(training if training is not None else
                   {**task.model_dump(mode="json"), "saved": [str(p) for p in paths or []]})
        return
    if training is not None:
        loss = f"{training.loss:.4f}" if training.loss is not None else "-"
        out.print(f"training {task_id}: {training.state} ({training.phase}), step "
                  f"{training.step}/{training.total_steps}, loss {loss}, model "
                  f"{training.model_name!r}", highlight=False)
    else:
        out.print(f"task {task_id}: {task.state} {task.progress:.0%} {task.task_type} "
                  f"seed {task.seed} prompt {task.prompt!r}", highlight=False)
    if task.error_msg:
        out.print(f"error: {task.error_msg}", highlight=False)
    for i, image in enumerate(images):
        print(paths[i] if paths else image.url)


def cancel(task_id: Annotated[str, typer.Argument(help="A task id (image or training).")],
           as_json: Json = False) -> None:
    """Cancel a pending or running task (image or training)."""
    with client() as c, api_errors():
        try:
            answer = c.train_cancel(task_id)
        except NotFoundError:  # not a training task (or no task at all: task_cancel says)
            answer = c.cancel(task_id)
    if as_json:
        print_json(answer)
    else:
        note(f"task {task_id}: {answer.state}" + (" (stopping)" if answer.state == "running"
                                                  else ""))


def catalog(
    kind: Annotated[str, typer.Option(help="base (image models), lora (published LoRAs), "
                                      "private (yours) or all.")] = "all",
    query: Annotated[str, typer.Option(help="Only names/descriptions containing this.")] = "",
    as_json: Json = False,
) -> None:
    """The models the server offers you: base models, published LoRAs and your own.

    (The admin command 'ronghe models' lists what this machine's configuration serves.)"""
    kinds = ("base", "lora", "private") if kind == "all" else (kind,)
    if not set(kinds) <= {"base", "lora", "private"}:
        fail(f"--kind must be base, lora, private or all (got {kind!r})")
    with client() as c, api_errors():
        pages = {k: c.models(k, per_page=100, query=query) for k in kinds}
    if as_json:
        print_json({k: page.model_dump(mode="json")["models"] for k, page in pages.items()})
        return
    table = Table("kind", "name (--model)", "id (--lora)", "base model", "description",
                  title="models")
    for k, page in pages.items():
        for m in page.models:
            table.add_row(k, m.model_name, str(m.versionid), m.base_model or "-",
                          (m.description or "")[:50])
    out.print(table)


def png_info(
    image: Annotated[str, typer.Argument(help="A local image (uploaded first) or an "
                                         "image's URL on the server.")],
    as_json: Json = False,
) -> None:
    """Read the generation settings an image carries (Ronghe's, AUTOMATIC1111's, Civitai's).

    Prints the settings as task_submit fields; --json adds A1111's text and parsed labels."""
    if not image.startswith(("http://", "https://")) and not Path(image).is_file():
        fail(f"no such file {image!r}")
    with client() as c, api_errors():
        found = c.png_info(image if image.startswith(("http://", "https://")) else Path(image))
    if as_json:
        print_json(found)
        return
    if not found.text:
        note("the image carries no generation parameters")
        return
    table = Table("field", "value", title="generation settings")
    for key, value in found.settings.items():
        table.add_row(key, str(value))
    out.print(table)


def upscale(
    image: Annotated[str, typer.Argument(help="A local image (uploaded first) or an image's "
                                         "URL on the server (an upload, a generated image).")],
    upscaler: Annotated[str, typer.Option("--upscaler", "-u", help="Lanczos, Nearest or an "
                                          "upscaler model ('ronghe upscalers').")] = "Lanczos",
    scale: Annotated[float, typer.Option(help="How much larger (1-4).")] = 2.0,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Where to write the image.",
                                          file_okay=False)] = Path("."),
    as_json: Json = False,
) -> None:
    """Upscale an image on the server (a task); writes <task>_0.jpg and prints its path."""
    remote = image.startswith(("http://", "https://"))
    if not remote and not Path(image).is_file():
        fail(f"no such file {image!r}")
    with client() as c, api_errors():
        task_id = c.upscale_submit(image if remote else Path(image), upscaler=upscaler,
                                   scale=scale)
        final = follow(c, task_id)
        if final.state != "done":
            fail(f"upscale {task_id} {final.state}: {final.error_msg or final.state}")
        images = c.images(final)
        paths = save_images(images, out_dir)
    if as_json:
        print_json({"task_id": task_id, "upscaler": upscaler, "scale": scale,
                    "images": image_rows(images, paths)})
        return
    for path in paths:
        print(path)


def list_upscalers(as_json: Json = False) -> None:
    """The upscalers the server offers: --hr-upscaler's and 'ronghe upscale' choices."""
    with client() as c, api_errors():
        rows = c.upscalers()
    if as_json:
        print_json(rows)
        return
    table = Table("name", "kind", "model", "problem", title="upscalers")
    for row in rows:
        model = f"{row.get('architecture')} {row.get('scale')}x" if row["kind"] == "model" else ""
        table.add_row(row["name"], row["kind"], model, row.get("problem") or "")
    out.print(table)


def register(app: typer.Typer) -> None:
    for name, fn in (("generate", generate), ("tasks", tasks), ("result", result),
                     ("cancel", cancel), ("catalog", catalog), ("png-info", png_info),
                     ("upscale", upscale), ("upscalers", list_upscalers)):
        app.command(name, rich_help_panel=PANEL)(fn)
