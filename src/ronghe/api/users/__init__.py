"""Accounts over HTTP: first-run setup, sign-up, who am I, passwords, API keys, admin."""
