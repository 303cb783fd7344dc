"""Answer the reporter: what we recognised, or why nothing could be used.

Hostile mail arrives unattended, so the rule is to answer less rather than
more. The package is cut along its concerns:

- :mod:`.policy`: who may be answered (RFC 3834: bounces, auto-replies, lists and
  bulk mail, robots; mail loops, including an ``X-Loop`` naming one of our
  addresses; the ``never`` list of robot senders of reports); pure, no state.
- :mod:`.state`: at most one answer per recipient per ``period``, never two answers
  to the same message (the MTA retries a whole message after a transient failure);
  a small SQLite file of its own.
- :mod:`.templates`: ``${...}`` templates and the values that fill them.
- :mod:`.transport`: SMTP (STARTTLS, AUTH), sendmail, or a dry-run folder; each takes
  an ``EmailMessage`` and an ``Envelope``, so other senders reuse them.
- :mod:`.processor`: the processor tying them together.

The run output says in words who was answered or why not (``report.notes["mailer"]``
is a :class:`~abuso.processors.base.Note`: fields for JSON, a sentence for text and explain),
e.g. ``answered security@victim.example.com (good response)`` or
``not answered: summary@spamcop.net is a robot sender (never list: summary@spamcop.net)``.

Options::

    from: Abuse Desk <abuse@example.net>   # required; also the loop headers and Message-ID domain
    good: etc/good-response.txt            # valid reports (omit: no answer to them)
    bad: etc/bad-response.txt              # reports without incidents (omit: no answer)
    ours: [abuse@example.org]              # more addresses of ours: mail naming them in X-Loop is a loop
    never: [updates@reports.example]       # robot senders never answered, added to the built-in list
    never_builtin: true                    # false: only the never list above (policy.DEFAULT_NEVER)
    smtp: localhost:25                     # or [::1]:587; or instead: sendmail: /usr/sbin/sendmail
    starttls: false                        # required before AUTH to a remote host; never falls back
    cafile: /etc/ssl/our-ca.pem            # to verify the server (default: system CAs)
    user: abuso                            # AUTH, with password_file (first line is the password)
    password_file: /etc/abuso/smtp.pw
    timeout: 30                            # seconds, SMTP or sendmail
    envelope_from: <>                      # RFC 3834 3.3: the null sender, or an address for bounces
    period: 1d                             # one answer per recipient per period; 0: no limit
    state: ~/abuso/mailer.sqlite
    dry_run: answers/                      # write .eml files there instead of sending (state applies)
    max_rows: 50                           # incidents and dropped addresses listed at most
    authserv_id: mx.example.net            # answer only senders our MTA saw pass SPF/DKIM/DMARC
"""

from __future__ import annotations

from .policy import ID_PREFIX, LOOP_HEADER
from .processor import MailerProcessor
from .templates import clean
from .transport import parse_hostport

__all__ = ["MailerProcessor", "LOOP_HEADER", "ID_PREFIX", "parse_hostport", "clean"]
