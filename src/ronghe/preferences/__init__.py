"""Per-user preferences a front door remembers between requests (the A1111-compatible API's
``sd_model_checkpoint``)."""
