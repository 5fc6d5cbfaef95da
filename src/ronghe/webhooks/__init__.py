"""Webhooks after the Standard Webhooks specification (https://www.standardwebhooks.com).

- ``request``: the ``webhook`` / ``callback_url`` / ``webhook_events_filter`` fields of a
  submit, checked (SSRF included) and stored in the task's params;
- ``outbox``: a task-event listener that adds one delivery row per event in the transaction
  of the change, so a committed change always has its delivery queued;
- ``sender``: the loop every API process and worker runs: it claims due deliveries with a
  conditional UPDATE (one process per delivery on the healthy path), signs and posts them,
  and schedules retries with exponential backoff;
- ``keys``: the per-user ``whsec_`` secrets;
- ``ssrf``: which addresses a delivery may reach.
"""
