"""IMAP4rev1 (RFC 3501) on pymap, the server a mail client expects, with the rules a national service adds.

Why pymap: a maintained, pure-Python asyncio IMAP server (MIT) whose parser and in-memory backend give every
RFC 3501 command, full FETCH (BODYSTRUCTURE, ENVELOPE, sections, partials, ``HEADER.FIELDS[.NOT]``, ``MIME``) and
SEARCH, synchronising literals and ``LITERAL+``, IDLE, UIDPLUS, MOVE, CHILDREN, and per-session views of a
mailbox (untagged ``EXISTS``, ``EXPUNGE``, ``FETCH``). Twisted's ``imap4`` would bring a second event loop, and
no other maintained Python IMAP server exists. What pymap lacks and is added here:

* SASL ``OAUTHBEARER`` and the bearer-token error challenge (:mod:`.sasl`), ``SASL-IR`` (RFC 4959), TLS before
  any authentication, even on loopback (pymap allows loopback clients in clear);
* ``NAMESPACE`` (RFC 2342), ``UNSELECT`` (RFC 3691), ``ENABLE`` (RFC 5161, nothing to enable), ``SPECIAL-USE``
  attributes (RFC 6154) on ``LIST``;
* a ``BAD`` for a sequence number past the mailbox's end (RFC 9051 §6.4.5), where pymap answers ``OK``;
* bounded lines, literals and nesting, each answered ``BAD`` with the session kept (pymap ends the session on
  the first, and overflows the stack on deep parentheses);
* the session's transcript in the core journal, and the service's hooks (:class:`ImapRules`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from argparse import Namespace
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Final, Protocol

from proxyprotocol.reader import ProxyProtocolReader
from proxyprotocol.sock import SocketInfo
from pymap.backend.dict import Session as DictSession
from pymap.backend.dict.filter import FilterSet
from pymap.config import BackendCapability, IMAPConfig
from pymap.context import connection_exit, current_command
from pymap.exceptions import InvalidAuth, NotSupportedError, ResponseError
from pymap.imap import IMAPConnection
from pymap.imap.state import ConnectionState
from pymap.interfaces.login import IdentityInterface, LoginInterface
from pymap.parsing import EndLine, Params, Space
from pymap.parsing.command import Command, CommandAuth, CommandNoArgs, CommandSelect
from pymap.parsing.command.nonauth import AuthenticateCommand
from pymap.parsing.commands import Commands
from pymap.parsing.exceptions import NotParseable
from pymap.parsing.primitives import Atom
from pymap.parsing.response import (
    CommandResponse,
    Response,
    ResponseBad,
    ResponseBye,
    ResponseCode,
    ResponseContinuation,
    ResponseNo,
    ResponseOk,
    UntaggedResponse,
)
from pymap.parsing.state import ParsingInterrupt, ParsingState
from pymap.selected import SelectedMailbox
from pysasl.creds.external import ExternalCredentials
from pysasl.creds.server import ServerCredentials
from pysasl.exception import AuthenticationError
from pysasl.hashing import BuiltinHash

from esante.simulators.core.journal import Session
from esante.simulators.kits.mail import sasl
from esante.simulators.kits.mail.rules import MailRules
from esante.simulators.kits.mail.store import SPECIAL_USE, MailStore

MAX_LINE: Final = 64 * 1024          # one command line, literals apart
MAX_LITERAL_PLUS: Final = 32 * 1024 * 1024  # one non-synchronising literal (an APPEND's message)
MAX_LITERALS: Final = 64             # literals in one command
MAX_NESTING: Final = 32              # parentheses inside one command
IDLE_TIMEOUT: Final = 30 * 60.0      # RFC 3501 §5.4: at least 30 minutes of inactivity before autologout
_LITERAL_PLUS = re.compile(rb"\{(\d{1,20})\+\}\r?\n$")


class ImapRules(MailRules, Protocol):
    """What a service decides for one IMAP connection; the kit asks at each step."""

    def authenticated(self) -> bool:
        """Called once a mailbox is open; True drops the connection there (a fault)."""

    def command(self, name: str, authenticated: bool) -> str | None:
        """Called before each command (``UID FETCH``...); a reason to end the session now (``BYE``), or None."""


class _Refused(ResponseError):
    """A response the kit gives instead of running a command."""

    def __init__(self, response: Callable[[bytes], Response]) -> None:
        super().__init__()
        self.response = response

    def get_response(self, tag: bytes) -> Response:
        return self.response(tag)


class _LineRefused(Exception):
    def __init__(self, tag: bytes, reason: bytes, *, close: bool = False) -> None:
        super().__init__(reason)
        self.tag, self.reason, self.close = tag, reason, close


# -- commands pymap lacks ---------------------------------------------------------------------------------------
class SaslIrAuthenticate(AuthenticateCommand):
    """``AUTHENTICATE <mechanism> [<initial response>]`` (RFC 4959 SASL-IR; ``=`` is an empty response)."""

    def __init__(self, tag: bytes, mech_name: bytes, initial: bytes | None = None) -> None:
        super().__init__(tag, mech_name)
        self.initial = initial

    @classmethod
    def parse(cls, buf: memoryview, params: Params) -> tuple[SaslIrAuthenticate, memoryview]:
        _, buf = Space.parse(buf, params)
        mechanism, buf = Atom.parse(buf, params)
        initial = None
        try:
            _, after = Space.parse(buf, params)
            response, buf = Atom.parse(after, params)
            initial = response.value
        except NotParseable:
            pass
        _, buf = EndLine.parse(buf, params)
        return cls(params.tag, mechanism.value.upper(), initial), buf


class NamespaceCommand(CommandNoArgs, CommandAuth):
    command = b"NAMESPACE"


class UnselectCommand(CommandNoArgs, CommandSelect):
    command = b"UNSELECT"


class EnableCommand(CommandAuth):
    """``ENABLE`` (RFC 5161): no extension needs enabling here, so none is."""

    command = b"ENABLE"

    @classmethod
    def parse(cls, buf: memoryview, params: Params) -> tuple[EnableCommand, memoryview]:
        _, buf = Space.parse(buf, params)
        _, buf = Atom.parse(buf, params)
        while True:
            try:
                _, after = Space.parse(buf, params)
                _, buf = Atom.parse(after, params)
            except NotParseable:
                break
        _, buf = EndLine.parse(buf, params)
        return cls(params.tag), buf


# -- configuration, login, session ------------------------------------------------------------------------------
class MailImapConfig(IMAPConfig):
    """pymap's settings for these servers: the TLS context, the SASL mechanisms, the capabilities."""

    def __init__(self, tls: Any, greeting: str, vendor: str) -> None:
        args = Namespace(debug=False, passlib_cfg=None, proxy_protocol=None)
        super().__init__(args, host=None, port=0, ssl_context=tls, invalid_user_sleep=0.0, reject_dnsbl=False,
                         hash_context=BuiltinHash(), max_append_len=MAX_LITERAL_PLUS, bad_command_limit=20)
        self._greeting, self._vendor = greeting, vendor

    @property
    def backend_capability(self) -> BackendCapability:
        return BackendCapability(idle=True, object_id=False, multi_append=True,
                                 custom=[b"NAMESPACE", b"UNSELECT", b"ENABLE", b"SPECIAL-USE"])

    @property
    def initial_capability(self) -> Sequence[bytes]:
        return [*super().initial_capability, b"SASL-IR"]

    @property
    def tls_auth(self) -> Any:
        return sasl.mechanisms()

    @property
    def greeting(self) -> bytes:
        return self._greeting.encode()

    @property
    def id_response(self) -> dict[bytes, bytes]:
        return {b"name": self._greeting.encode(), b"vendor": self._vendor.encode()}

    @property
    def commands(self) -> Commands:
        commands = Commands()
        for command in (SaslIrAuthenticate, NamespaceCommand, UnselectCommand, EnableCommand):
            commands.register(command)
        return commands


