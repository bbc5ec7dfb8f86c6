"""A server process's life at its edges: how it ends, and, for a worker, how it stays tied to
the supervisor that started it."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import threading

PR_SET_PDEATHSIG = 1


def exit_without_stuck_threads() -> None:
    """Exit now if a thread is still running after the drain (a hung model's batch): Python
    would otherwise wait for it at exit, and SIGTERM would never end the server."""
    stuck = [
        thread.name
        for thread in threading.enumerate()
        if thread is not threading.main_thread() and not thread.daemon and thread.is_alive()
    ]
    if stuck:
        logging.getLogger("inferd.server").error(
            "exiting with %d thread(s) still running: %s", len(stuck), ", ".join(stuck)
        )
        logging.shutdown()
        os._exit(0)


def follow_parent(parent: int) -> None:
    """Tie this worker to its supervisor: its own process group, so a terminal's Ctrl+C
    reaches only the supervisor (which then drains every worker once), and SIGTERM when the
    supervisor dies, even by SIGKILL (Linux), so no worker outlives it holding the port."""
    os.setpgrp()
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before the line above took effect
        os.kill(os.getpid(), signal.SIGTERM)
