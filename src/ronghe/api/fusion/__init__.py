"""Fusion: ``POST /v1/fusion/chat-with-image``, a chat that draws when it is asked to."""