class VerifiedCredentials(ExternalCredentials):
    """The mailbox the service's rules opened; pymap's login takes it as it is."""


class StoreSession(DictSession):
    """pymap's in-memory session on one address's folders, listing the special-use attributes."""

    async def list_mailboxes(self, ref_name: str, filter_: str, subscribed: bool = False,
                             selected: SelectedMailbox | None = None) -> Any:
        found, updates = await super().list_mailboxes(ref_name, filter_, subscribed, selected)
        return [(name, sep, [*attrs, *([SPECIAL_USE[name]] if name in SPECIAL_USE else [])])
                for name, sep, attrs in found], updates


class StoreIdentity(IdentityInterface):
    def __init__(self, address: str, store: MailStore, config: MailImapConfig) -> None:
        self.address, self.store, self.config = address, store, config

    @property
    def name(self) -> str:
        return self.address

    @property
    def roles(self) -> frozenset[str]:
        return frozenset()

    @asynccontextmanager
    async def new_session(self) -> AsyncIterator[StoreSession]:
        folders = await self.store.folders(self.address)
        yield StoreSession(self.address, self.config, folders, FilterSet())  # type: ignore[arg-type]

    async def new_token(self, *, expiration: Any = None) -> str | None:
        return None

    async def get(self) -> Any:
        raise NotSupportedError("no user metadata")

    async def set(self, metadata: Any) -> int | None:
        raise NotSupportedError("no user metadata")

    async def delete(self) -> None:
        raise NotSupportedError("no user metadata")


