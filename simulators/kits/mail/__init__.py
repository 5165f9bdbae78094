"""Mail kit: SMTP submission and IMAP servers over one message store, written once for any simulated mail
operator (today MSSanté), which adds its own rules through the hooks of :class:`~.rules.MailRules` (and
:class:`~.imap.ImapRules`).

:mod:`.imap` IMAP4rev1 on pymap; :mod:`.smtp` submission on aiosmtpd; :mod:`.sasl` XOAUTH2, OAUTHBEARER and
EXTERNAL on pysasl; :mod:`.store` the shared store (pymap's in-memory backend); :mod:`.bounds` the MIME
structure bounds checked before any parser; :mod:`.worker` CPU work off the event loop, with a deadline;
:mod:`.structure` ENVELOPE and BODYSTRUCTURE as RFC 3501 writes them; :mod:`.servers` both servers on an event
loop of their own thread. Import from the modules.
"""
