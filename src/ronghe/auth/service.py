"""Users, login tokens and API keys: the rules live here; routes and the CLI only call in."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, make_transient_to_detached

from ronghe.auth import passwords
from ronghe.auth.secrets import KEY_PREFIX, TOKEN_PREFIX, digest, new_secret
from ronghe.auth.throttle import LoginThrottle
from ronghe.db import Database, utcnow
from ronghe.db.models import ApiKey, LoginToken, User
from ronghe.errors import BadRequest, Conflict, NotFound, RateLimited, Unauthorized
from ronghe.settings import Settings

EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}$")
BAD_LOGIN = "email or password is incorrect"
# Built once: every authenticated request runs it (SQLAlchemy statement construction costs
# more than the query itself).
_TOKEN_USER = (
    select(User.__table__, LoginToken.revoked_at.label("token_revoked_at"),
           LoginToken.expires_at.label("token_expires_at"))
    .join(LoginToken, LoginToken.user_id == User.id)
    .where(LoginToken.token_hash == bindparam("token_hash"))
)
_USER_COLUMNS = tuple(column.key for column in User.__table__.columns)


@dataclass(frozen=True)
class Issued:
    """A secret shown to its owner exactly once, with its record's id and expiry."""

    id: int
    secret: str
    expires_at: datetime | None = None


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if not EMAIL_RE.match(email):
        raise BadRequest("email must look like name@example.com (at most 254 characters)",
                         field="email")
    return email


def check_password(password: str) -> None:
    if not passwords.MIN_PASSWORD <= len(password) <= passwords.MAX_PASSWORD:
        raise BadRequest(
            f"password must be {passwords.MIN_PASSWORD}-{passwords.MAX_PASSWORD} characters",
            field="password",
        )


