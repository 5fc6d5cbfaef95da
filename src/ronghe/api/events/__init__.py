"""Push instead of poll: webhook secrets and delivery logs, and the task_events stream."""
