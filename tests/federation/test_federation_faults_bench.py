"""bench/federation_faults.py, run as it is at toy size so it cannot rot.

Its kill_9 part is the `kill -9` test: a scripted remote server sends a real
`hamlet serve` three transactions of 50 PDUs, Hamlet is SIGKILLed once the
second is partly stored, and after the restart the remote retries every
transaction under its ID. Nothing acknowledged is lost, nothing is stored
twice, and the first transaction's retry gets the answer it got before.
"""

from __future__ import annotations

from tests.federation.bench_support import run_bench


def test_kill_9_while_receiving_transactions() -> None:
    (report,) = run_bench("federation_faults.py", "--only", "kill_9", "--kill-pdus", "150")
    assert report["transactions"] == 3
    assert report["same_answer_after_restart"] is True
    assert report["refused"] == 0
    assert report["persisted"] == 150


def test_the_figures_at_toy_size() -> None:
    catch_up, unreachable = run_bench(
        "federation_faults.py",
        *("--outage", "2", "--rooms", "3", "--destinations", "2", "--unreachable", "20"),
        *("--only", "catch_up", "--only", "unreachable"),
    )
    assert catch_up["messages_during_outage"] > 0
    assert 0 <= catch_up["catch_up_s_min"] <= catch_up["catch_up_s_max"]
    assert unreachable["with_pdus_queued"] == 20
    assert unreachable["tracemalloc_mb"] > 0
