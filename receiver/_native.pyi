# The compiled build's interface: the same as receiver/_pure.py's (receiver/_native.pyx).
import mmap
from typing import Final

from receiver.events import Samples

NEED_MORE: Final[int]
DATA: Final[int]
CONTROL: Final[int]
OTHER: Final[int]
BAD_UTF8: Final[int]

def next_frame(buf: bytes | bytearray, pos: int, max_size: int) -> tuple[int, str | bytes | None, int]: ...
def ring_write(
    table: Samples | memoryview,
    codes: bytes,
    ring: Samples | mmap.mmap,
    head: int,
    channel: int = 0,
    channels: int = 1,
) -> int: ...
