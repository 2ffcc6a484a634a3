"""One way to write a file whole or not at all, for every writer we own."""
import contextlib
import os
from typing import Iterator, Optional


@contextlib.contextmanager
def atomic_path(path: str, tmp: Optional[str] = None,
                fsync: bool = False) -> Iterator[str]:
    """Yield a temporary path to write; rename it over ``path`` on success.

    On any exception (KeyboardInterrupt too) the temporary file is removed
    and ``path`` is left as it was, so a reader never sees half a file and a
    failed write never costs the previous one.

    Args:
        path (str): The file to (re)write.
        tmp (str, optional): The temporary name, beside ``path`` (same file
            system, so the rename is atomic). Defaults to
            ``<path>.partial-<pid>``.
        fsync (bool): Flush the written file to disk before the rename (for
            checkpoints, which must survive a power loss as well).
    """
    tmp = tmp or f'{path}.partial-{os.getpid()}'
    try:
        yield tmp
        if fsync:
            with open(tmp, 'rb') as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
