"""``Idempotency-Key``: a retried submit returns the first answer instead of doing it twice."""
