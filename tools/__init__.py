"""Development tools, run from the repository root (``python -m tools.<name>``); not part of
the ``ronghe`` package that is installed and served."""
