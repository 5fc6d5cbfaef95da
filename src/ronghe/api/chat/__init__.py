"""The vendor's chat API: ``POST /nlp/v1/chat/completions`` and the paths real clients use."""
