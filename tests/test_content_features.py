"""Content features 10-22: real captures and crafted sessions."""

from __future__ import annotations

import json

import pytest
from conftest import SHARED
from craft import Conversation, records, replay, write

PCAPS = SHARED / "pcaps"
CONTENT = ("hot", "num_failed_logins", "logged_in", "num_compromised", "root_shell", "su_attempted",
           "num_root", "num_file_creations", "num_shells", "num_access_files", "num_outbound_cmds",
           "is_host_login", "is_guest_login")


def kdd(rec: dict) -> dict:
    return {k: rec["kdd"][k] for k in CONTENT}


def zeros(**nonzero) -> dict:
    return {k: nonzero.get(k, 0) for k in CONTENT}


def session(tmp_path, script, port=23, name="s.pcap", cport=40000):
    """A TCP session: handshake, then (side, bytes) exchanges, then a close.
    Side 'c' is the client, 's' the server."""
    c = Conversation(sport=port, cport=cport)
    t = c.handshake()
    for i, (side, data) in enumerate(script):
        (c.c if side == "c" else c.s)("PA", t + 0.01 * (i + 1), data)
    t += 0.01 * (len(script) + 1)
    c.c("FA", t + 0.01)
    c.s("FA", t + 0.02)
    return write(tmp_path / name, c.packets), c


# ------------------------------------------------------------------ captures


def test_telnet_capture_logs_in_to_a_shell():
    (rec,) = records(PCAPS / "ppa__telnet.pcap")
    assert rec["kdd"]["service"] == "telnet"
    assert rec["kdd"]["logged_in"] == 1 and rec["kdd"]["num_shells"] >= 1
    assert rec["kdd"]["num_failed_logins"] == 0


def test_ftp_bruteforce_capture_has_failed_logins():
    recs = records(PCAPS / "zeek__ftp-bruteforce.pcap")
    failed = [r for r in recs if r["kdd"]["num_failed_logins"] >= 1]
    assert len(failed) == 30 and all(r["kdd"]["logged_in"] == 0 for r in failed)


@pytest.mark.parametrize("capture, service", [("zeek__pop3.pcap", "pop_3"), ("zeek__smtp.pcap", "smtp")])
def test_mail_captures_log_in(capture, service):
    recs = [r for r in records(PCAPS / capture) if r["kdd"]["service"] == service]
    assert any(r["kdd"]["logged_in"] == 1 for r in recs)


def test_pop3_failed_sasl_login_is_counted():
    recs = {r["id.orig_p"]: r for r in records(PCAPS / "zeek__pop3.pcap")}
    assert recs[26284]["kdd"]["num_failed_logins"] == 1 and recs[26284]["kdd"]["logged_in"] == 0
    assert recs[26308]["kdd"]["logged_in"] == 1  # AUTH PLAIN, then +OK


def test_ssh_gives_no_content_features():
    recs = [r for r in records(PCAPS / "zeek__ssh.pcap") if r["kdd"]["service"] == "ssh"]
    assert len(recs) >= 10 and all(kdd(r) == zeros() for r in recs)


def test_passive_ftp_data_connections():
    recs = records(PCAPS / "ndpi__ftp.pcap")
    control = [r for r in recs if r["id.resp_p"] == 21]
    data = [r for r in recs if r["kdd"]["service"] == "ftp_data"]
    assert len(control) == 1 and control[0]["kdd"]["logged_in"] == 1
    assert len(data) == 2 and all(r["id.resp_p"] not in (20, 21) for r in data)  # passive ports


# ------------------------------------------------------------------ telnet


LOGIN = [("s", b"\r\nlogin: "), ("c", b"alice\r\n"), ("s", b"Password:"), ("c", b"secret\r\n"),
         ("s", b"Last login: Mon Nov 23 10:00:00 from 10.0.0.9\r\n$ ")]


def test_telnet_failed_then_successful_login(tmp_path):
    script = [("s", b"login: "), ("c", b"bob\r\n"), ("s", b"Password:"), ("c", b"wrong\r\n"),
              ("s", b"\r\nLogin incorrect\r\n"), *LOGIN]
    (rec,) = records(session(tmp_path, script)[0])
    assert kdd(rec) == zeros(num_failed_logins=1, logged_in=1, num_shells=1)


