from __future__ import annotations

from pathlib import Path

import pytest

from ronghe.storage.base import StorageError
from ronghe.storage.local import LocalStorage


def test_put_get_delete_roundtrip(tmp_path: Path) -> None:
    st = LocalStorage(tmp_path)
    st.put("u1/upload/a.png", b"abc", "image/png")
    assert st.get("u1/upload/a.png") == b"abc"
    assert b"".join(st.iter_chunks("u1/upload/a.png", 2)) == b"abc"
    assert st.exists("u1/upload/a.png")
    st.put("u1/upload/a.png", b"new", "image/png")  # atomic replace
    assert st.get("u1/upload/a.png") == b"new"
    assert not [p for p in (tmp_path / "u1/upload").iterdir() if p.name.startswith(".tmp")]
    st.delete("u1/upload/a.png")
    st.delete("u1/upload/a.png")  # absent is fine
    with pytest.raises(FileNotFoundError):
        st.get("u1/upload/a.png")


@pytest.mark.parametrize("key", ["../escape", "a/../../b", "/etc/passwd", "a//b", ".hidden",
                                 "a/./b", "a\\b", ""])
def test_keys_cannot_escape_the_root(tmp_path: Path, key: str) -> None:
    with pytest.raises(StorageError):
        LocalStorage(tmp_path / "root").put(key, b"x", "text/plain")
