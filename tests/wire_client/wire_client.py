"""A minimal Relay wire-protocol client, written from docs/wire-protocol.md.

Standard library only. Speaks protocol version 1 over a connected stream
socket (uds, or tcp after authentication): handshake, lookup, messages,
monitor/down. Section numbers refer to docs/wire-protocol.md.
"""

import os
import select
import socket
import struct
import time

# -- section 2: frames --------------------------------------------------------

MAGIC = b"RLAY"
VERSION = 1
HEADER_SIZE = 12
MAX_BODY = 16 * 1024 * 1024  # relay.max-frame-size default

HELLO, REJECT, MESSAGE, MONITOR, DOWN, LINK, UNLINK, LOOKUP, LOOKUP_REPLY, \
    HEARTBEAT, RETIRE, ACK, RESUME, GOODBYE, PROBE, PROBE_REPLY = range(1, 17)

# RETIRE (section 4.1) only ever comes on a second connection between the
# same two identities; this client uses one connection per identity, so a
# retire it receives is an unexpected frame.
KIND_NAMES = {HELLO: "hello", REJECT: "reject", MESSAGE: "message",
              MONITOR: "monitor", DOWN: "down", LINK: "link", UNLINK: "unlink",
              LOOKUP: "lookup", LOOKUP_REPLY: "lookup_reply",
              HEARTBEAT: "heartbeat", RETIRE: "retire", PROBE: "probe",
              PROBE_REPLY: "probe_reply"}

# -- section 3: actor ref tags ------------------------------------------------

TAG_NULL, TAG_SENDER_NODE, TAG_RECEIVER_NODE, TAG_OTHER_NODE = range(4)

# -- section 5: message ids ---------------------------------------------------

RESPONSE_BIT = 1 << 63
ANSWERED_BIT = 1 << 62
CATEGORY_SHIFT = 60
CATEGORY_MASK = 3 << CATEGORY_SHIFT
REQUEST_MASK = (1 << 60) - 1
NORMAL = 1
URGENT = 0


def request_id(n, category=NORMAL):
    """Message id of request number `n` (1 <= n < 2**60)."""
    if not 1 <= n <= REQUEST_MASK:
        raise ValueError("request number out of range: %d" % n)
    return (category << CATEGORY_SHIFT) | n


def response_id(request):
    return request | RESPONSE_BIT


ASYNC_ID = NORMAL << CATEGORY_SHIFT

# -- section 11: error categories and codes -----------------------------------

RELAY_ERRC = [None, "invalid_uri", "unknown_scheme", "listen_failed",
              "connect_failed", "connect_timeout", "connection_closed",
              "peer_rejected", "handshake_failed", "handshake_timeout",
              "version_mismatch", "frame_too_large", "protocol_error",
              "unregistered_type", "unknown_type_id", "no_such_actor",
              "name_not_found", "interface_mismatch", "node_unreachable",
              "already_registered", "lookup_timeout", "invalid_argument",
              "authentication_failed", "insecure_configuration",
              "heartbeat_timeout"]

EXIT_REASONS = ["normal", "unhandled_exception", "unknown", "out_of_workers",
                "user_shutdown", "kill", "remote_link_unreachable",
                "unreachable"]

SEC_CODES = [None, "unexpected_message", "unexpected_response",
             "request_receiver_down", "request_timeout",
             "no_such_group_module", "no_actor_published_at_port",
             "unexpected_actor_messaging_interface", "state_not_serializable",
             "unsupported_sys_key", "unsupported_sys_message",
             "disconnect_during_handshake", "cannot_forward_to_invalid_actor",
             "no_route_to_receiving_node",
             "failed_to_assign_scribe_from_handle",
             "failed_to_assign_doorman_from_handle",
             "cannot_close_invalid_port", "cannot_connect_to_node",
             "cannot_open_port", "network_syscall_failed", "invalid_argument",
             "invalid_protocol_family", "cannot_publish_invalid_actor",
             "cannot_spawn_actor_from_arguments", "end_of_stream",
             "no_context", "unknown_type", "no_proxy_registry",
             "runtime_error", "remote_linking_failed", "cannot_add_upstream",
             "upstream_already_exists", "invalid_upstream",
             "cannot_add_downstream", "downstream_already_exists",
             "invalid_downstream", "no_downstream_stages_defined",
             "stream_init_failed", "invalid_stream_state",
             "unhandled_stream_error", "bad_function_call",
             "feature_disabled", "cannot_open_file", "socket_invalid",
             "socket_disconnected", "socket_operation_failed",
             "unavailable_or_would_block", "incompatible_versions",
             "incompatible_application_ids", "malformed_basp_message",
             "serializing_basp_payload_failed", "redundant_connection",
             "remote_lookup_failed", "connection_timeout"]

