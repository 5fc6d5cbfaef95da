"""Accounts beyond log-in: first-run setup, self sign-up, password changes, admin actions.

The rules live here (routes and the CLI only call in); users, tokens and keys themselves are
``AuthService``'s.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from ronghe.auth import passwords
from ronghe.auth.service import AuthService, check_password, normalise_email
from ronghe.auth.throttle import SlidingWindow
from ronghe.db.models import SetupClaim, User
from ronghe.errors import BadRequest, Conflict, Forbidden, RateLimited

SETUP_DONE = "setup is already done: sign in, or ask an admin for an account"
SIGNUP_OFF = "signup is disabled on this server (setting allow_signup); ask an admin"
SIGNUP_WINDOW_SECONDS = 3600.0


class Accounts:
    def __init__(self, auth: AuthService) -> None:
        self.auth = auth
        self.db = auth.db
        self.settings = auth.settings
        # Sign-ups per client address and hour: events counted like login failures.
        self.signups = SlidingWindow(self.settings.signup_max_per_hour, SIGNUP_WINDOW_SECONDS)

    # --- first run

    def needs_setup(self) -> bool:
        with self.db.reading() as c:
            user = c.scalar(select(User.id).limit(1))
            claimed = c.scalar(select(SetupClaim.id).limit(1))
            return user is None and claimed is None

    def setup(self, email: str, password: str) -> User:
        """The first account, an admin; only while no user exists.  Of concurrent calls
        exactly one commits: each inserts the single ``setup_claims`` row (id 1) before the
        user, and the primary key refuses the second."""
        email = normalise_email(email)
        check_password(password)
        password_hash = passwords.hash_password(password)  # slow: before any lock is taken
        try:
            with self.db.session() as s:
                if s.scalar(select(func.count()).select_from(User)):
                    raise Conflict(SETUP_DONE)
                claim = SetupClaim(id=1)
                s.add(claim)
                s.flush()
                user = User(email=email, password_hash=password_hash, is_admin=True)
                s.add(user)
                s.flush()
                claim.user_id = user.id
                return user
        except IntegrityError:
            raise Conflict(SETUP_DONE) from None

    # --- self service

    def signup(self, email: str, password: str, client_ip: str) -> User:
        if not self.settings.allow_signup:
            raise Forbidden(SIGNUP_OFF)
        key = f"signup:{client_ip}"
        wait = self.signups.blocked(key)
        if wait > 0:
            raise RateLimited(f"too many sign-ups from your address; try again in "
                              f"{int(wait) + 1} seconds (signup_max_per_hour)")
        user = self.auth.add_user(email, password)
        self.signups.failed(key)
        return user

    def change_password(self, user: User, token: str, old: str, new: str) -> int:
        """Checks the old password (wrong ones count as failed logins) and sets the new one;
        every token but the caller's is revoked.  Returns how many were."""
        # Counted per account on a pair of its own: guesses through a stolen token slow
        # down, and never lock the owner's logins.
        pair = (user.email, "change_password")
        if not passwords.MIN_PASSWORD <= len(new) <= passwords.MAX_PASSWORD:
            raise BadRequest(f"new_password must be {passwords.MIN_PASSWORD}-"
                             f"{passwords.MAX_PASSWORD} characters", field="new_password")
        # Counted before the check, atomically with the lock, as logins are (throttle.reserve).
        attempt = self.auth.throttle.reserve(*pair)
        if not attempt.allowed:
            wait = attempt.refused_for
            raise RateLimited(f"too many wrong passwords; try again in {int(wait) + 1} seconds",
                              retry_after=wait)
        with self.db.session() as s:
            row = self.auth.get_user(s, user.id)
            if not passwords.verify_password(row.password_hash, old):
                self.auth.throttle.confirm_failure(attempt)
                raise BadRequest("old_password: is incorrect", field="old_password")
            new_hash = passwords.hash_password(new)
            self.auth.throttle.succeeded(*pair)
            return self.auth.replace_password(s, row, new_hash, keep_token=token)

    # --- admins

    def require_admin(self, user: User) -> None:
        if not user.is_admin:
            raise Forbidden("admin only: this account is not an admin")

    def page(self, offset: int, limit: int, query: str = "") -> tuple[list[User], int]:
        cond = [User.email.contains(query.strip().lower(), autoescape=True)] if query else []
        with self.db.session() as s:
            total = s.scalar(select(func.count()).select_from(User).where(*cond)) or 0
            users = list(s.scalars(select(User).where(*cond).order_by(User.id)
                                   .offset(offset).limit(limit)))
            return users, total

    def set_active(self, actor: User, user_id: int, active: bool) -> User:
        if user_id == actor.id and not active:
            raise BadRequest("user_id: you cannot disable your own account", field="user_id")
        with self.db.session() as s:
            user = self.auth.get_user(s, user_id)
            self.auth.apply_active(s, user, active)
            return user

    def reset_password(self, user_id: int, password: str) -> User:
        check_password(password)
        password_hash = passwords.hash_password(password)
        with self.db.session() as s:
            user = self.auth.get_user(s, user_id)
            self.auth.replace_password(s, user, password_hash)
            return user

    def set_admin(self, actor: User, user_id: int, admin: bool) -> User:
        if user_id == actor.id and not admin:
            raise BadRequest("user_id: you cannot remove your own admin rights",
                             field="user_id")
        with self.db.session() as s:
            user = self.auth.get_user(s, user_id)
            user.is_admin = admin
            return user