def test_telnet_intrusion_session(tmp_path):
    script = LOGIN + [
        ("c", b"cd /tmp\r\n"), ("s", b"$ "),
        ("c", b"gcc -o x exploit.c\r\n"), ("s", b"$ "),
        ("c", b"./x\r\n"), ("s", b"sh: ./x: not found\r\n$ "),
        ("c", b"cat /etc/passwd\r\n"), ("s", b"root:x:0:0::/root:/bin/sh\r\n$ "),
        ("c", b"su\r\n"), ("s", b"Password:"), ("c", b"toor\r\n"), ("s", b"\r\n# "),
        ("c", b"cp /bin/sh /tmp/.x\r\n"), ("s", b"# "),
        ("c", b"chmod 4755 /tmp/.x\r\n"), ("s", b"# "),
    ]
    (rec,) = records(session(tmp_path, script)[0])
    assert kdd(rec) == zeros(
        logged_in=1,
        hot=4,                 # cd, gcc, ./x, and sh (as /bin/sh)
        num_file_creations=2,  # gcc, cp
        num_compromised=1,     # "not found"
        num_access_files=2,    # cat /etc/passwd, chmod
        su_attempted=1,
        root_shell=1,
        num_root=2,            # cp and chmod, typed as root
        num_shells=2,          # the login shell, then su's
    )


def test_root_login_is_a_host_login_and_a_root_shell(tmp_path):
    script = [("s", b"login: "), ("c", b"root\r\n"), ("s", b"Password:"), ("c", b"x\r\n"), ("s", b"\r\n# "),
              ("c", b"ls\r\n"), ("s", b"# ")]
    (rec,) = records(session(tmp_path, script)[0])
    assert kdd(rec) == zeros(logged_in=1, is_host_login=1, root_shell=1, num_root=1, num_shells=1)


def test_telnet_options_are_stripped_from_the_login_name(tmp_path):
    # IAC WILL ECHO and IAC SB ... SE inside the typed name
    script = [("s", b"\xff\xfb\x01login: "), ("c", b"ad\xff\xfa\x18\x00xterm\xff\xf0m\r\n"),
              ("s", b"Password:"), ("c", b"x\r\n"), ("s", b"\r\n$ ")]
    (rec,) = records(session(tmp_path, script)[0])
    assert kdd(rec) == zeros(logged_in=1, is_host_login=1, num_shells=1)


def test_reassembly_out_of_order_retransmitted_and_gap(tmp_path):
    c = Conversation(sport=23)
    t = c.handshake()
    c.s("PA", t + 0.01, b"login: ")
    user = b"guest\r\n"
    base = c.cseq
    c.c("PA", t + 0.03, user[3:], seq=base + 3)      # the tail first
    c.c("PA", t + 0.04, user[:3], seq=base)          # then the head
    c.c("PA", t + 0.05, user[:5], seq=base)          # a retransmission overlapping both
    c.cseq = base + len(user)
    c.s("PA", t + 0.06, b"Password:")
    c.c("PA", t + 0.07, b"pw\r\n")
    c.s("PA", t + 0.08, b"\r\n$ ")
    lost = c.cseq
    c.cseq += len(b"cat /etc/shadow\r\n")               # this command never reaches the sensor
    c.c("PA", t + 0.09, b"cat /etc/passwd\r\n")
    c.c("FA", t + 0.2)
    c.s("FA", t + 0.21)
    (rec,) = records(write(tmp_path / "r.pcap", c.packets))
    assert kdd(rec) == zeros(logged_in=1, is_guest_login=1, num_shells=1, num_access_files=1)
    assert "T" in rec["history"] and "G" in rec["history"]
    # the lost 17 bytes still count: payload sizes come from sequence space
    assert rec["orig_bytes"] == len(user) + 4 + 17 + 17 and lost == base + len(user) + 4


