"""Background normal use for the whole run: a few users browsing, looking
names up, fetching files and logging in, while the phases run.

The phases' own normal use (phases.py) exercises each service once, in
a quiet lab; that is a few dozen connections, too few to measure a
false-positive rate, and never shows normal traffic to a server under
attack.  The workday does both: each user is a thread that picks an
action by weight, runs it with the real tool, and waits an exponential
think time.  Choices come from a seeded generator, so two runs ask for
the same things in the same order; only the timing is the machine's.

The workday is one label line (``workday``, normal) whose window is the
whole run and whose parties are the users and the server; no attack's
parties include a user, so labels.py never confuses the two.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

from phases import SERVER, TELNET_SCRIPT, ftp_fetch, ssh_login, write_telnet_script
from services import PAGES
from topology import SUBNET, Topology

USERS = range(21, 27)             # user21 ... user26
THINK = 1.0                       # mean seconds between one user's actions
NAMES = ["lab.test", "www.lab.test", "mail.lab.test", "nothere.lab.test"]


def _web(lab: Topology, host: str, rng: random.Random, work: Path) -> None:
    # one connection fetches one to four pages (keep-alive), as a browser does
    pages = rng.sample(PAGES, rng.randint(1, 4))
    if rng.random() < 0.05:
        pages.append("/missing.html")
    lab.run(host, "curl", "-s", *(a for p in pages for a in ("-o", "/dev/null", f"http://{SERVER}{p}")), timeout=10)


def _dns(lab: Topology, host: str, rng: random.Random, work: Path) -> None:
    lab.run(host, "dig", f"@{SERVER}", "+time=1", "+tries=1", rng.choice(NAMES), timeout=5)


def _ftp(lab: Topology, host: str, rng: random.Random, work: Path) -> None:
    ftp_fetch(lab, host, active=rng.random() < 0.5)


def _ssh(lab: Topology, host: str, rng: random.Random, work: Path) -> None:
    ssh_login(lab, host, rng.choice(["uptime", "ls -la /tmp", "df -h; free -m", "id"]))


def _ping(lab: Topology, host: str, rng: random.Random, work: Path) -> None:
    lab.run(host, "ping", "-c", str(rng.randint(1, 4)), "-i", "0.2", SERVER, timeout=5)


def _telnet(lab: Topology, host: str, rng: random.Random, work: Path) -> None:
    lab.run(host, "expect", str(work / TELNET_SCRIPT), timeout=30)


ACTIONS = [(_web, 55), (_dns, 25), (_ftp, 8), (_ssh, 5), (_ping, 5), (_telnet, 2)]


class Workday:
    """The users' threads; ``stop()`` waits for every action in flight."""

    def __init__(self, lab: Topology, work: Path, seed: int = 1999):
        self.lab, self.work, self.seed = lab, work, seed
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.start_time = self.end_time = 0.0
        self.actions = [0] * len(USERS)

    @staticmethod
    def hosts() -> list[tuple[str, int]]:
        return [(f"user{octet}", octet) for octet in USERS]

    def start(self) -> None:
        write_telnet_script(self.work)
        self.start_time = time.time()
        for i, (name, _) in enumerate(self.hosts()):
            thread = threading.Thread(target=self._user, args=(i, name, random.Random(self.seed * 100 + i)),
                                      name=f"lab-{name}", daemon=True)
            thread.start()
            self.threads.append(thread)

    def stop(self) -> dict:
        """Stop the users; returns the workday's label line."""
        self.stopping.set()
        for thread in self.threads:
            thread.join(40)
        self.end_time = time.time()
        return {"phase": "workday", "label": "normal", "category": "normal", "start": self.start_time,
                "end": self.end_time, "parties": [*(f"{SUBNET}.{o}" for _, o in self.hosts()), SERVER]}

    def _user(self, index: int, host: str, rng: random.Random) -> None:
        actions, weights = zip(*ACTIONS)
        while not self.stopping.wait(rng.expovariate(1 / THINK)):
            rng.choices(actions, weights)[0](self.lab, host, rng, self.work)
            self.actions[index] += 1
