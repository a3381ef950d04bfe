"""Child processes that die with the process that started them.

A ``kill -9`` gives a process no chance to stop its children. On Linux a child can ask the kernel
for a signal when its parent dies (``PR_SET_PDEATHSIG``); a tiny trampoline makes that request
in the child and then executes the real command, so any program can be tethered. A
``preexec_fn`` could make the same call, but it is unsafe in a process that runs threads.

A command that cannot be executed exits as a shell's would: 127 when it is not found, 126 when
it cannot be run, with the reason on stderr.

The signal is sent when the *thread* that started the child ends, so tethered children must be
started from a thread that lives as long as the process (the main thread).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence

# Runs in the child before the command: no site, no user environment, stdlib only (~15 ms).
# prctl option 1 is PR_SET_PDEATHSIG. If the parent died before the request took effect, the
# child is already an orphan: give up.
_TRAMPOLINE = """\
import ctypes, os, sys
if ctypes.CDLL(None, use_errno=True).prctl(1, int(sys.argv[1])) != 0:
    sys.exit("plan2flow: cannot tether to the parent process: errno %d" % ctypes.get_errno())
if os.getppid() != int(sys.argv[2]):
    sys.exit(1)
try:
    os.execvp(sys.argv[3], sys.argv[3:])
except OSError as error:
    missing = isinstance(error, FileNotFoundError)
    reason = "command not found" if missing else "cannot run it (%s)" % error.strerror
    sys.stderr.write("%s: %r\\n" % (reason, sys.argv[3]))
    os._exit(127 if missing else 126)
"""


def tethered(argv: Sequence[str], death_signal: int = signal.SIGTERM) -> list[str]:
    """`argv` run so that it receives `death_signal` when this process dies (Linux); elsewhere
    the command as it is."""
    if not sys.platform.startswith("linux"):
        return list(argv)
    parent = str(os.getpid())
    return [sys.executable, "-I", "-S", "-c", _TRAMPOLINE, str(int(death_signal)), parent, *argv]
