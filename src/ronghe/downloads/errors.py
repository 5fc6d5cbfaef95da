"""Why a pull stopped, each as one line a user can act on (the CLI prints it, a failed
``download`` task keeps it as its error)."""

from __future__ import annotations

from ronghe.errors import BadRequest, RongheError


class PullError(RongheError):
    """A pull that cannot go on.  ``keep_partial``: what was downloaded so far stays in the
    staging folder, so the same pull resumes once the cause is gone (the network, the
    space); otherwise the staging folder goes (a file that failed its checksum is useless)."""

    def __init__(self, msg: str, *, field: str | None = None,
                 keep_partial: bool = True) -> None:
        super().__init__(msg, field=field)
        self.keep_partial = keep_partial


class BadReference(BadRequest):
    """What was asked for is not a catalogue name, a Hub repo id or an http(s) URL, or an
    option does not fit it: the request's fault, answered as a 400 naming the field."""


class Unreachable(PullError):
    """The server cannot be reached or stopped answering: no network, a firewall."""


class AccessRefused(PullError):
    """401/403: a gated or private repo, or a download that needs a token."""


class NoSpace(PullError):
    """Not enough free disk space, before or while downloading."""


class Mismatch(PullError):
    """A file whose SHA-256 (or size) is not the one published: nothing of it is kept."""

    def __init__(self, msg: str) -> None:
        super().__init__(msg, keep_partial=False)


class PickleRefused(PullError):
    """Weights in Python's pickle format (.ckpt, .pt, .bin) can run code when loaded."""

    def __init__(self, msg: str) -> None:
        super().__init__(msg, keep_partial=False)