class AuthService:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.throttle = LoginThrottle(
            db, settings.login_max_failures, settings.login_failure_window_seconds,
            settings.login_lockout_seconds, settings.login_lockout_max_seconds,
        )
        from ronghe.auth.accounts import Accounts  # it builds on this class

        self.accounts = Accounts(self)

    # --- users

    def add_user(self, email: str, password: str, is_admin: bool = False) -> User:
        email = normalise_email(email)
        check_password(password)
        password_hash = passwords.hash_password(password)
        taken = Conflict(f"email: a user with email {email} already exists", field="email")
        try:
            with self.db.session() as s:
                if s.scalar(select(User).where(User.email == email)):
                    raise taken
                user = User(email=email, password_hash=password_hash, is_admin=is_admin)
                s.add(user)
                s.flush()
                return user
        except IntegrityError:  # the same email added concurrently
            raise taken from None

    def get_user(self, s: Session, user_id: int) -> User:
        user = s.get(User, user_id)
        if user is None:
            raise NotFound(f"user_id: no user with id {user_id}", field="user_id")
        return user

    def list_users(self) -> list[User]:
        with self.db.session() as s:
            return list(s.scalars(select(User).order_by(User.id)))

    def get_user_by_email(self, s: Session, email: str) -> User:
        user = s.scalar(select(User).where(User.email == normalise_email(email)))
        if user is None:
            raise NotFound(f"no user with email {email}", field="email")
        return user

    def set_password(self, email: str, password: str) -> None:
        check_password(password)
        password_hash = passwords.hash_password(password)
        with self.db.session() as s:
            self.replace_password(s, self.get_user_by_email(s, email), password_hash)

    def replace_password(self, s: Session, user: User, password_hash: str,
                      keep_token: str | None = None) -> int:
        user.password_hash = password_hash
        # A new password ends every session opened with the old one (but the caller's own).
        return self._revoke_user_tokens(s, user.id, keep_token)

    def set_active(self, email: str, active: bool) -> int:
        """Returns the user's id."""
        with self.db.session() as s:
            user = self.get_user_by_email(s, email)
            self.apply_active(s, user, active)
            return user.id

    def apply_active(self, s: Session, user: User, active: bool) -> None:
        user.is_active = active
        if not active:
            # Its API keys stop working too: user_for_secret checks is_active.
            self._revoke_user_tokens(s, user.id)

    def set_admin(self, email: str, admin: bool) -> None:
        with self.db.session() as s:
            self.get_user_by_email(s, email).is_admin = admin

    # --- login tokens

    def login(self, email: str, password: str, client_ip: str = "") -> Issued:
        """Checks credentials and issues a token; one answer for every kind of failure."""
        with self.db.session() as s:
            user = self._checked_login(s, email, password, client_ip)
            return self._issue_token(s, user.id)

    def user_for_password(self, email: str, password: str, client_ip: str = "") -> User:
        """HTTP Basic with the account's email and password (the AUTOMATIC1111-compatible
        API): checked and throttled exactly as ``login``, a failure counting toward the
        same lockout, but no token is issued."""
        with self.db.session() as s:
            user = self._checked_login(s, email, password, client_ip)
            s.flush()
            s.expunge(user)  # detached, as user_for_token hands users out
            return user

    def _checked_login(self, s: Session, email: str, password: str, client_ip: str) -> User:
        """The account these credentials open, or RateLimited / Unauthorized."""
        # Counted as a failure before the password is checked, atomically with the lock, so
        # concurrent guesses cannot all slip in under the limit; a success undoes it.
        attempt = self.throttle.reserve(email, client_ip)
        if not attempt.allowed:
            wait = attempt.refused_for
            raise RateLimited(f"too many failed logins for this account from this address; "
                              f"try again in {int(wait) + 1} seconds", retry_after=wait)
        user = s.scalar(select(User).where(User.email == email.strip().lower()))
        ok = passwords.verify_password(user.password_hash if user else None, password)
        if not ok or user is None or not user.is_active:
            self.throttle.confirm_failure(attempt)
            time.sleep(self.settings.login_delay_seconds)
            raise Unauthorized(BAD_LOGIN)
        self.throttle.succeeded(email, client_ip)
        if passwords.needs_rehash(user.password_hash):
            user.password_hash = passwords.hash_password(password)
        return user

    def _issue_token(self, s: Session, user_id: int) -> Issued:
        secret = new_secret(TOKEN_PREFIX)
        expires = utcnow() + timedelta(seconds=self.settings.token_ttl_seconds)
        row = LoginToken(user_id=user_id, token_hash=digest(secret), expires_at=expires)
        s.add(row)
        s.flush()
        return Issued(row.id, secret, expires)

    def issue_token(self, email: str) -> Issued:
        with self.db.session() as s:
            return self._issue_token(s, self.get_user_by_email(s, email).id)

    def user_for_token(self, token: str) -> User:
        with self.db.reading() as c:
            row = c.execute(_TOKEN_USER, {"token_hash": digest(token)}).first()
        if row is None or row.token_revoked_at is not None or not row.is_active:
            raise Unauthorized("token is invalid or revoked; get a new one from get_token")
        if row.token_expires_at <= utcnow():
            raise Unauthorized("token has expired; get a new one from get_token")
        # A detached instance, as a closed session would have left it.
        user = User(**{key: getattr(row, key) for key in _USER_COLUMNS})
        make_transient_to_detached(user)
        return user

    def revoke_token(self, token: str) -> bool:
        with self.db.session() as s:
            result = s.execute(
                update(LoginToken)
                .where(LoginToken.token_hash == digest(token), LoginToken.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
            return bool(result.rowcount)

    def revoke_user_tokens(self, email: str) -> int:
        with self.db.session() as s:
            return self._revoke_user_tokens(s, self.get_user_by_email(s, email).id)

    def _revoke_user_tokens(self, s: Session, user_id: int, keep: str | None = None) -> int:
        q = update(LoginToken).where(LoginToken.user_id == user_id,
                                     LoginToken.revoked_at.is_(None))
        if keep:
            q = q.where(LoginToken.token_hash != digest(keep))
        return int(s.execute(q.values(revoked_at=utcnow())).rowcount or 0)

    def token_expiry(self, token: str) -> datetime | None:
        with self.db.reading() as c:
            return c.scalar(select(LoginToken.expires_at)
                            .where(LoginToken.token_hash == digest(token)))

    # --- API keys

    def create_key(self, email: str, name: str = "") -> Issued:
        if len(name) > 128:
            raise BadRequest("name must be at most 128 characters", field="name")
        secret = new_secret(KEY_PREFIX)
        with self.db.session() as s:
            user = self.get_user_by_email(s, email)
            row = ApiKey(user_id=user.id, name=name, prefix=secret[:12], key_hash=digest(secret))
            s.add(row)
            s.flush()
            return Issued(row.id, secret)

    def create_own_key(self, user_id: int, name: str = "") -> tuple[ApiKey, str]:
        """A key for its owner, within ``api_keys_per_user`` active keys."""
        if len(name) > 128:
            raise BadRequest("name must be at most 128 characters", field="name")
        limit = self.settings.api_keys_per_user
        secret = new_secret(KEY_PREFIX)
        with self.db.session() as s:
            # A no-op write on the owner's row first: it takes PostgreSQL's row lock and
            # SQLite's write lock, so concurrent creates cannot both pass the count.
            s.execute(update(User).where(User.id == user_id).values(id=User.id))
            active = s.scalar(select(func.count()).select_from(ApiKey).where(
                ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))) or 0
            if active >= limit:
                raise Conflict(f"you have {active} API keys; the limit is {limit} "
                               "(api_keys_per_user): revoke one first")
            row = ApiKey(user_id=user_id, name=name, prefix=secret[:12], key_hash=digest(secret))
            s.add(row)
            s.flush()
            return row, secret

    def own_keys(self, user_id: int) -> list[ApiKey]:
        """The owner's active keys, newest first."""
        with self.db.session() as s:
            return list(s.scalars(select(ApiKey).where(
                ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
                .order_by(ApiKey.id.desc())))

    def revoke_own_key(self, user_id: int, key_id: int) -> None:
        with self.db.session() as s:
            row = s.get(ApiKey, key_id)
            if row is None or row.user_id != user_id or row.revoked_at is not None:
                raise NotFound(f"id: no API key {key_id} of yours", field="id")
            row.revoked_at = utcnow()

    def list_keys(self, email: str | None = None) -> list[tuple[ApiKey, str]]:
        with self.db.session() as s:
            q = select(ApiKey, User.email).join(User, User.id == ApiKey.user_id)
            if email:
                q = q.where(User.email == normalise_email(email))
            return [(k, e) for k, e in s.execute(q.order_by(ApiKey.id))]

    def revoke_key(self, key_id: int) -> None:
        with self.db.session() as s:
            row = s.get(ApiKey, key_id)
            if row is None:
                raise NotFound(f"no API key with id {key_id}", field="id")
            if row.revoked_at is None:
                row.revoked_at = utcnow()

    def user_for_secret(self, secret: str) -> User:
        """Chat auth: an API key, or a get_token token (both are bearer secrets)."""
        if secret.startswith(TOKEN_PREFIX):
            return self.user_for_token(secret)
        with self.db.session() as s:
            row = s.scalar(select(ApiKey).where(ApiKey.key_hash == digest(secret)))
            if row is None or row.revoked_at is not None:
                raise Unauthorized("API key is invalid or revoked")
            user = s.get(User, row.user_id)
            if user is None or not user.is_active:
                raise Unauthorized("API key is invalid or revoked")
            now = utcnow()
            # Avoid a write per request: last-used is only advisory.
            if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=5):
                row.last_used_at = now
            return user