# -- section 3: atoms ---------------------------------------------------------

_ATOM_CHARS = (" 0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_"
               "abcdefghijklmnopqrstuvwxyz")


def atom(text):
    """Encodes up to 10 characters as a CAF atom value."""
    if len(text) > 10:
        raise ValueError("an atom has at most 10 characters: %r" % text)
    value = 0xF
    for c in text:
        code = _ATOM_CHARS.find(c)
        value = (value << 6) | (code if code > 0 else 0)
    return value


def atom_text(value):
    """Decodes an atom value; raises ValueError if it is not one."""
    chars = []
    while value != 0xF:
        if value < 0xF or len(chars) == 10:
            raise ValueError("not an atom value")
        chars.append(_ATOM_CHARS[value & 0x3F])
        value >>= 6
    return "".join(reversed(chars))


RELAY = atom("relay")
EXIT = atom("exit")
SYSTEM = atom("system")

# -- section 5: type ids ------------------------------------------------------


def type_id(name):
    """64-bit FNV-1a of a registered type name."""
    h = 0xcbf29ce484222325
    for b in name.encode():
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


# -- section 3: encodings -----------------------------------------------------


class WireError(Exception):
    """The peer broke the protocol, or closed, or did not answer in time."""


class Writer:
    def __init__(self):
        self.buf = bytearray()

    def u8(self, x):
        self.buf += struct.pack("<B", x)
        return self

    def u32(self, x):
        self.buf += struct.pack("<I", x)
        return self

    def u64(self, x):
        self.buf += struct.pack("<Q", x)
        return self

    def raw(self, data):
        self.buf += data
        return self

    def string(self, data):
        if isinstance(data, str):
            data = data.encode()
        return self.u64(len(data)).raw(data)

    def actor_ref(self, tag, aid=0):
        """Tags 0-2 (a client has no use for 3)."""
        self.u8(tag)
        if tag != TAG_NULL:
            self.u64(aid)
        return self

    def error(self, code=0, category=0, text=b""):
        if code == 0:
            return self.u8(0).u64(0).string(b"")
        return self.u8(code).u64(category).string(text)


class Reader:
    def __init__(self, data):
        self.data = bytes(data)
        self.pos = 0

    def remaining(self):
        return len(self.data) - self.pos

    def take(self, n):
        if n > self.remaining():
            raise WireError("truncated body: need %d bytes, %d remain"
                            % (n, self.remaining()))
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u8(self):
        return self.take(1)[0]

    def bool(self):
        b = self.u8()
        if b > 1:
            raise WireError("invalid bool %d" % b)
        return b == 1

    def u32(self):
        return struct.unpack("<I", self.take(4))[0]

    def u64(self):
        return struct.unpack("<Q", self.take(8))[0]

    def size(self):
        n = self.u64()
        if n > self.remaining() and n > 4096:
            raise WireError("size %d exceeds the %d bytes that remain"
                            % (n, self.remaining()))
        return n

    def string(self):
        return self.take(self.size())

    def strings(self):
        return [self.string().decode() for _ in range(self.size())]

    def actor_ref(self):
        """Returns (tag, aid, node); node = (pid, incarnation) for tag 3."""
        tag = self.u8()
        if tag == TAG_NULL:
            return (tag, 0, None)
        if tag in (TAG_SENDER_NODE, TAG_RECEIVER_NODE):
            return (tag, self.u64(), None)
        if tag == TAG_OTHER_NODE:
            pid = self.u32()
            incarnation = self.take(20)
            return (tag, self.u64(), (pid, incarnation))
        raise WireError("invalid actor ref tag %d" % tag)

    def error(self):
        code = self.u8()
        category = self.u64()
        text = self.string()
        if code == 0:
            return None
        return RemoteError(code, category, text.decode(errors="replace"))

    def end(self, what):
        if self.remaining() != 0:
            raise WireError("%d trailing bytes after %s"
                            % (self.remaining(), what))


