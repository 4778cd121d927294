"""Training gives freed tensor memory back to the system instead of keeping it in glibc's heap."""

import subprocess
import sys

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")]

# 200 blocks of 1 MB, each followed by a small (64 KB) long-lived tensor, then the blocks are freed: in the heap, the small
# tensors pin the holes; given their own pages, the blocks go back to the system.
RELEASED_MB = """
import sys, psutil, torch
from olivepress.passes.pytorch.training import return_freed_memory
if sys.argv[1] == "lean":
    return_freed_memory()
big = torch.ones(4 * 2**20)
del big  # a freed 16 MB block raises glibc's own threshold, as training's tensors do
blocks, pins = [], []
for _ in range(200):
    blocks.append(torch.ones(2**18))
    pins.append(torch.ones(2**14))  # 64 KB: in the heap either way
full = psutil.Process().memory_info().rss
del blocks
print((full - psutil.Process().memory_info().rss) / 2**20)
"""


def released_mb(mode: str) -> float:
    run = subprocess.run([sys.executable, "-c", RELEASED_MB, mode], capture_output=True, text=True, check=True)
    return float(run.stdout)


def test_freed_blocks_go_back_to_the_system():
    assert released_mb("lean") > 180
    assert released_mb("default") < 50
