"""An AUTOMATIC1111-compatible API (``/sdapi/v1/…``): another front door onto the one submit
path, for the tools that speak A1111's (Open WebUI, LibreChat, SillyTavern …)."""