class RemoteError:
    """A caf::error as it crossed the wire (section 3, error)."""

    def __init__(self, code, category, text):
        self.code = code
        self.category = category
        self.text = text

    def category_name(self):
        try:
            return atom_text(self.category)
        except ValueError:
            return "0x%x" % self.category

    def name(self):
        table = {RELAY: RELAY_ERRC, EXIT: EXIT_REASONS,
                 SYSTEM: SEC_CODES}.get(self.category)
        if table and self.code < len(table) and table[self.code]:
            return table[self.code]
        return str(self.code)

    def is_(self, category, code):
        return self.category == category and self.code == code

    def __str__(self):
        out = "%s.%s (code %d)" % (self.category_name(), self.name(),
                                   self.code)
        return out + (": " + self.text if self.text else "")


def frame(kind, body=b""):
    """Header (section 2) plus body."""
    if len(body) > MAX_BODY:
        raise ValueError("frame body of %d bytes is over the bound"
                         % len(body))
    return MAGIC + struct.pack("<BBHI", VERSION, kind, 0, len(body)) \
        + bytes(body)


# -- a message (section 5) ----------------------------------------------------


class Message:
    def __init__(self, receiver, sender, mid, stages, elements):
        self.receiver = receiver   # u64 actor id
        self.sender = sender       # (tag, aid, node)
        self.mid = mid             # u64 message id
        self.stages = stages       # list of actor refs
        self.elements = elements   # list of (type id, raw value bytes)

    def is_response(self):
        return bool(self.mid & RESPONSE_BIT)


def encode_message(receiver, sender, mid, elements, stages=()):
    """`sender` is (tag, aid); `elements` is a list of (type id, value bytes)
    with each value already encoded."""
    w = Writer().u64(receiver).actor_ref(*sender).u64(mid)
    w.u64(len(stages))
    for tag, aid in stages:
        w.actor_ref(tag, aid)
    w.u64(len(elements))
    for tid, value in elements:
        w.u64(tid).raw(value)
    return bytes(w.buf)


# -- a connection -------------------------------------------------------------


