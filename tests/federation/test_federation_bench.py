"""bench/federation.py's Hamlet half at toy size, so the bench cannot rot.

A real `hamlet serve` federating over TLS with the bench's scripted remote
server: two transactions of PDUs in, then a join of a 20-member room.
"""

from __future__ import annotations

from tests.federation.bench_support import run_bench


def test_the_hamlet_half_at_toy_size() -> None:
    (hamlet,) = run_bench(
        "federation.py", "--pdus", "100", "--members", "20", "--skip-synapse", timeout_s=120
    )
    assert hamlet["server"] == "hamlet-sqlite"
    assert (hamlet["persisted"], hamlet["refused"]) == (100, 0)
    assert hamlet["send_pdus_per_s"] > 0
    # The 20 members of the remote server, and ours.
    assert hamlet["joined_members"] == 21
    assert hamlet["join_s"] > 0
    assert "unserved_requests" not in hamlet
