"""Attack names to KDD categories: the one table the sensor keeps.

The KDD Cup 1999 task scores five categories.  ``training_attack_types``
(UCI) maps the 22 attack names of the training data; the 17 names that
occur only in the test sets (``corrected``, NSL-KDD ``KDDTest+``) are
mapped here from the DARPA evaluation's own attack descriptions
(Kendall 1999, *A Database of Computer Attacks for the Evaluation of
Intrusion Detection Systems*; Lippmann et al. 2000, *The 1999 DARPA
off-line intrusion detection evaluation*), checked one by one against the
unofficial 70-name list in ``../shared/datasets``.  Decisions, with the
doubtful entries of that list, are in ``models/README.md``.
"""

from __future__ import annotations

import numpy as np

#: The KDD Cup 1999 categories, in the order of its published cost matrix.
CATEGORIES: tuple[str, ...] = ("normal", "probe", "dos", "u2r", "r2l")

_TRAINING = {
    # UCI training_attack_types, unchanged
    "back": "dos", "land": "dos", "neptune": "dos", "pod": "dos", "smurf": "dos", "teardrop": "dos",
    "ipsweep": "probe", "nmap": "probe", "portsweep": "probe", "satan": "probe",
    "buffer_overflow": "u2r", "loadmodule": "u2r", "perl": "u2r", "rootkit": "u2r",
    "ftp_write": "r2l", "guess_passwd": "r2l", "imap": "r2l", "multihop": "r2l", "phf": "r2l",
    "spy": "r2l", "warezclient": "r2l", "warezmaster": "r2l",
}
_TEST_ONLY = {
    # denial of service against a server's resources
    "apache2": "dos", "mailbomb": "dos", "processtable": "dos", "udpstorm": "dos",
    # scanners
    "mscan": "probe", "saint": "probe",
    # a local user gains root
    "ps": "u2r", "sqlattack": "u2r", "xterm": "u2r",
    # a remote user gains access (httptunnel: a covert channel set up from
    # outside; DARPA files it under remote-to-local, some papers under u2r)
    "httptunnel": "r2l", "named": "r2l", "sendmail": "r2l", "snmpgetattack": "r2l",
    "snmpguess": "r2l", "worm": "r2l", "xlock": "r2l", "xsnoop": "r2l",
}
#: Every label of the KDD Cup 1999 and NSL-KDD files -> its category.
CATEGORY_OF: dict[str, str] = {"normal": "normal", **_TRAINING, **_TEST_ONLY}
#: Attack names that never occur in the training files.
TEST_ONLY_ATTACKS: frozenset[str] = frozenset(_TEST_ONLY)


class UnknownLabelError(ValueError):
    """A label the table does not know: guessing its category would bias every figure."""


def categories_of(labels: np.ndarray) -> np.ndarray:
    """Category index (into CATEGORIES) for each label; a trailing full stop is ignored."""
    names, inverse = np.unique(np.char.rstrip(np.asarray(labels, dtype=str), "."), return_inverse=True)
    unknown = [n for n in names if n not in CATEGORY_OF]
    if unknown:
        raise UnknownLabelError(f"labels with no KDD category: {', '.join(sorted(unknown))}")
    codes = np.array([CATEGORIES.index(CATEGORY_OF[n]) for n in names], dtype=np.int64)
    return codes[inverse.reshape(-1)]
