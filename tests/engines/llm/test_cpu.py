"""The CPU thread budget shared by llama.cpp and torch."""

from __future__ import annotations

import threading

from ronghe.engines.cpu import CpuBudget


def test_alone_gets_every_core_and_holders_split_them() -> None:
    budget = CpuBudget(8)
    with budget.lease("llama:a") as llama:
        assert llama == 8
        with budget.lease("torch") as torch:
            assert torch == 4
            assert budget.share("llama:a") == 4  # llama shrinks at its next token
            assert budget.share("llama:b") == 2  # a third holder would get a third
        assert budget.share("llama:a") == 8
    assert budget.holders() == []


def test_nested_leases_under_one_name_count_once() -> None:
    budget = CpuBudget(4)
    with budget.lease("torch"), budget.lease("torch") as inner:
        assert inner == 4 and budget.holders() == ["torch"]
    assert budget.holders() == []


def test_never_below_one_thread_and_configure_applies() -> None:
    budget = CpuBudget(1)
    with budget.lease("torch"), budget.lease("llama:a") as threads:
        assert threads == 1
    budget.configure(6)
    assert budget.share("torch") == 6


def test_leases_from_many_threads_balance() -> None:
    budget = CpuBudget(4)

    def work(name: str) -> None:
        for _ in range(200):
            with budget.lease(name):
                pass

    threads = [threading.Thread(target=work, args=(f"n{i % 3}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert budget.holders() == [] and budget.share("x") == 4
