"""Fork server for the SIGKILL test (run as a script, not collected by pytest).

It imports convscope once, then for each ``fork PATH PROGRESS START`` line on stdin forks
a child that saves checkpoints in a loop (versions START+1, START+2, ...) and appends each
finished version to PROGRESS; it prints the child's pid. ``reap PID`` waits for a killed
child and prints ``reaped``. Forking from here keeps each iteration free of Python's
start-up and import time.
"""

import os
import sys

import numpy as np

from convscope.io.npz import save_checkpoint


def arrays_for(version: int) -> dict:
    return {
        "a": np.full(150_000, version, dtype=np.int64),
        "b": np.full((128, 128), version, dtype=np.float32),
        "c": np.full(5, version, dtype=np.int16),
    }


def save_forever(path: str, progress: str, start: int) -> None:
    fd = os.open(progress, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    version = start
    while True:
        version += 1
        save_checkpoint(path, arrays_for(version), {"version": version})
        os.write(fd, f"{version}\n".encode())  # one small write: all or nothing


def main() -> None:
    for line in sys.stdin:
        command, *args = line.split()
        if command == "fork":
            path, progress, start = args
            pid = os.fork()
            if pid == 0:
                try:
                    save_forever(path, progress, int(start))
                finally:
                    os._exit(1)
            print(pid, flush=True)
        elif command == "reap":
            os.waitpid(int(args[0]), 0)
            print("reaped", flush=True)


if __name__ == "__main__":
    main()
