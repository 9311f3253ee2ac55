"""Who sends to whom, round by round: the scp-wave tree (CERN lxcloud, Torino) as pure functions.

Every host that holds a verified copy serves one new host per round, so the number of holders doubles each
round and N hosts are reached in ceil(log2((holders + N) / holders)) rounds. With equal links, a round
lasts about one transfer time: the whole run grows as log N where sending from one source grows as N.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def rounds_needed(holders: int, targets: int) -> int:
    """Rounds for ``targets`` hosts when ``holders`` hosts have the image and each serves one per round.

    ``holders`` must be at least 1 when ``targets`` is not 0; raises ValueError otherwise."""
    if targets <= 0:
        return 0
    if holders < 1:
        raise ValueError("no host holds the image")
    return math.ceil(math.log2((holders + targets) / holders) - 1e-12)


def pair_up(holders: Sequence[str], pending: Sequence[str], *, per_source: int = 1) -> list[tuple[str, str]]:
    """This round's (source, target) pairs: holders in order, each given ``per_source`` targets in order,
    until either runs out. Sequential distribution from one source is ``pair_up([src], pending)``."""
    pairs: list[tuple[str, str]] = []
    queue = list(pending)
    for source in holders:
        for _ in range(per_source):
            if not queue:
                return pairs
            pairs.append((source, queue.pop(0)))
    return pairs
