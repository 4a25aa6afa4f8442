"""Run a command with SIGINT default or ignored: `with-sigint.py default|ignored CMD ...`, exit with its code.

Bash cannot do this in CI: a non-interactive shell refuses to reset a signal that was ignored when it
started, and a runner may start jobs so. Python can set either disposition before the exec.
"""

import signal
import subprocess
import sys

DISPOSITIONS = {"default": signal.SIG_DFL, "ignored": signal.SIG_IGN}

if len(sys.argv) < 3 or sys.argv[1] not in DISPOSITIONS:
    sys.exit("usage: with-sigint.py default|ignored CMD ...")
signal.signal(signal.SIGINT, DISPOSITIONS[sys.argv[1]])
sys.exit(subprocess.call(sys.argv[2:], stdin=subprocess.DEVNULL))
