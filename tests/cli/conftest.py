from tests.server_support import server

__all__ = ["server"]  # one real `ronghe serve` for this package's tests
