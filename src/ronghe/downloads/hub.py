"""Hugging Face Hub repos: which files a pull fetches, through ``huggingface_hub``.

``huggingface_hub`` answers what the repo holds at a revision (``HfApi.model_info`` with
each file's size and the SHA-256 the Hub stores for it), builds the download URLs and the
headers (token, user agent), and reads the token (``HF_TOKEN``, ``hf auth login``) and the
endpoint (``HF_ENDPOINT``: a mirror) the way every Hub tool does.  The bytes themselves go
through ``remote.fetch``: ``huggingface_hub`` deletes a half-downloaded file when a download
stops, and a 10 GB transformer shard cut at 9 GB by Ctrl-C or a server restart should resume
rather than start over.

What to fetch (``choose``): a repo with ``model_index.json`` is a diffusers folder: its
configs and tokenizers, and per component one copy of the weights: safetensors, the
``fp16`` variant where the repo has one (installed under the plain names, so diffusers loads
the folder as it is), never ``.bin``/``.ckpt`` pickles or ONNX/Flax duplicates, and none of
the single-file checkpoints some repos keep beside the folder.  Any other repo must hold one
weights file, or be told which with ``--file``.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ronghe.downloads.errors import AccessRefused, BadReference, PickleRefused, PullError
from ronghe.downloads.install import PICKLE_SUFFIXES
from ronghe.downloads.remote import RemoteFile, Unreachable

REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[\w.-]{1,96}$")
WEIGHT_SUFFIXES = (".safetensors", ".gguf", *PICKLE_SUFFIXES)
FOLDER_META = ("model_index.json",)
FOLDER_META_SUFFIXES = (".json", ".txt", ".model")
# diffusers weight names: <stem>[.<variant>][-0000i-of-0000n].<safetensors|bin>
_WEIGHT = re.compile(r"^(?P<stem>[^.]+?)(?:\.(?P<variant>[A-Za-z0-9_]+))?"
                     r"(?P<shard>-\d{5}-of-\d{5})?\.(?P<ext>safetensors|bin)$")
# ... and their shard indexes: <stem>.<ext>.index[.<variant>].json
_INDEX = re.compile(r"^(?P<stem>[^.]+)\.(?P<ext>safetensors|bin)\.index"
                    r"(?:\.(?P<variant>[A-Za-z0-9_]+))?\.json$")
# Which variant of a component's weights a pull prefers: half precision, then the plain one.
VARIANT_ORDER = ("fp16", None)


@dataclass(frozen=True)
class HubFile:
    path: str
    size: int | None
    sha256: str | None


@dataclass(frozen=True)
class HubRepo:
    repo: str
    commit: str
    files: list[HubFile]
    gated: bool
    licence: str


def is_repo_id(ref: str) -> bool:
    return bool(REPO_ID.match(ref)) and ".." not in ref


def endpoint_of(configured: str | None) -> str:
    from huggingface_hub import constants

    return (configured or constants.ENDPOINT).rstrip("/")


def token_of(configured: str | None) -> str | None:
    """The settings' hf_token, else what huggingface_hub finds (HF_TOKEN, a saved login)."""
    if configured:
        return configured
    from huggingface_hub import get_token

    return get_token()


def licence_hint(repo: str, endpoint: str, licence: str = "") -> str:
    what = f" ({licence})" if licence else ""
    return (f"{repo} is gated: sign in at {endpoint}/{repo}, accept its licence{what}, then "
            "give a token of that account (HF_TOKEN=hf_... or the hf_token setting)")


def repo_info(repo: str, revision: str, token: str | None, endpoint: str) -> HubRepo:
    """What the repo holds at ``revision``: each file's path, size and SHA-256."""
    from huggingface_hub import HfApi
    from huggingface_hub import errors as hf

    try:
        info = HfApi(endpoint=endpoint, token=token or False).model_info(
            repo, revision=revision, files_metadata=True, timeout=30)
    except hf.OfflineModeIsEnabled:
        raise Unreachable("HF_HUB_OFFLINE is set, which keeps this process off the Hub: "
                          "unset it to pull from the Hub") from None
    except hf.GatedRepoError:
        raise AccessRefused(licence_hint(repo, endpoint)) from None
    except hf.RepositoryNotFoundError:
        private = "" if token else " (a private repo needs a token: HF_TOKEN or hf_token)"
        raise PullError(f"no model repo {repo!r} on {endpoint}{private}",
                        keep_partial=False) from None
    except hf.RevisionNotFoundError:
        raise PullError(f"{repo} has no revision {revision!r}", keep_partial=False) from None
    except hf.HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        raise Unreachable(f"the Hub at {endpoint} answered HTTP {status} for {repo}; "
                          "try again later") from None
    except Exception as exc:  # httpx2/requests transport errors, by library version
        if type(exc).__name__ in ("ConnectError", "ConnectTimeout", "ConnectionError",
                                  "ReadTimeout", "TimeoutException", "ProxyError"):
            raise Unreachable(f"cannot reach the Hub at {endpoint}: {exc or type(exc).__name__}"
                              " (is this machine online?)") from None
        raise
    files = [HubFile(s.rfilename, s.size, s.lfs.sha256 if s.lfs else None)
             for s in info.siblings or []]
    card = info.card_data
    licence = str(getattr(card, "license_name", None) or getattr(card, "license", None) or "")
    return HubRepo(repo, str(info.sha or revision), files, bool(info.gated), licence)


