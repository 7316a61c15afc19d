"""Every pattern the content analyzers look for, in one table.

The compiled analyzers (``_native/content.c``) implement the protocol
state machines of kdd-features.md section 5.3 (telnet/rlogin/rsh/rexec
login sessions, FTP, POP3, IMAP, HTTP, SMTP); *what* they match is this
data.  Each group is matched one way, stated next to it.  Sources: the
gureKDD Bro policy (gure), the spec's section 5.3 recommendations (rec),
and modern equivalents the spec asks for (modern).
"""

from __future__ import annotations

import struct

from sensor import _fastpath
from sensor.features.services import TCP_SERVICES

PATTERNS: dict[str, tuple[bytes, ...]] = {
    # -- login sessions: server text (a line, or an unfinished prompt) --
    # contains
    "login_prompt": (b"login:", b"Username:", b"username:"),
    # contains
    "password_prompt": (b"Password:", b"password:", b"Passcode:"),
    # contains (gure: 'Login incorrect'; rec: 'Login failed')
    "login_failed": (b"Login incorrect", b"Login failed", b"Permission denied, please try again",
                     b"Authentication failed"),
    # starts the line: a successful login (checked before login_prompt:
    # "Last login: ... from ..." contains "login:")
    "login_banner": (b"Last login:",),
    # ends the (stripped) line: a shell prompt
    "shell_prompt": (b"$", b"#", b"%", b">"),
    # ends the (stripped) line: a root shell prompt
    "root_prompt": (b"#",),
    # contains, server lines after login (rec)
    "compromised": (b"not found", b"No such file", b"Segmentation fault", b"core dumped"),
    # contains, server lines (gure)
    "new_file": (b"[New file]",),

    # -- login sessions: client command lines --
    # the whole line (rec: su, su -, su root)
    "su_command": (b"su", b"su -", b"su root", b"su - root", b"su -l", b"su -l root", b"sudo su",
                   b"sudo -i", b"sudo -s"),
    # first word: a new shell
    "shell_command": (b"sh", b"bash", b"csh", b"tcsh", b"ksh", b"zsh", b"dash", b"/bin/sh",
                      b"/bin/bash", b"/bin/csh", b"/bin/tcsh", b"/bin/ksh", b"/bin/zsh"),
    # whole words (gure's list, plus modern: wget, curl, nc, python, perl)
    "hot_word": (b"a.out", b"auditd", b"automountd", b"cron", b"find", b"fsck", b"ftp",
                 b"in.comsat", b"inetd", b"in.ftpd", b"init", b"in.telnetd", b"kerbd", b"keyserv",
                 b"lockd", b"login", b"lp.cat", b"lpNet", b"lpsched", b"lp.tell", b"lynx", b"mail",
                 b"man", b"mlp", b"more", b"netscape", b"nscd", b"primes", b"sendmail", b"sh",
                 b"sleep", b"sshd", b"statd", b"syslogd", b"tcsh", b"telnet", b"tex", b"top",
                 b"ttymon", b"vi", b"vold", b"xntpd", b"wget", b"curl", b"nc", b"netcat"),
    # starts the line (gure: './' and '/tmp/<digits>'; the digits are checked in C)
    "hot_prefix": (b"./", b"/tmp/"),
    # contains (gure: 'cd ' unless the line mentions 'dir'; compilers)
    "hot_contains": (b"cd ", b"gcc ", b"g++ "),
    "hot_except": (b"dir",),
    # contains (gure; modern: touch, mkdir, tee, dd of=)
    "file_creation": (b"gcc ", b"g++ ", b"cp ", b"mv ", b"cat >", b"touch ", b"mkdir ", b"tee ",
                      b"dd of="),
    # contains (gure: cat /, vi, rm; modern: chmod, chown and the access-control files)
    "access_file": (b"cat /", b"vi ", b"rm ", b"chmod ", b"chown ", b"/etc/passwd", b"/etc/shadow",
                    b".rhosts", b"hosts.equiv", b"authorized_keys", b"/etc/sudoers"),
    "access_except": (b".tex",),

    # -- user names --
    # contains (gure: guest, anonymous, visitor; rec: ftp)
    "guest_user": (b"anonymous", b"guest", b"visitor", b"ftp"),
    # contains (gure and rec: root, adm)
    "host_user": (b"root", b"adm"),

    # -- FTP --
    # starts the CWD argument (rec)
    "ftp_system_dir": (b"/etc", b"/bin", b"/usr/bin", b"/sbin", b"/usr/sbin", b"~root", b"/root",
                       b"/dev"),
    # contains, in a STOR/DELE argument (rec)
    "ftp_access_file": (b".rhosts", b".forward", b"passwd", b"hosts.equiv", b"authorized_keys",
                        b"shadow"),

    # -- HTTP request lines --
    # contains (rec: phf-style CGI abuse, path traversal, password files)
    "http_hot": (b"/etc/passwd", b"/etc/shadow", b"../", b"..%2f", b"%2e%2e", b"cmd.exe", b"/bin/sh"),
    # contains: a CGI path ...
    "http_cgi": (b"/cgi-bin/",),
    # ... hot when the request line also holds one of these shell metacharacters
    "http_shell_meta": (b";", b"|", b"`", b"$(", b"%0a", b"%0A", b"%3b", b"%3B", b"%7c", b"%7C"),
}

# service -> analyzer kind (the compiled core's numbering)
ANALYZED_SERVICES: dict[str, str] = {
    "telnet": "login", "login": "rlogin", "shell": "rsh", "exec": "rexec", "ftp": "ftp",
    "pop_3": "pop3", "imap4": "imap", "http": "http", "http_8001": "http", "http_2784": "http",
    "smtp": "smtp",
}


def pattern_blob() -> bytes:
    """The groups in the compiled core's order: per group a count, then
    each pattern's length and bytes (little-endian u16s)."""
    missing = set(_fastpath.CONTENT_GROUPS) - set(PATTERNS)
    extra = set(PATTERNS) - set(_fastpath.CONTENT_GROUPS)
    if missing or extra:
        raise ValueError(f"content pattern groups out of step with the core: missing {missing}, extra {extra}")
    out = bytearray()
    for group in _fastpath.CONTENT_GROUPS:
        patterns = PATTERNS[group]
        out += struct.pack("<H", len(patterns))
        for p in patterns:
            out += struct.pack("<H", len(p)) + p
    return bytes(out)


def analyzer_ports() -> bytes:
    """65,536 bytes: the analyzer kind for each TCP responder port (0: none)."""
    kinds = {name: code for code, name in enumerate(_fastpath.ANALYZERS)}
    table = bytearray(65536)
    for service, analyzer in ANALYZED_SERVICES.items():
        for port in TCP_SERVICES[service]:
            table[port] = kinds[analyzer]
    return bytes(table)
