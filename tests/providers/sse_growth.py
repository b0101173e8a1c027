"""How the SSE decoder's time grows with its input: decoding 4x the input over decoding 1x.

    MALLOC_TRIM_THRESHOLD_=1073741824 python -m tests.providers.sse_growth long-line 524288

prints that ratio: about 4 if the decoder is linear, 16 if quadratic. `test_sse.py` runs it
in a fresh interpreter with glibc keeping the memory it frees: in the test process, the
tests before it may have left glibc handing freed pages back to the system, so that every
decode of 4x the input page-faults its copies back in while 1x reuses warm memory (measured
there: 15-20x for the linear decoder, with no change in the work it does).
"""

from __future__ import annotations

import gc
import math
import sys
import time
from collections.abc import Callable

from .helpers import decode_sse

CHUNK = 16 * 1024


def in_chunks(raw: bytes) -> list[bytes]:
    return [raw[i : i + CHUNK] for i in range(0, len(raw), CHUNK)]


#: The bodies of size n: one data line of n bytes in 16 KiB chunks (rescanning the buffer
#: per chunk took 0.9 s for 1 MiB, 3.5 s for 2 MiB); n small events in one chunk.
BODIES: dict[str, Callable[[int], list[bytes]]] = {
    "long-line": lambda n: in_chunks(b"data: " + b"x" * n + b"\n\n"),
    "events": lambda n: [b"event: e\r\ndata: 0123456789\r\n\r\n" * n],
}


def best_time(run: Callable[[], object], repeats: int = 5) -> float:
    """The fastest of a few runs, in CPU time of this thread: the time other programs get
    does not count (on a loaded machine a decode of tens of milliseconds is nearly always
    interrupted, and its wall time then grew 4-8x for 4x the input). Noise only ever adds
    time, hence the fastest. The garbage collector is paused: its full collections grow with
    every live object (the events decoded), not with the decoder's work."""
    best = math.inf
    gc.collect()
    gc.disable()
    try:
        for _ in range(repeats):
            started = time.thread_time()
            run()
            best = min(best, time.thread_time() - started)
    finally:
        gc.enable()
    return best


def growth(body: str, size: int) -> float:
    small, large = BODIES[body](size), BODIES[body](4 * size)
    return best_time(lambda: decode_sse(large)) / best_time(lambda: decode_sse(small))


if __name__ == "__main__":
    print(growth(sys.argv[1], int(sys.argv[2])))  # noqa: T201
