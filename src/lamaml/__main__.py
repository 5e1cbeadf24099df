"""The ``lamaml`` command's entry point (``python -m lamaml`` and the ``lamaml`` script both start here).

Ctrl-C is taken in hand before anything heavy is imported. Python's own handler raises
KeyboardInterrupt wherever the main thread happens to be; inside an import (torch takes seconds)
that unwinds through half-initialised modules and C++ code, and ended in tracebacks, a
RecursionError or an abort. So while an import is under way Ctrl-C ends the process at once, with
one line and status 130: nothing is written then (a run's checkpoints are on disk already; a lazy
import in mid-run leaves its status.json saying ``running``, which --resume accepts). Anywhere
else it raises KeyboardInterrupt as before, so a run under way is recorded as interrupted and
names its resume command. Python's own start-up (site, .pth files) comes before this module and
keeps Python's handling.
"""
import os
import signal
import sys

INTERRUPTED = b"lamaml: interrupted\n"
_finished = False   # main has returned: a Ctrl-C while the interpreter shuts down has nothing left to stop


def _importing(frame) -> bool:
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib._bootstrap"):
            return True
        frame = frame.f_back
    return False


def _on_interrupt(signum, frame) -> None:
    if _finished or _importing(frame):
        os.write(2, INTERRUPTED)    # no print: sys.stderr may be mid-write in the code interrupted
        os._exit(130)
    raise KeyboardInterrupt


def catch_interrupts() -> None:
    """Our Ctrl-C handler in place of Python's; an ignored SIGINT (a background job's) stays ignored."""
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_interrupt)


def entry() -> int:
    global _finished
    catch_interrupts()
    try:
        from .cli import main
        return main()
    except KeyboardInterrupt:   # between imports, before main's own handling
        os.write(2, INTERRUPTED)
        return 130
    finally:
        _finished = True


if __name__ == "__main__":
    sys.exit(entry())
