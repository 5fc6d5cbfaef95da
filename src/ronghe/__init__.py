"""Ronghe: a self-hosted server for the fusion API."""

__version__ = "0.1.0"
