"""The fusion feature: its routes on the shared chat engines and the image task service."""

from __future__ import annotations

from ronghe.api.chat.state import ChatApiFeature
from ronghe.api.fusion.router import router

feature = ChatApiFeature("fusion", router)
