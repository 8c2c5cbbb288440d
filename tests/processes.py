"""The processes running here whose command line holds some text (Linux's /proc): how tests find the
runs a sweep or a launcher started."""

import os


def processes(mentioning: str, environment: str = "") -> list[int]:
    """Process ids whose command line contains ``mentioning`` and whose environment has an entry starting
    with ``environment`` (e.g. ``RANK=1``)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            command = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ")
            env = b"\0" + open(f"/proc/{pid}/environ", "rb").read()
        except OSError:
            continue
        if mentioning.encode() in command and b"\0" + environment.encode() in env:
            found.append(int(pid))
    return found