class StoreLogin(LoginInterface):
    """Opens the mailbox the connection verified (:class:`VerifiedCredentials`); nothing else."""

    def __init__(self, store: MailStore, config: MailImapConfig) -> None:
        self.store, self.config = store, config

    @property
    def tokens(self) -> Any:
        raise NotSupportedError("no login tokens")

    async def authenticate(self, credentials: ServerCredentials) -> StoreIdentity:
        if not isinstance(credentials, VerifiedCredentials):
            raise InvalidAuth()
        return StoreIdentity(credentials.authzid, self.store, self.config)

    async def authorize(self, authenticated: IdentityInterface, authzid: str) -> IdentityInterface:
        return authenticated


# -- the connection ---------------------------------------------------------------------------------------------
class MailImapState(ConnectionState):
    """pymap's command flow, with TLS before authentication, the added commands and the service's hooks."""

    def __init__(self, login: StoreLogin, config: MailImapConfig, rules: ImapRules,
                 drop: Callable[[], None]) -> None:
        super().__init__(login, config)
        self.rules, self.drop = rules, drop

    async def do_greeting(self) -> CommandResponse:
        refusal = self.rules.refusal()
        if refusal:
            raise _Refused(lambda tag: ResponseBye(refusal.encode(), ResponseCode.of(b"UNAVAILABLE")))
        return ResponseOk(b"*", self.config.greeting, self.capability)  # no clear-text login, even on loopback

    async def do_authenticate(self, cmd: Any, creds: ServerCredentials | None) -> CommandResponse:
        response = await super().do_authenticate(cmd, creds)
        if self.rules.authenticated():
            self.drop()
            raise ConnectionResetError("dropped by a fault rule")
        return response

    async def do_command(self, cmd: Command) -> CommandResponse:
        if isinstance(cmd, _RefusedLine):
            response = ResponseBad(cmd.tag, cmd.reason)
            if cmd.close:
                response.add_untagged(ResponseBye(b"Closing the connection."))
            return response
        ended = self.rules.command(_name(cmd), self._session is not None)
        if ended:
            raise _Refused(lambda tag: ResponseBye(ended.encode(), ResponseCode.of(b"ALERT")))
        beyond = self._beyond_end(cmd)
        if beyond:
            return ResponseBad(cmd.tag, beyond)
        return await super().do_command(cmd)

    def _beyond_end(self, cmd: Command) -> bytes | None:
        """RFC 9051 §6.4.5: a sequence number past the last message is a BAD (pymap answers OK)."""
        numbers = getattr(cmd, "sequence_set", None)
        if numbers is None or numbers.uid or self._selected is None:
            return None
        exists = self._selected.messages.exists
        highest = max((v for e in numbers.value for v in (e if isinstance(e, tuple) else (e,))
                       if isinstance(v, int)), default=0)
        return b"Invalid message sequence number: %d (%d messages)." % (highest, exists) if highest > exists \
            else None

    async def do_starttls(self, cmd: Any) -> Any:
        refusal = self.rules.starttls_refusal()
        if refusal:
            return ResponseNo(cmd.tag, refusal.encode(), ResponseCode.of(b"UNAVAILABLE")), None
        if b"STARTTLS" not in self._capability:
            return ResponseBad(cmd.tag, b"TLS is already active."), None
        return await super().do_starttls(cmd)

    async def do_namespace(self, cmd: NamespaceCommand) -> tuple[CommandResponse, None]:
        response = ResponseOk(cmd.tag, b"NAMESPACE completed.")
        response.add_untagged(UntaggedResponse(b'NAMESPACE (("" "/")) NIL NIL'))
        return response, None

    async def do_unselect(self, cmd: UnselectCommand) -> tuple[CommandResponse, None]:
        self._selected = None
        return ResponseOk(cmd.tag, b"UNSELECT completed."), None

    async def do_enable(self, cmd: EnableCommand) -> tuple[CommandResponse, None]:
        response = ResponseOk(cmd.tag, b"ENABLE completed.")
        response.add_untagged(UntaggedResponse(b"ENABLED"))
        return response, None


