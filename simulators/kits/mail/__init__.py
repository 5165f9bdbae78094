"""Mail kit: SMTP submission and IMAP servers over one message store, written once for any simulated mail
operator (today MSSanté), which adds its own rules through the hooks of :class:`~.imap.ImapRules` and
:class:`~.smtp.SubmissionRules`.

:mod:`.imap` IMAP4rev1 on pymap; :mod:`.smtp` submission on aiosmtpd; :mod:`.sasl` XOAUTH2, OAUTHBEARER and
EXTERNAL on pysasl; :mod:`.store` the shared store (pymap's in-memory backend); :mod:`.bounds` the MIME
structure bounds checked before any parser; :mod:`.worker` CPU work off the event loop, with a deadline;
:mod:`.servers` both servers on an event loop of their own thread. Import from the modules.
"""
