"""What a service needs from its host: systemd's notify protocol and
dropping root.

No libsystemd: the notify protocol is one datagram to the socket named by
``$NOTIFY_SOCKET`` (``READY=1``, ``WATCHDOG=1``, ``RELOADING=1``,
``STOPPING=1``), so the sensor speaks it directly.
"""

from __future__ import annotations

import os
import pwd
import socket
import time
from pathlib import Path


def under_systemd() -> bool:
    """Started by systemd (which sets the user and capabilities itself)."""
    return "INVOCATION_ID" in os.environ or "NOTIFY_SOCKET" in os.environ


def notify(state: str) -> bool:
    """Send one notify message; False when not started with Type=notify."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(state.encode(), address)
    return True


class Watchdog:
    """Pings systemd's watchdog at half its interval, from the processing
    loop: a stuck pipeline stops the pings and systemd restarts it."""

    def __init__(self) -> None:
        usec = int(os.environ.get("WATCHDOG_USEC", "0") or 0)
        pid = os.environ.get("WATCHDOG_PID")
        enabled = usec > 0 and (pid is None or pid == str(os.getpid()))
        self.interval = usec / 2e6 if enabled else None
        self._next = 0.0

    def beat(self) -> None:
        if self.interval is None:
            return
        now = time.monotonic()
        if now >= self._next:
            notify("WATCHDOG=1")
            self._next = now + self.interval


class PrivilegeError(RuntimeError):
    """Root cannot be dropped as configured."""


def drop_root(user: str, writable: list[Path]) -> str | None:
    """Become ``user`` when running as root outside systemd, once the
    capture sockets are open (they stay usable); the paths in ``writable``
    (the webhook spool) are handed to that user first.  Returns the user
    switched to, or None when nothing was done."""
    if os.geteuid() != 0 or under_systemd():
        return None
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise PrivilegeError(
            f"user {user!r} does not exist: create it (useradd --system --no-create-home {user}) "
            "or name another in daemon.user") from None
    if entry.pw_uid == 0:
        raise PrivilegeError(f"daemon.user {user!r} is root; name an unprivileged user")
    for path in writable:
        if path.exists():
            for item in [path, *path.rglob("*")]:
                os.chown(item, entry.pw_uid, entry.pw_gid)
    os.setgroups([])
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    return user