def _name(cmd: Command) -> str:
    name = cmd.command.decode("ascii", "replace")
    return f"UID {name}" if getattr(cmd, "uid", False) and not name.startswith("UID") else name


class _RefusedLine(Command):
    """A command line refused before parsing (too long, nested too deep): answered BAD, the session kept."""

    command = b"[REFUSED]"

    def __init__(self, tag: bytes, reason: bytes, *, close: bool = False) -> None:
        super().__init__(tag)
        self.reason, self.close = reason, close

    @classmethod
    def parse(cls, buf: memoryview, params: Params) -> tuple[Command, memoryview]:  # pragma: no cover
        raise NotImplementedError


class _Recorder:
    """The connection's writer, copying what the server says into the journal."""

    def __init__(self, writer: asyncio.StreamWriter, record: Session) -> None:
        self._writer, self._record = writer, record

    def write(self, data: bytes) -> None:
        self._record.said(bytes(data))
        self._writer.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._writer, name)


class MailImapConnection(IMAPConnection):
    """pymap's connection, reading with bounds, journaling both directions, authenticating with the service."""

    def __init__(self, config: MailImapConfig, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 sock_info: SocketInfo, rules: ImapRules) -> None:
        super().__init__(config.commands, config, reader, _Recorder(writer, rules.record), sock_info)  # type: ignore[arg-type]
        self.rules = rules

    # -- reading, bounded ------------------------------------------------------------------------------------
    async def _line(self) -> bytes:
        try:
            line = await asyncio.wait_for(self.reader.readuntil(b"\n"), IDLE_TIMEOUT)
        except TimeoutError:
            await self.write_response(ResponseBye(b"Autologout: idle for too long."))
            raise EOFError() from None
        except asyncio.IncompleteReadError as partial:
            self.rules.record.heard(partial.partial)
            raise EOFError() from None
        except asyncio.LimitOverrunError as overrun:
            head = await self.reader.readexactly(overrun.consumed)
            await self._discard_line()
            raise _LineRefused(_tag(head), b"Command line too long (at most %d bytes)." % MAX_LINE) from None
        self.rules.record.heard(line)
        return line

    async def _discard_line(self) -> None:
        while True:
            try:
                await self.reader.readuntil(b"\n")
                return
            except asyncio.LimitOverrunError as error:
                await self.reader.readexactly(error.consumed)
            except asyncio.IncompleteReadError:
                raise EOFError() from None

    async def _literal(self, length: int) -> bytes:
        data = await self.reader.readexactly(length)
        self.rules.record.heard(data)
        return data

    async def readline(self) -> memoryview:
        buf = bytearray(await self._line())
        literals = 0
        while True:
            plus = _LITERAL_PLUS.search(buf[-32:])
            if not plus:
                return memoryview(buf)
            literals += 1
            length = int(plus.group(1))
            if length > MAX_LITERAL_PLUS or literals > MAX_LITERALS:
                # RFC 7888 §4: refused, and the connection closed rather than the promised octets read
                raise _LineRefused(_tag(buf), b"[TOOBIG] Literal too large or too many literals.", close=True)
            buf += await self._literal(length)
            buf += await self._line()

    async def read_continuation(self, literal_length: int) -> memoryview:
        literal = await self._literal(literal_length)
        return memoryview(literal + bytes(await self.readline()))

    async def read_command(self, state: ConnectionState) -> Command:
        try:
            line = await self.readline()
        except _LineRefused as refused:
            return _RefusedLine(refused.tag, refused.reason, close=refused.close)
        if _nesting(line) > MAX_NESTING:
            return _RefusedLine(_tag(line), b"Parentheses nested too deep (at most %d)." % MAX_NESTING)
        continuations: list[memoryview] = []
        while True:
            params = self.params.copy(ParsingState(continuations=continuations))
            try:
                command, _ = self.commands.parse(line, params)
                return command
            except ParsingInterrupt as interrupt:
                if len(continuations) >= MAX_LITERALS:
                    return _RefusedLine(_tag(line), b"Too many literals.")
                await self._interrupt(state, interrupt, continuations)
            except RecursionError:
                return _RefusedLine(_tag(line), b"Command nested too deep.")

    # -- TLS, authentication -----------------------------------------------------------------------------------
    async def start_tls(self) -> None:
        await super().start_tls()
        self.rules.tls_started()

    async def authenticate(self, state: ConnectionState, mech_name: bytes) -> ServerCredentials | None:
        cmd = current_command.get()
        self.rules.command("AUTHENTICATE", False)  # pymap runs it outside do_command
        if state.auth.get_server(mech_name) is None:
            if not state.auth.server_mechanisms:  # nothing is offered before STARTTLS
                raise _Refused(lambda tag: ResponseNo(tag, b"Authentication needs TLS: STARTTLS first.",
                                                      ResponseCode.of(b"PRIVACYREQUIRED")))
            raise _Refused(lambda tag: ResponseNo(tag, b"Unsupported mechanism.", ResponseCode.of(b"CANNOT")))
        mechanism = mech_name.decode()
        response = await self._response(getattr(cmd, "initial", None))
        try:
            found, problem = sasl.credentials(mechanism, response), ""
        except sasl.SaslError as exc:
            found, problem = None, str(exc)
        address = await self.rules.verify(mechanism, found, self._certificate(), problem)
        if address is None:
            await self._error_challenge(mechanism)
            raise _Refused(lambda tag: ResponseNo(tag, b"Authentication failed.",
                                                  ResponseCode.of(b"AUTHENTICATIONFAILED")))
        return VerifiedCredentials(address)

    async def _response(self, initial: bytes | None) -> bytes:
        if initial is None:
            await self.write_response(ResponseContinuation(b""))
            initial = bytes(await self.readline()).rstrip(b"\r\n")
            if initial == b"*":
                raise AuthenticationError("Authentication cancelled.")
        elif initial == b"=":
            return b""
        try:
            return base64.b64decode(initial, validate=True)
        except binascii.Error:
            raise AuthenticationError("The response is not base64.") from None

    async def _error_challenge(self, mechanism: str) -> None:
        challenge = sasl.error_challenge(mechanism)
        if challenge is not None:  # RFC 7628 §3.2.2: the client answers it (with ^A), then the server fails
            await self.write_response(ResponseContinuation(base64.b64encode(challenge)))
            await self.readline()

    def _certificate(self) -> bytes | None:
        ssl_object = self.writer.get_extra_info("ssl_object")
        return ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None


