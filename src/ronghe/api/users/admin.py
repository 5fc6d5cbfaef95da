"""Admin routes: accounts and every user's queue.  Non-admins get 403."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from ronghe.api.deps import ServicesDep, TokenUser
from ronghe.api.envelopes import Family, MiaohuaOk, errors, miaohua_ok
from ronghe.api.images.listing import KINDS
from ronghe.api.users.protocol import (
    AdminFlag,
    ModelsScan,
    PasswordReset,
    QueueList,
    QueuePage,
    UserAdd,
    UserInfo,
    UserList,
    UserPage,
    UserRef,
)
from ronghe.api.users.serving import paged, queue_item, user_body
from ronghe.catalog.folder import scan_all
from ronghe.db.models import User

router = APIRouter(prefix="/api/v1b/admin", tags=["admin"],
                   # The statuses its routes answer with, in the Miaohua envelope.
                   responses=errors(Family.MIAOHUA, 400, 401, 403, 404, 409, 413))


def admin_user(user: TokenUser, services: ServicesDep) -> User:
    services.auth.accounts.require_admin(user)
    return user


Admin = Annotated[User, Depends(admin_user)]
# Every admin route: a malformed or too large body, no valid token, or not an admin.
ADMIN = (400, 401, 403, 413)
# The routes on one account: it may not exist.
ON_USER = (*ADMIN, 404)


@router.post("/users", summary="Every account, by id, a page at a time",
             responses=errors(Family.MIAOHUA, *ADMIN))
def users(body: UserList, admin: Admin, services: ServicesDep) -> UserPage:
    found, total = services.auth.accounts.page((body.page - 1) * body.per_page, body.per_page,
                                               body.query)
    return paged([user_body(u) for u in found], body.page, body.per_page, total)


@router.post("/user_add", summary="Add an account",
             responses=errors(Family.MIAOHUA, *ADMIN, 409))
def user_add(body: UserAdd, admin: Admin, services: ServicesDep) -> MiaohuaOk[UserInfo]:
    return miaohua_ok(user_body(services.auth.add_user(body.email, body.password, body.is_admin)))


@router.post("/user_disable", summary="Disable an account: its tokens and API keys stop "
             "working, its unfinished tasks are cancelled",
             responses=errors(Family.MIAOHUA, *ON_USER))
def user_disable(body: UserRef, admin: Admin, services: ServicesDep) -> MiaohuaOk[UserInfo]:
    user = services.auth.accounts.set_active(admin, body.user_id, False)
    services.tasks.cancel_all_of(user.id)
    return miaohua_ok(user_body(user))


@router.post("/user_enable", summary="Enable a disabled account",
             responses=errors(Family.MIAOHUA, *ON_USER))
def user_enable(body: UserRef, admin: Admin, services: ServicesDep) -> MiaohuaOk[UserInfo]:
    return miaohua_ok(user_body(services.auth.accounts.set_active(admin, body.user_id, True)))


@router.post("/user_reset_password", summary="Set an account's password; its tokens are revoked",
             responses=errors(Family.MIAOHUA, *ON_USER))
def user_reset_password(body: PasswordReset, admin: Admin,
                        services: ServicesDep) -> MiaohuaOk[UserInfo]:
    return miaohua_ok(user_body(services.auth.accounts.reset_password(body.user_id, body.password)))


@router.post("/user_set_admin", summary="Make an account an admin, or not",
             responses=errors(Family.MIAOHUA, *ON_USER))
def user_set_admin(body: AdminFlag, admin: Admin, services: ServicesDep) -> MiaohuaOk[UserInfo]:
    user = services.auth.accounts.set_admin(admin, body.user_id, body.is_admin)
    return miaohua_ok(user_body(user))


@router.post("/queue", summary="Every user's pending and running tasks, in queue order",
             responses=errors(Family.MIAOHUA, *ADMIN))
def queue(body: QueueList, admin: Admin, services: ServicesDep) -> QueuePage:
    found, total = services.tasks.active(KINDS[body.kind], (body.page - 1) * body.per_page,
                                         body.per_page)
    return paged([queue_item(t, email) for t, email in found], body.page, body.per_page, total)


@router.post("/models/scan", summary="Look at the models and LoRA folders again "
             "(<data_dir>/models, <data_dir>/loras): what they hold and each one's problem",
             responses=errors(Family.MIAOHUA, *ADMIN))
def models_scan(admin: Admin, services: ServicesDep) -> MiaohuaOk[ModelsScan]:
    return miaohua_ok(ModelsScan.model_validate(scan_all(services)))
