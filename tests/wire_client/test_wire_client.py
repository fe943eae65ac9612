#!/usr/bin/env python3
"""Runs wire_client.py against a real node: `ping_pong serve` over uds.

usage: test_wire_client.py PATH_TO_PING_PONG

Checks the worked example of docs/wire-protocol.md against the client's
encoder, then over one raw AF_UNIX connection: handshake, lookup of `pong`
(and of a name nobody published), a ping -> pong request, three requests
that fail (unknown type id, no such actor, a type pong has no handler for)
with their decoded errors, and a monitor of an actor that does not exist.
Exits 0 on success, 1 with a message on failure, 2 on bad usage.
"""

import ctypes
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wire_client as wc  # noqa: E402

READY_TIMEOUT = 10.0   # seconds for the server to print its ready line
IO_TIMEOUT = 5.0       # seconds for any one answer from the server
STOP_TIMEOUT = 5.0     # seconds for the server to exit after SIGTERM

DOC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                   "docs", "wire-protocol.md")

PING = wc.type_id("ping_pong.ping")
PONG = wc.type_id("ping_pong.pong")
ERROR = wc.type_id("error")
STRING = wc.type_id("string")


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


def encode_ping(seq, payload):
    """ping_pong::ping is {u64 seq; string payload} (samples/ping_pong)."""
    return bytes(wc.Writer().u64(seq).string(payload).buf)


def decode_pong(value):
    r = wc.Reader(value)
    seq, payload = r.u64(), r.string()
    r.end("pong")
    return seq, payload


def decode_error(msg, what):
    check(len(msg.elements) == 1 and msg.elements[0][0] == ERROR,
          "%s: expected one element of type error (0x%016x), got %s"
          % (what, ERROR, ["0x%016x" % t for t, _ in msg.elements]))
    r = wc.Reader(msg.elements[0][1])
    err = r.error()
    r.end("error")
    check(err is not None, "%s: error response carries no error" % what)
    return err


# -- the worked example of the doc --------------------------------------------


def doc_examples():
    """The hex of each code block in the doc's worked example section."""
    text = open(DOC, encoding="utf-8").read()
    section = text[text.index("## 12. Worked example"):]
    blocks = re.findall(r"```\n(.*?)```", section, re.S)
    result = []
    for block in blocks:
        data = bytearray()
        for line in block.splitlines():
            hex_part = re.split(r"\s{3,}", line.strip(), maxsplit=1)[0]
            data += bytes.fromhex(hex_part)
        result.append(bytes(data))
    return result


def check_doc_example():
    examples = doc_examples()
    check(len(examples) == 2, "expected 2 hex blocks in section 12 of %s, "
          "found %d" % (DOC, len(examples)))
    hello = wc.Writer().u32(4242).raw(bytes(range(1, 21))).string("py")
    hello.u64(1).u64(0)
    check(examples[0] == wc.frame(wc.HELLO, hello.buf),
          "the doc's hello example differs from the client's encoding")
    body = wc.encode_message(5, (wc.TAG_SENDER_NODE, 1), wc.request_id(1),
                             [(PING, encode_ping(7, "hi"))])
    check(examples[1] == wc.frame(wc.MESSAGE, body),
          "the doc's message example differs from the client's encoding")
    print("ok: the doc's worked example matches the client's encoding")


# -- the server ---------------------------------------------------------------


def die_with_parent():
    # Linux: the server gets SIGTERM if this driver dies (e.g. ctest kills
    # it on timeout), so it never outlives the test.
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_PDEATHSIG = 1
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start_server(binary, uri, log):
    return subprocess.Popen([binary, "serve", uri], stdout=subprocess.PIPE,
                            stderr=log, stdin=subprocess.DEVNULL,
                            preexec_fn=die_with_parent)


def wait_ready(child, uri):
    """Waits for `listening on URI` on the child's stdout."""
    deadline = time.monotonic() + READY_TIMEOUT
    pending = b""
    while True:
        left = deadline - time.monotonic()
        check(left > 0, "server did not print 'listening on %s' within %.0f s"
              % (uri, READY_TIMEOUT))
        ready, _, _ = select.select([child.stdout], [], [], left)
        if not ready:
            continue
        chunk = os.read(child.stdout.fileno(), 4096)
        check(chunk, "server exited (status %s) before it was ready"
              % child.poll())
        pending += chunk
        for line in pending.split(b"\n")[:-1]:
            if line.decode(errors="replace").strip() == "listening on " + uri:
                return
        pending = pending.split(b"\n")[-1]


def stop_server(child):
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    child.stdout.close()
    return child.returncode


# -- the scenario -------------------------------------------------------------


