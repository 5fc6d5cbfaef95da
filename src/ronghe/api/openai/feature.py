"""The OpenAI-compatible feature: its routes on the engines the chat feature shares."""

from __future__ import annotations

from ronghe.api.chat.state import ChatApiFeature
from ronghe.api.openai.router import router

feature = ChatApiFeature("openai", router)