def _component_weights(names: Iterable[str], allow_pickle: bool,
                       repo: str) -> tuple[list[str], list[str]]:
    """(weight files, shard indexes) to fetch: per component folder, one format and one
    variant."""
    by_component: dict[str, list[tuple[str, re.Match[str]]]] = defaultdict(list)
    indexes: dict[str, list[tuple[str, re.Match[str]]]] = defaultdict(list)
    for name in names:
        if name.count("/") != 1:
            continue
        component, base = name.split("/")
        if (m := _WEIGHT.match(base)) is not None:
            by_component[component].append((name, m))
        elif (m := _INDEX.match(base)) is not None:
            indexes[component].append((name, m))
    chosen: list[str] = []
    chosen_indexes: list[str] = []
    pickle_only: list[str] = []
    for component, weights in sorted(by_component.items()):
        safe = [(n, m) for n, m in weights if m["ext"] == "safetensors"]
        if not safe:
            if not allow_pickle:
                pickle_only.append(component)
                continue
            safe = weights
        ext = safe[0][1]["ext"]
        variants = {m["variant"] for _, m in safe}
        variant = next((v for v in VARIANT_ORDER if v in variants), sorted(
            variants, key=lambda v: v or "")[0])
        chosen += [n for n, m in safe if m["variant"] == variant]
        chosen_indexes += [n for n, m in indexes.get(component, [])
                           if m["ext"] == ext and m["variant"] == variant]
    if pickle_only:
        raise PickleRefused(
            f"{repo}: {', '.join(pickle_only)} come only as pickle files (.bin), which can run "
            "code when loaded; pass --allow-pickle if you trust this repo")
    return chosen, chosen_indexes


def choose(repo: HubRepo, file: str | None, patterns: Sequence[str] | None,
           allow_pickle: bool) -> list[HubFile]:
    """The files a pull of ``repo`` fetches (see the module's docstring)."""
    from huggingface_hub.utils import filter_repo_objects

    by_path = {f.path: f for f in repo.files}
    if file:
        if file not in by_path:
            near = [p for p in by_path if p.lower().endswith(WEIGHT_SUFFIXES)][:8]
            raise BadReference(f"{repo.repo} has no file {file!r}"
                               + (f"; its weights: {', '.join(near)}" if near else ""),
                               field="file")
        names = [file]
    elif patterns:
        names = list(filter_repo_objects(list(by_path), allow_patterns=list(patterns)))
        if not names:
            raise PullError(f"{repo.repo} has none of the files {', '.join(patterns)}",
                            keep_partial=False)
    else:
        names = list(by_path)
    if "model_index.json" in names:
        meta = [n for n in names if n in FOLDER_META
                or (n.count("/") == 1 and n.endswith(FOLDER_META_SUFFIXES)
                    and not _INDEX.match(n.split("/")[1]))]
        weights, indexes = _component_weights(names, allow_pickle, repo.repo)
        return [by_path[n] for n in sorted({*meta, *weights, *indexes})]
    weights = [n for n in names if n.lower().endswith(WEIGHT_SUFFIXES)]
    safe = [n for n in weights if not n.lower().endswith(PICKLE_SUFFIXES)]
    if not weights:
        raise PullError(f"{repo.repo} holds no model weights (.safetensors, .gguf) nor a "
                        "diffusers folder (model_index.json)", keep_partial=False)
    if not safe and not allow_pickle:
        raise PickleRefused(f"{repo.repo} has only pickle weights ({', '.join(weights[:4])}), "
                            "which can run code when loaded; pass --allow-pickle if you "
                            "trust this repo")
    pick = safe or weights
    if len(pick) > 1:
        listed = ", ".join(f"{n} ({_gb(by_path[n].size)})" for n in pick[:12])
        raise BadReference(f"{repo.repo} holds {len(pick)} weight files; choose one with "
                           f"--file: {listed}", field="file")
    return [by_path[pick[0]]]


def _gb(size: int | None) -> str:
    return "size unknown" if size is None else f"{size / 1e9:.1f} GB"


def remote_files(repo: HubRepo, files: list[HubFile], token: str | None,
                 endpoint: str) -> list[RemoteFile]:
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import build_hf_headers

    headers = build_hf_headers(token=token or False, library_name="ronghe")
    hint = licence_hint(repo.repo, endpoint, repo.licence) if repo.gated else (
        "a private repo needs a token of an account that may read it (HF_TOKEN or hf_token)")
    return [RemoteFile(hf_hub_url(repo.repo, f.path, revision=repo.commit, endpoint=endpoint),
                       f.path, f.size, f.sha256, headers, hint) for f in files]


# --- after the download: a diffusers folder under the names diffusers loads by default


def plain_name(name: str) -> str:
    """``x.fp16.safetensors`` -> ``x.safetensors``; ``x.fp16-00001-of-00002.safetensors``
    -> ``x-00001-of-00002.safetensors``; an index ``x.safetensors.index.fp16.json`` ->
    ``x.safetensors.index.json``."""
    if (m := _WEIGHT.match(name)) is not None and m["variant"]:
        return f"{m['stem']}{m['shard'] or ''}.{m['ext']}"
    if (m := _INDEX.match(name)) is not None and m["variant"]:
        return f"{m['stem']}.{m['ext']}.index.json"
    return name


def drop_variants(folder: Path) -> list[str]:
    """Rename a staged folder's variant weights (and their shard indexes) to the plain
    names; returns what it renamed."""
    renamed = []
    for path in sorted(folder.glob("*/*")):
        new = plain_name(path.name)
        if new == path.name or not path.is_file():
            continue
        if _INDEX.match(path.name):
            index: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            weight_map = index.get("weight_map") or {}
            index["weight_map"] = {k: plain_name(v) for k, v in weight_map.items()}
            path.with_name(new).write_text(json.dumps(index, indent=2), encoding="utf-8")
            path.unlink()
        else:
            path.rename(path.with_name(new))
        renamed.append(f"{path.parent.name}/{path.name}")
    return renamed