def _tag(line: bytes | memoryview) -> bytes:
    tag = bytes(line[:64]).split(b" ", 1)[0].strip()
    return tag if tag and re.fullmatch(rb"[!#$&'+,\-./0-9:;<=>?@A-Z\[^_`a-z|}~]+", tag) else b"*"


def _nesting(line: memoryview) -> int:
    """The deepest parenthesis nesting of a command line, quoted strings apart (one linear pass)."""
    depth = deepest = 0
    quoted = escaped = False
    for byte in bytes(line):
        if quoted:
            quoted, escaped = (byte != 0x22 or escaped), (byte == 0x5C and not escaped)
        elif byte == 0x22:
            quoted = True
        elif byte == 0x28:
            depth += 1
            deepest = max(deepest, depth)
        elif byte == 0x29:
            depth -= 1
    return deepest


# -- the server ---------------------------------------------------------------------------------------------------
class ImapServer:
    """``asyncio.start_server``'s callback: one pymap connection per client, with the service's rules."""

    def __init__(self, store: MailStore, config: MailImapConfig, rules: Callable[[], ImapRules]) -> None:
        self.store, self.config, self.rules = store, config, rules
        self.login = StoreLogin(store, config)
        self.callback = ProxyProtocolReader(config.proxy_protocol).get_callback(self._serve)

    async def start(self, host: str, port: int) -> asyncio.AbstractServer:
        self.config.apply_context()
        return await asyncio.start_server(self.callback, host, port, limit=MAX_LINE)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, info: SocketInfo) -> None:
        rules = self.rules()
        rules.opened(writer.get_extra_info("peername"))
        connection = MailImapConnection(self.config, reader, writer, info, rules)
        state = MailImapState(self.login, self.config, rules, lambda: writer.transport.abort())
        outcome = "answered"
        try:
            async with AsyncExitStack() as stack:
                connection_exit.set(stack)
                await connection.run(state)
        except (ConnectionError, EOFError):
            outcome = "dropped"
        except Exception as exc:  # a bug here or in pymap: pymap said BYE [SERVERBUG]; the evidence says what
            outcome = "error"
            rules.record.notes.exception = f"{type(exc).__name__}: {exc}"
        finally:
            rules.record.close(outcome)
            writer.close()
