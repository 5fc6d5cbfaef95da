"""Image uploads: safe decoding and all-or-nothing storage of users' images."""
