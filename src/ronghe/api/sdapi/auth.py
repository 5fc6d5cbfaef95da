"""Authentication the way A1111's ``--api-auth`` works, on Ronghe's accounts.

- ``Authorization: Basic`` with the account's email and password: checked and throttled as
  ``get_token`` is (a wrong password counts toward the same lockout), no token issued;
- ``Authorization: Basic`` with an API key as the password (any user name: tools that only
  take "user:password" still work), or ``Authorization: Bearer <API key>`` as for chat;
- a ``get_token`` token works wherever an API key does.

Anything else is a 401 that names the ways in, with ``WWW-Authenticate: Basic``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import Depends, Request
from starlette.exceptions import HTTPException

from ronghe.api.client_address import client_address
from ronghe.api.deps import ServicesDep
from ronghe.auth.secrets import KEY_PREFIX, TOKEN_PREFIX
from ronghe.db.models import User
from ronghe.errors import Unauthorized

CHALLENGE = {"WWW-Authenticate": 'Basic realm="Ronghe", charset="UTF-8"'}
HOW = ("send 'Authorization: Basic' with your account's email and password (or any user "
       "name and an API key as the password), or 'Authorization: Bearer <API key>'")


def _refused(msg: str) -> HTTPException:
    # An HTTPException, so the 401 carries the challenge header (the family's envelope is
    # written by envelopes' handler all the same).
    return HTTPException(401, msg, headers=CHALLENGE)


def sdapi_user(request: Request, services: ServicesDep) -> User:
    """Sync: FastAPI runs it in its threadpool (a password check takes tens of ms)."""
    value = request.headers.get("authorization", "").strip()
    scheme, _, credentials = value.partition(" ")
    credentials = credentials.strip()
    try:
        if scheme.lower() == "bearer" and credentials:
            return services.auth.user_for_secret(credentials)
        if scheme.lower() == "basic" and credentials:
            name, password = _basic(credentials)
            if password.startswith((KEY_PREFIX, TOKEN_PREFIX)):
                return services.auth.user_for_secret(password)
            address = client_address(request.scope, services.settings.trusted_proxies)
            return services.auth.user_for_password(name, password, client_ip=address)
    except Unauthorized as exc:
        raise _refused(f"{exc.msg}; {HOW}") from None
    raise _refused(f"authentication required: {HOW}")


def _basic(credentials: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _refused(f"the Basic credentials are not base64 of 'user:password'; {HOW}") \
            from None
    name, sep, password = decoded.partition(":")
    if not sep or not password:
        raise _refused(f"the Basic credentials have no password; {HOW}")
    return name, password


SdUser = Annotated[User, Depends(sdapi_user)]
