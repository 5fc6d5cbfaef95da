"""The OpenAI Images API (``/v1/images/…``): another front door onto the one submit path."""