def run(conn):
    me = 1  # our actor: tag 1 (an actor of the node that writes) with id 1

    hello = conn.handshake()
    print("ok: handshake with node '%s' (pid %d)" % (hello["name"],
                                                     hello["pid"]))

    found = conn.lookup("pong", request=1)
    check(found is not None, "lookup of 'pong' says not found")
    pong, interface = found
    check("(ping_pong.ping) -> (ping_pong.pong)" in interface,
          "pong's interface is %r" % interface)
    check(conn.lookup("no-such-name", request=2) is None,
          "lookup of 'no-such-name' did not say not found")
    print("ok: lookup: pong is actor %d, interface %r; an unknown name is "
          "not found" % (pong, interface))

    rtt = conn.probe(0xfeedface)
    print("ok: probe answered with its token in %.3f ms" % (rtt * 1e3))

    msg = conn.request(pong, me, 1, [(PING, encode_ping(42, "hello relay"))])
    check(msg.sender[:2] == (wc.TAG_SENDER_NODE, pong),
          "pong's answer has sender %r, expected tag 1 id %d"
          % (msg.sender, pong))
    check(len(msg.elements) == 1 and msg.elements[0][0] == PONG,
          "answer to ping is not one ping_pong.pong: %r"
          % [("0x%016x" % t, v) for t, v in msg.elements])
    check(decode_pong(msg.elements[0][1]) == (42, b"hello relay"),
          "pong carries %r" % (decode_pong(msg.elements[0][1]),))
    check(me in conn.monitors, "the node did not send monitor for our actor "
          "%d before answering (got %r)" % (me, conn.monitors))
    print("ok: ping(42) -> pong(42) with message id 0x%016x; the node "
          "monitors our actor %d" % (msg.mid, me))

    unknown = wc.type_id("wire_client.no_such_type")
    msg = conn.request(pong, me, 2, [(unknown, b"\x00" * 8)])
    err = decode_error(msg, "unknown type id")
    check(msg.sender[0] == wc.TAG_NULL,
          "the node's error response has sender %r, expected tag 0"
          % (msg.sender,))
    check(err.is_(wc.RELAY, 14), "unknown type id: got %s, expected "
          "relay.unknown_type_id (14)" % err)
    print("ok: unknown type id -> %s" % err)

    ghost = 0x7ffffffffff0  # an id the node never exported
    msg = conn.request(ghost, me, 3, [(PING, encode_ping(1, "x"))])
    err = decode_error(msg, "no such actor")
    check(err.is_(wc.RELAY, 15), "message to actor %d: got %s, expected "
          "relay.no_such_actor (15)" % (ghost, err))
    print("ok: request to actor %d -> %s" % (ghost, err))

    msg = conn.request(pong, me, 4, [(STRING, bytes(
        wc.Writer().string("not a ping").buf))])
    err = decode_error(msg, "unexpected message")
    check(err.is_(wc.SYSTEM, 1), "a string to pong: got %s, expected "
          "system.unexpected_message (1)" % err)
    print("ok: a string to pong -> %s" % err)

    reason = conn.monitor(ghost)
    check(reason is not None and reason.is_(wc.EXIT, 2),
          "monitor of actor %d: down reason %s, expected exit.unknown (2)"
          % (ghost, reason))
    print("ok: monitor of actor %d -> down with %s" % (ghost, reason))

    conn.down(me)  # our actor ends normally; then we hang up
    print("ok: %d heartbeats received" % conn.heartbeats)


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    binary = argv[1]
    tmp = tempfile.mkdtemp(prefix="relay-wire-client-")
    child = None
    log_path = os.path.join(tmp, "server.log")
    status = 1
    try:
        check_doc_example()
        path = os.path.join(tmp, "pp.sock")
        uri = "uds://" + path
        with open(log_path, "wb") as log:
            child = start_server(binary, uri, log)
        wait_ready(child, uri)
        sock = wc.connect_uds(path, IO_TIMEOUT)
        try:
            run(wc.Connection(sock, IO_TIMEOUT))
        finally:
            sock.close()
        status = 0
    except (Failure, wc.WireError, OSError) as ex:
        print("FAIL: %s" % ex, file=sys.stderr)
    finally:
        if child is not None:
            code = stop_server(child)
            if status == 0 and code != 0:
                print("FAIL: server exited with status %s" % code,
                      file=sys.stderr)
                status = 1
        if status != 0 and os.path.exists(log_path):
            with open(log_path, errors="replace") as log:
                text = log.read().strip()
            if text:
                print("server stderr:\n" + text, file=sys.stderr)
        shutil.rmtree(tmp, ignore_errors=True)
    if status == 0:
        print("PASS")
    return status


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    sys.exit(main(sys.argv))
