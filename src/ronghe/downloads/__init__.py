"""Installing models by name: ``ronghe models pull`` and the admin's "Add a model" panel.

- ``catalogue``: the short names shipped with the package (repo, files, family, settings);
- ``hub``: Hugging Face repos through ``huggingface_hub`` (what to fetch, URLs, tokens);
- ``url``: plain URLs, with Civitai's metadata (SHA-256, kind, family) where it applies;
- ``remote``: one file over HTTP(S), resumable with ``Range``;
- ``pull``: the steps, from a request to a model in the models folder (space, staging,
  checks); ``install``: the last ones (format checks, sidecar, one rename), and where models
  go; ``progress``: how it reports;
- ``service``: pulls as ``download`` tasks on a server (the task: ``ronghe.tasks.downloads``).
"""
