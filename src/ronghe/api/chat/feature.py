"""The chat feature: the vendor's chat routes on the shared engines."""

from __future__ import annotations

from ronghe.api.chat.router import router
from ronghe.api.chat.state import ChatApiFeature

feature = ChatApiFeature("chat", router)
