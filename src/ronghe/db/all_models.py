"""Imports every module that defines tables, so Base.metadata is complete for Alembic."""

from ronghe.catalog import models as _catalog  # noqa: F401
from ronghe.datasets import models as _datasets  # noqa: F401
from ronghe.db import models  # noqa: F401
from ronghe.idempotency import models as _idempotency  # noqa: F401
from ronghe.jobs import events as _events  # noqa: F401
from ronghe.jobs import models as _jobs  # noqa: F401
from ronghe.preferences import models as _preferences  # noqa: F401
from ronghe.webhooks import models as _webhooks  # noqa: F401
