"""Request bodies of the account endpoints, with every field's range."""

from __future__ import annotations

from typing import Annotated

from ronghe.api.images.protocol import TASK_KINDS, Flag, Lenient, choice, int_range, text

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