def test_byte_cap_limits_what_is_read(tmp_path):
    script = LOGIN + [("c", b"cat /etc/passwd\r\n")]
    path, _ = session(tmp_path, script)
    (rec,) = records(path)
    assert rec["kdd"]["num_access_files"] == 1 and rec["kdd"]["logged_in"] == 1
    config = tmp_path / "cap.yaml"
    config.write_text("content:\n  byte_cap: 20\n")
    small = replay(path, extra=("--config", str(config)))
    assert small.returncode == 0, small.stderr
    (capped,) = [json.loads(line) for line in small.stdout.splitlines()]
    # 20 bytes a side: the client's name and password, not its command; the server's prompts, not the banner
    assert capped["kdd"]["num_access_files"] == 0 and capped["kdd"]["logged_in"] == 0


# ------------------------------------------------------------------ FTP


def test_anonymous_ftp_is_a_guest_login_with_a_file_created(tmp_path):
    script = [("s", b"220 ready\r\n"), ("c", b"USER anonymous\r\n"), ("s", b"331 Guest login ok\r\n"),
              ("c", b"PASS me@example.com\r\n"), ("s", b"230 Guest login ok\r\n"),
              ("c", b"CWD /etc\r\n"), ("s", b"250 ok\r\n"),
              ("c", b"STOR .rhosts\r\n"), ("s", b"150 Opening\r\n"), ("s", b"226 Transfer complete\r\n"),
              ("c", b"SITE EXEC /bin/sh\r\n"), ("s", b"500 no\r\n")]
    (rec,) = records(session(tmp_path, script, port=21)[0])
    assert kdd(rec) == zeros(logged_in=1, is_guest_login=1, hot=2, num_file_creations=1, num_access_files=1)


def test_a_530_before_user_is_not_a_failed_login(tmp_path):
    # lftp sends a command before USER and is told to log in first
    script = [("s", b"220 ready\r\n"), ("c", b"FEAT\r\n"), ("s", b"530 Please login with USER and PASS.\r\n"),
              ("c", b"USER carol\r\n"), ("s", b"331 Password required\r\n"), ("c", b"PASS pw\r\n"),
              ("s", b"530 Login incorrect.\r\n"), ("c", b"USER carol\r\n"), ("s", b"331 Password required\r\n"),
              ("c", b"PASS right\r\n"), ("s", b"230 Logged in\r\n")]
    (rec,) = records(session(tmp_path, script, port=21)[0])
    assert kdd(rec) == zeros(num_failed_logins=1, logged_in=1)


def test_epsv_announces_a_data_connection(tmp_path):
    script = [("s", b"220 ready\r\n"), ("c", b"EPSV\r\n"), ("s", b"229 Entering Extended Passive Mode (|||50123|)\r\n")]
    control, c = session(tmp_path, script, port=21)
    data = Conversation(sport=50123, cport=40001)
    t = data.handshake(1.0)
    data.s("PA", t + 0.01, b"file contents")
    data.s("FA", t + 0.02)
    data.c("FA", t + 0.03)
    recs = records(write(tmp_path / "both.pcap", c.packets + data.packets))
    assert [r["kdd"]["service"] for r in recs] == ["ftp", "ftp_data"]


# ------------------------------------------------------------------ HTTP, SMTP


def test_http_status_and_hot_requests(tmp_path):
    script = [("c", b"GET /cgi-bin/phf?Qalias=x%0a/bin/cat%20/etc/passwd HTTP/1.0\r\n\r\n"),
              ("s", b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nroot:x:0:0\r\n")]
    (rec,) = records(session(tmp_path, script, port=80)[0])
    assert kdd(rec) == zeros(logged_in=1, hot=1)


def test_http_error_status_is_not_logged_in(tmp_path):
    script = [("c", b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n"), ("s", b"HTTP/1.1 404 Not Found\r\n\r\n")]
    (rec,) = records(session(tmp_path, script, port=80)[0])
    assert kdd(rec) == zeros()


def test_smtp_helo_logs_in_and_the_body_is_not_read(tmp_path):
    script = [("s", b"220 mx ESMTP\r\n"), ("c", b"EHLO client\r\n"), ("s", b"250-mx\r\n250 OK\r\n"),
              ("c", b"DATA\r\n"), ("s", b"354 go\r\n"), ("c", b"cd /tmp; gcc x.c\r\n.\r\n"), ("s", b"250 queued\r\n")]
    (rec,) = records(session(tmp_path, script, port=25)[0])
    assert kdd(rec) == zeros(logged_in=1)
