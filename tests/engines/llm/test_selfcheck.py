from ronghe.engines.llm.selfcheck import check


def test_the_installed_llama_cpp_decodes_with_the_bundled_model() -> None:
    ok, detail = check()
    assert ok, detail
    assert "CPU" in detail  # llama.cpp's system info line
