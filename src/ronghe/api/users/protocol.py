"""Request bodies of the account endpoints, with every field's range."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ronghe.api.envelopes import Body, MiaohuaOk
from ronghe.api.fields import choice, int_range, text
from ronghe.api.images.listing_protocol import ItemPage
from ronghe.api.images.protocol import TASK_KINDS, Flag, Lenient

ID_MAX = 2**31 - 1
Email = Annotated[str, text(254)]
Password = Annotated[str, text(1024)]
Id = Annotated[int, int_range(1, ID_MAX)]


class Paged(Lenient):
    page: Annotated[int, int_range(1, 100_000)] = 1
    per_page: Annotated[int, int_range(1, 100)] = 20


class Credentials(Lenient):
    email: Email
    password: Password


class ChangePassword(Lenient):
    old_password: Password
    new_password: Password


class KeyCreate(Lenient):
    name: Annotated[str, text(128)] = ""


class KeyRef(Lenient):
    id: Id


class UserList(Paged):
    query: Annotated[str, text(254)] = ""


class UserAdd(Credentials):
    is_admin: Flag = False


class UserRef(Lenient):
    user_id: Id


class PasswordReset(UserRef):
    password: Password


class AdminFlag(UserRef):
    is_admin: Flag


class QueueList(Paged):
    kind: Annotated[str, choice(TASK_KINDS, empty_ok=False)] = "all"


# --- responses


class SetupState(Body):
    needs_setup: bool = Field(description="no account exists yet: POST /setup creates the admin")
    allow_signup: bool


class UserInfo(Body):
    id: int
    email: str
    is_admin: bool
    is_active: bool
    create_time: str


class Me(UserInfo):
    token_expires_at: str = Field(description="when this token expires ('' for never)")


class PasswordChanged(Body):
    changed: bool
    revoked_tokens: int = Field(description="how many of your other tokens were revoked")


class KeyInfo(Body):
    id: int
    name: str
    prefix: str = Field(description="the key's first characters, to tell keys apart")
    create_time: str
    last_used_time: str = Field(description="'' if never used")


class NewKey(KeyInfo):
    key: str = Field(description="the secret: shown in this answer only")


class KeyList(Body):
    items: list[KeyInfo]


class KeyRevoked(Body):
    id: int
    revoked: bool


class QueueEntry(Body):
    task_id: str
    kind: str
    state: str
    progress: float
    user_id: int
    email: str
    create_time: str
    start_time: str = Field(description="'' until it runs")
    queue: str
    model: str


class QueuedImage(QueueEntry):
    prompt: str


class QueuedTraining(QueueEntry):
    model_name: str = Field(description="the LoRA being trained")


class QueuedDownload(QueueEntry):
    """A model pull (``model`` is what is pulled: a catalogue name, repo id or URL)."""

    model_name: str = Field(description="the name it is installed under ('' until known)")


UserPage = MiaohuaOk[ItemPage[UserInfo]]
QueuePage = MiaohuaOk[ItemPage[QueuedImage | QueuedTraining | QueuedDownload]]


# --- the models folder (POST /admin/models/scan)


class ScannedModel(Body):
    name: str
    family: str | None = Field(description="demo, sd15, sd2 or sdxl; null for chat models "
                               "and files whose family could not be told")
    path: str
    problem: str | None = Field(description="why it cannot be used; null when it can")


class ScannedLora(ScannedModel):
    state: str = Field(description="ready, failed, skipped, or waiting (no admin yet)")
    id: int | None = Field(default=None, description="its versionid for lora_configs")


class ModelsScan(Body):
    image: list[ScannedModel]
    chat: list[ScannedModel]
    lora: list[ScannedLora]
