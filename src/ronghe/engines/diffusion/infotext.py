"""AUTOMATIC1111's generation "parameters" text (its *infotext*), written and read back.

Every image Ronghe saves carries it (``output.py``: a PNG ``parameters`` text chunk, EXIF
``UserComment`` in JPEG and WebP), so A1111's PNG Info tab, Civitai and every prompt reader
show how it was made; ``png_info`` reads it back from anyone's image.  The shape, as A1111's
``modules/processing.py`` (``create_infotext``) writes it::

    a photo of a cat <lora:stars:0.8>
    Negative prompt: blurry, lowres
    Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 42, Size: 512x768,
    Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Denoising strength: 0.5, ...

(the last line is one line).  A value holding ``,``, ``:`` or a newline is written as a JSON
string, as A1111's ``infotext_utils.quote`` does; LoRAs are ``<lora:name:weight>`` tags at
the end of the prompt, where A1111 users write them.

One table, ``FIELDS``, says which key of Ronghe's image metadata becomes which label, in
A1111's order, and which ``task_submit`` field the label fills when read back.  A control
that records itself (a sampler, hires fix …) adds its row there: the writer, the reader and
``png_info`` follow it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

# A1111's "Masked content" names, by inpainting_fill index.
FILLS = ("fill", "original", "latent noise", "latent nothing")
# One "Label: value" of the last line: the label starts with a word character; a quoted
# value may hold commas and escaped quotes (A1111's re_param_code).
PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
IMAGE_SIZE = re.compile(r"^(\d+)x(\d+)$")
LORA_TAG = re.compile(r"<lora:([^:>]+)(?::([-+]?\d*\.?\d+))?(?::[^>]*)?>", re.IGNORECASE)
# The last line holds the parameters only if it has at least this many of them (A1111).
MIN_PARAMS = 3


def _number(value: Any) -> Any:
    """7.0 -> 7, 0.75 -> 0.75: numbers as A1111's UI shows them."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _int(text: str) -> int:
    return int(float(text))


def _flag_only_masked(text: str) -> bool:
    return text.strip().lower() == "only masked"


def _fill_index(text: str) -> int:
    return FILLS.index(text.strip().lower())


def _masked_content(meta: dict[str, Any]) -> str | None:
    fill = meta.get("inpainting_fill")
    # "original" is A1111's default and left out, as A1111 does.
    return FILLS[fill] if isinstance(fill, int) and fill != 1 and 0 <= fill < 4 else None


def _size(meta: dict[str, Any]) -> str | None:
    if meta.get("width") is None or meta.get("height") is None:
        return None
    return f"{meta['width']}x{meta['height']}"


def _denoising(meta: dict[str, Any]) -> Any:
    # img2img's strength, or hires fix's second pass (A1111 writes either under this label).
    if meta.get("strength") is not None:
        return meta["strength"]
    return meta.get("hr_denoising_strength") if meta.get("enable_hr") else None


def lora_hash(data: bytes) -> str:
    """A1111's hash of a LoRA (``Lora hashes``; Civitai's AutoV3): the SHA-256 of a
    safetensors file's tensor data (what follows its JSON header), first 12 hex digits, so
    metadata edits leave it alone."""
    header = int.from_bytes(data[:8], "little")
    return hashlib.sha256(memoryview(data)[8 + header:]).hexdigest()[:12]


def _lora_hashes(meta: dict[str, Any]) -> str | None:
    pairs = [f"{x.get('name')}: {x['hash']}" for x in meta.get("loras") or [] if x.get("hash")]
    return ", ".join(pairs) or None


@dataclass(frozen=True)
class Field:
    """One "Label: value" of the parameters line.

    ``key``: Ronghe's metadata key it is written from (``value`` computes it instead);
    ``setting``: the ``task_submit`` field it fills when read back, ``parse`` turning the
    text into that field's value (a ValueError leaves the field out)."""

    label: str
    key: str = ""
    setting: str = ""
    parse: Callable[[str], Any] = str
    value: Callable[[dict[str, Any]], Any] | None = None

    def written(self, meta: dict[str, Any]) -> Any:
        return self.value(meta) if self.value is not None else meta.get(self.key)


FIELDS: list[Field] = [
    Field("Steps", "steps", "ddim_steps", _int),
    Field("Sampler", "sampler_name", "sampler_name"),
    Field("Schedule type", "scheduler", "scheduler"),
    Field("CFG scale", "scale", "scale", float),
    Field("Seed", "seed", "select_seed", _int),
    Field("Size", setting="output_size", value=_size),
    Field("Model hash", "model_hash"),
    Field("Model", "model", "model_name"),
    # Civitai links the LoRAs of the <lora:name:weight> tags by these (written, not read).
    Field("Lora hashes", value=_lora_hashes),
    # Read back as strength, or hr_denoising_strength with hires fix (``settings``).
    Field("Denoising strength", setting="strength", parse=float, value=_denoising),
    # No task_submit field yet: written when a control records it, not read back.
    Field("Clip skip", "clip_skip"),
    # Left out at 0, as A1111 does (so reading it back gives the default, 4).
    Field("Mask blur", "mask_blur", "mask_blur", _int,
          value=lambda m: m.get("mask_blur") or None),
    Field("Mask mode", setting="inpainting_mask_invert",
          parse=lambda t: t.strip().lower() == "inpaint not masked",
          value=lambda m: "Inpaint not masked" if m.get("inpainting_mask_invert") else None),
    Field("Inpaint area", setting="inpaint_full_res", parse=_flag_only_masked,
          value=lambda m: "Only masked" if m.get("inpaint_full_res") else None),
    Field("Masked area padding", setting="inpaint_full_res_padding", parse=_int,
          value=lambda m: m.get("inpaint_full_res_padding") if m.get("inpaint_full_res")
          else None),
    Field("Masked content", setting="inpainting_fill", parse=_fill_index,
          value=_masked_content),
    # Hires fix (A1111's txt2img extras); "Hires upscale" read back also sets enable_hr.
    Field("Hires upscale", "hr_scale", "hr_scale", float,
          value=lambda m: m.get("hr_scale") if m.get("enable_hr") else None),
    Field("Hires steps", "hr_second_pass_steps", "hr_second_pass_steps", _int,
          value=lambda m: (m.get("hr_second_pass_steps") or None) if m.get("enable_hr")
          else None),
    Field("Hires upscaler", "hr_upscaler", "hr_upscaler",
          value=lambda m: m.get("hr_upscaler") if m.get("enable_hr") else None),
    # Ronghe's own: the size a model trained small rendered at before it was resized.
    Field("Rendered at", "render_size"),
]


