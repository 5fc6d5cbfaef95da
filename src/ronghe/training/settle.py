"""A training that ends without its handler takes its catalog entry along.

The training task (``ronghe.tasks.training``) settles its LoRA entry itself when it fails or
is cancelled while running.  A run can also end where no handler runs: failed by recovery
after its worker was lost too often, or cancelled while still pending.  This task listener
settles the entry then, in the transaction that ends the task, in whichever process ends it.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from ronghe.catalog.models import LoraModel
from ronghe.catalog.service import LoraState
from ronghe.jobs.events import COMPLETED, TaskChange
from ronghe.jobs.status import Status
from ronghe.queues import Kind

ENDS = (Status.FAILED.value, Status.CANCELLED.value)


def on_task_change(session: Session, change: TaskChange) -> None:
    """An entry the handler settled is no longer 'training': this changes nothing then."""
    if change.kind != Kind.TRAIN or change.event != COMPLETED or change.state not in ENDS:
        return
    session.execute(update(LoraModel)
                    .where(LoraModel.task_id == change.task_id,
                           LoraModel.state == LoraState.TRAINING.value)
                    .values(state=change.state))
