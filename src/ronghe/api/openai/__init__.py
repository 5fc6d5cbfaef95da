"""An OpenAI-compatible chat API (``/v1/chat/completions``, ``/v1/models``) on the same engines."""