class Connection:
    """One connection to a node, after the transport's own set-up.

    Every wait is bounded by `timeout` seconds. Frames that arrive while
    waiting for something else are kept: monitor requests for our actors in
    `monitors`, downs in `downs`, other frames in `inbox`; heartbeats are
    counted and dropped (section 9).
    """

    def __init__(self, sock, timeout=5.0, name="wire_client"):
        self.sock = sock
        self.timeout = timeout
        self.name = name
        self.rbuf = bytearray()
        self.monitors = []     # actor ids of ours the node monitors
        self.downs = {}        # actor id -> RemoteError or None
        self.inbox = []        # (kind, body) not consumed yet
        self.heartbeats = 0
        self.peer_hello = None
        self.incarnation = None

    # -- raw frames --

    def send(self, kind, body=b""):
        self.sock.sendall(frame(kind, body))

    def _fill(self, deadline, n):
        while len(self.rbuf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WireError("timed out waiting for data from the node")
            ready, _, _ = select.select([self.sock], [], [], left)
            if not ready:
                continue
            chunk = self.sock.recv(65536)
            if not chunk:
                raise WireError("the node closed the connection (%d bytes "
                                "of a frame pending)" % len(self.rbuf))
            self.rbuf += chunk

    def read_frame(self, deadline=None):
        """Returns (kind, body) of the next frame, checking its header."""
        if deadline is None:
            deadline = time.monotonic() + self.timeout
        self._fill(deadline, HEADER_SIZE)
        magic, version, kind, flags, length = struct.unpack(
            "<4sBBHI", bytes(self.rbuf[:HEADER_SIZE]))
        if magic != MAGIC:
            raise WireError("bad magic %r" % magic)
        if length > MAX_BODY:
            raise WireError("frame of %d bytes over the bound" % length)
        self._fill(deadline, HEADER_SIZE + length)
        body = bytes(self.rbuf[HEADER_SIZE:HEADER_SIZE + length])
        del self.rbuf[:HEADER_SIZE + length]
        if kind == REJECT:  # layout fixed across versions (section 4)
            r = Reader(body)
            code, rversion, reason = r.u8(), r.u8(), r.string()
            name = RELAY_ERRC[code] if 0 < code < len(RELAY_ERRC) else code
            raise WireError("the node rejected us: code %d (%s), its version "
                            "%d: %s" % (code, name, rversion,
                                        reason.decode(errors="replace")))
        if version != VERSION:
            raise WireError("frame with version %d" % version)
        if flags != 0:
            raise WireError("frame with non-zero flags 0x%04x" % flags)
        return kind, body

    def _dispatch(self, kind, body):
        """Files away frames nobody waits for; returns True if consumed."""
        if kind == HEARTBEAT:
            if body:
                raise WireError("heartbeat with a body")
            self.heartbeats += 1
            return True
        if kind == MONITOR:
            r = Reader(body)
            self.monitors.append(r.u64())
            r.end("monitor")
            return True
        if kind == DOWN:
            r = Reader(body)
            aid, reason = r.u64(), r.error()
            r.end("down")
            self.downs[aid] = reason
            return True
        return False

    def wait_for(self, match, what):
        """Reads frames until `match(kind, body)` returns something other
        than None, and returns that. Monitor, down and heartbeat frames are
        filed away first (then shown to `match` too); unmatched messages and
        lookup replies wait in the inbox. Raises WireError after the
        timeout."""
        for i, (kind, body) in enumerate(self.inbox):
            result = match(kind, body)
            if result is not None:
                del self.inbox[i]
                return result
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                kind, body = self.read_frame(deadline)
            except WireError as ex:
                raise WireError("while waiting for %s: %s" % (what, ex))
            filed = self._dispatch(kind, body)
            if not filed and kind not in (MESSAGE, LOOKUP_REPLY, PROBE_REPLY):
                raise WireError("unexpected frame of kind %d (%s) while "
                                "waiting for %s"
                                % (kind, KIND_NAMES.get(kind, "?"), what))
            result = match(kind, body)
            if result is not None:
                return result
            if not filed:
                self.inbox.append((kind, body))

    # -- section 4: handshake --

    def handshake(self, serial=1):
        """Reads the node's hello, sends ours. Returns the node's hello as a
        dict."""
        kind, body = self.read_frame()
        if kind != HELLO:
            raise WireError("expected hello, got kind %d" % kind)
        r = Reader(body)
        hello = {"pid": r.u32(), "incarnation": r.take(20)}
        name = r.string()
        if len(name) > 256:
            raise WireError("node name over 256 bytes")
        hello["name"] = name.decode(errors="replace")
        hello["serial"] = r.u64()
        hello["flags"] = r.u64()
        r.end("hello")
        if hello["incarnation"] == bytes(20):
            raise WireError("node's incarnation is all zero")
        # Bit 0 (can_resume) says the node could resume a session; this
        # client sends no flag, so the connection has none (no acks, and a
        # break is final). Bit 1 (resume) only comes from a dialing side,
        # bit 2 (hidden) from a tool. Bit 3 (probe): the node answers
        # probes; this client sets no bit 3, so it gets none. Bit 4 (bulk):
        # the node reads large frames as memory files over uds; this client
        # sets no bit 4, so every frame it gets comes through the socket.
        if hello["flags"] & ~0x19:
            raise WireError("node's hello flags are 0x%x" % hello["flags"])
        self.peer_hello = hello
        incarnation = os.urandom(20)
        while incarnation == bytes(20) or incarnation == hello["incarnation"]:
            incarnation = os.urandom(20)
        self.incarnation = incarnation
        w = Writer().u32(os.getpid()).raw(incarnation).string(self.name)
        w.u64(serial).u64(0)
        self.send(HELLO, w.buf)
        return hello

    # -- section 8: lookup --

    def probe(self, token):
        """Sends a probe (section 9.1); returns the round trip in seconds
        once the node echoed `token`."""
        start = time.monotonic()
        self.send(PROBE, Writer().u64(token).buf)

        def match(kind, body):
            if kind != PROBE_REPLY:
                return None
            r = Reader(body)
            echoed = r.u64()
            r.end("probe_reply")
            if echoed != token:
                raise WireError("probe_reply echoes %d, sent %d"
                                % (echoed, token))
            return time.monotonic() - start
        return self.wait_for(match, "the answer to probe %d" % token)

    def lookup(self, name, request=1):
        """Returns (actor id, interface), or None if not published."""
        self.send(LOOKUP, Writer().u64(request).string(name).buf)

        def match(kind, body):
            if kind != LOOKUP_REPLY:
                return None
            r = Reader(body)
            if r.u64() != request:
                return None
            status = r.u8()
            if status == 1:
                r.end("lookup_reply")
                return ("not found",)
            if status != 0:
                raise WireError("lookup_reply status %d" % status)
            tag, aid, _ = r.actor_ref()
            if tag != TAG_SENDER_NODE:
                raise WireError("lookup_reply with actor ref tag %d" % tag)
            interface = r.strings()
            r.end("lookup_reply")
            return (aid, interface)

        result = self.wait_for(match, "the reply to lookup %r" % name)
        return None if result == ("not found",) else result

    # -- section 5: messages --

    def send_message(self, receiver, sender, mid, elements):
        self.send(MESSAGE, encode_message(receiver, sender, mid, elements))

    def wait_response(self, receiver, mid):
        """Waits for the response to request `mid` sent by our actor
        `receiver`; returns it as a Message."""
        want = response_id(mid)

        def match(kind, body):
            if kind != MESSAGE:
                return None
            msg = decode_message(body)
            if msg.receiver != receiver or msg.mid & ~ANSWERED_BIT != want:
                return None
            return msg

        return self.wait_for(match, "the response 0x%016x" % want)

    def request(self, receiver, sender_aid, n, elements):
        mid = request_id(n)
        self.send_message(receiver, (TAG_SENDER_NODE, sender_aid), mid,
                          elements)
        return self.wait_response(sender_aid, mid)

    # -- section 6: monitor and down --

    def monitor(self, aid):
        """Sends monitor for the node's actor `aid` and waits for its down.
        Returns the exit reason (None for a normal exit)."""
        self.send(MONITOR, Writer().u64(aid).buf)

        if aid not in self.downs:
            self.wait_for(lambda kind, body: aid in self.downs or None,
                          "down for actor %d" % aid)
        return self.downs[aid]

    def down(self, aid, code=0, category=0, text=b""):
        """Reports that our actor `aid` ended."""
        self.send(DOWN, Writer().u64(aid).error(code, category, text).buf)


def decode_message(body):
    r = Reader(body)
    receiver = r.u64()
    sender = r.actor_ref()
    mid = r.u64()
    stages = [r.actor_ref() for _ in range(r.size())]
    count = r.size()
    # Values cannot be cut apart without knowing their types; a single
    # element (every message in this client) takes the rest of the body.
    if count == 1:
        elements = [(r.u64(), r.take(r.remaining()))]
    elif count == 0:
        elements = []
        r.end("message")
    else:
        raise WireError("messages of %d elements are not supported here"
                        % count)
    return Message(receiver, sender, mid, stages, elements)


def connect_uds(path, timeout=5.0):
    """Connects to `uds:///path` (or `uds:@name` with path "@name")."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)  # bounds connect and sendall
    address = "\0" + path[1:] if path.startswith("@") else path
    sock.connect(address)
    return sock