def short_hash(path: Path) -> str:
    """A1111's "Model hash" of a checkpoint file: the first 10 hex digits of its SHA-256
    (what Civitai calls AutoV2).  Read once per file version and process (a few seconds
    for a multi-GB checkpoint), then remembered."""
    stat = path.stat()
    return _sha256_head(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=64)
def _sha256_head(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:10]


def quote(value: Any) -> str:
    text = str(_number(value))
    if "," not in text and ":" not in text and "\n" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def unquote(text: str) -> str:
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, str) else text


def lora_tags(loras: list[dict[str, Any]]) -> str:
    return " ".join(f"<lora:{x.get('name')}:{_number(x.get('weight', 1.0))}>" for x in loras)


def format_parameters(meta: dict[str, Any], extra: dict[str, Any] | None = None) -> str:
    """The infotext of one image from its metadata (``tasks.images`` builds it); ``extra``
    labels go after the table's, as A1111's extensions' do."""
    pairs: list[tuple[str, Any]] = [(f.label, f.written(meta)) for f in FIELDS]
    for i, unit in enumerate(meta.get("controlnets") or []):
        # sd-webui-controlnet's shape: one quoted group per unit.
        parts = (("Module", unit.get("processor")), ("Model", unit.get("cn")),
                 ("Weight", unit.get("weight")), ("Guidance Start", unit.get("start")),
                 ("Guidance End", unit.get("end")))
        pairs.append((f"ControlNet {i}", ", ".join(f"{k}: {_number(v)}" for k, v in parts
                                                   if v is not None)))
    pairs += list((extra or {}).items())
    line = ", ".join(f"{label}: {quote(value)}" for label, value in pairs
                     if value is not None and value != "")
    prompt = str(meta.get("prompt") or "")
    tags = lora_tags(meta.get("loras") or [])
    if tags:
        prompt = f"{prompt} {tags}" if prompt else tags
    negative = meta.get("negative_prompt") or ""
    negative_line = f"\nNegative prompt: {negative}" if negative else ""
    return f"{prompt}{negative_line}\n{line}".strip()


def parse_parameters(text: str) -> dict[str, str]:
    """A1111's ``parse_generation_parameters``, without the UI's defaults: ``Prompt``,
    ``Negative prompt`` and every label of the last line, values unquoted, a ``WxH`` value
    also as ``<label>-1`` / ``<label>-2`` (A1111's ``Size-1``, ``Size-2``)."""
    *lines, last = text.strip().replace("\r\n", "\n").split("\n")
    if len(PARAM.findall(last)) < MIN_PARAMS:
        lines.append(last)
        last = ""
    prompt: list[str] = []
    negative: list[str] = []
    in_negative = False
    for raw in lines:
        line = raw.strip()
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[len("Negative prompt:"):].strip()
        (negative if in_negative else prompt).append(line)
    out: dict[str, str] = {"Prompt": "\n".join(prompt), "Negative prompt": "\n".join(negative)}
    for label, raw_value in PARAM.findall(last):
        value = unquote(raw_value.strip())
        size = IMAGE_SIZE.match(value)
        if size is not None:
            out[f"{label}-1"], out[f"{label}-2"] = size[1], size[2]
        out[label] = value
    return out


def split_loras(prompt: str) -> tuple[str, list[dict[str, Any]]]:
    """``<lora:name:weight>`` tags out of a prompt: (the prompt without them, lora_configs)."""
    loras = [{"versionid": int(name) if name.strip().isdigit() else name.strip(),
              "merge_weight": float(weight) if weight else 1.0}
             for name, weight in LORA_TAG.findall(prompt)]
    cleaned = re.sub(r"[ \t]{2,}", " ", LORA_TAG.sub("", prompt)).strip().rstrip(",").strip()
    return cleaned, loras


def settings(parameters: dict[str, str]) -> dict[str, Any]:
    """Parsed parameters as ``task_submit`` fields (what the web form fills in): only the
    labels Ronghe has a field for, each only if its value reads."""
    prompt, loras = split_loras(parameters.get("Prompt", ""))
    out: dict[str, Any] = {"prompt": prompt, "neg_prompt": parameters.get("Negative prompt", "")}
    if loras:
        out["lora_configs"] = loras
    for f in FIELDS:
        if not f.setting or f.label not in parameters:
            continue
        try:
            out[f.setting] = f.parse(parameters[f.label])
        except (ValueError, TypeError):
            continue
    hires = "Hires upscale" in parameters or "Hires upscaler" in parameters
    if hires:
        out["enable_hr"] = True
        # With hires fix, A1111's "Denoising strength" is the second pass's.
        if "strength" in out:
            out["hr_denoising_strength"] = out.pop("strength")
    if "output_size" in out and not IMAGE_SIZE.match(str(out["output_size"])):
        del out["output_size"]
    return out
