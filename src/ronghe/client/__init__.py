"""A Python client for Ronghe and any server that speaks the fusion API (docs/client.md).

>>> from ronghe.client import Client
>>> with Client("http://127.0.0.1:8000", email="you@example.com", password="…") as c:
...     print(c.chat("Say this is a test!"))
...     for image in c.generate("a red circle on a blue background", n_images=2):
...         image.save(".")

``AsyncClient`` has the same methods for asyncio code.  Only the vendor-shaped endpoints
are used (``/api/v1b/…`` and the chat endpoint), so the client works against any server of
this API.  Failures raise ``APIError`` subclasses that carry the server's ``code`` and ``msg``.
"""

from ronghe.client._async import AsyncClient
from ronghe.client._sync import Client
from ronghe.client._wire import Policy
from ronghe.client.errors import (
    APIError,
    AuthError,
    BusyError,
    ConflictError,
    ConnectionFailed,
    NotFoundError,
    RateLimitedError,
    ServerError,
    TaskFailed,
    ValidationError,
    WaitTimeout,
)
from ronghe.client.images import AsyncGeneratedImage, GeneratedImage
from ronghe.client.models import (
    ApiKey,
    CancelResult,
    ChatReply,
    Dataset,
    DatasetPage,
    ModelInfo,
    ModelPage,
    PngInfo,
    TaskImage,
    TaskPage,
    TaskResult,
    Token,
    TrainedModel,
    TrainProgress,
)

__all__ = [
    "APIError", "ApiKey", "AsyncClient", "AsyncGeneratedImage", "AuthError", "BusyError",
    "CancelResult", "ChatReply", "Client", "ConflictError", "ConnectionFailed", "Dataset",
    "DatasetPage", "GeneratedImage", "ModelInfo", "ModelPage", "NotFoundError", "PngInfo", "Policy",
    "RateLimitedError", "ServerError", "TaskFailed", "TaskImage", "TaskPage", "TaskResult",
    "Token", "TrainProgress", "TrainedModel", "ValidationError", "WaitTimeout",
]
