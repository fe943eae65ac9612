#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into fuzz/corpus/<target>/.

Frames are built with tests/wire_client/wire_client.py, the independent
Python implementation of docs/wire-protocol.md, so the seeds are what a
real remote node sends. Run it again after a change to the wire format.
"""
import os
import shutil
import struct
import sys

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)
sys.path.insert(0, os.path.join(root, "tests", "wire_client"))
import wire_client as wc  # noqa: E402

corpus = os.path.join(here, "corpus")


def write(target, name, data):
    d = os.path.join(corpus, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(bytes(data))


def hello(name="seed", serial=1, flags=0):
    w = wc.Writer().u32(4242).raw(bytes(range(1, 21))).string(name)
    return wc.frame(wc.HELLO, w.u64(serial).u64(flags).buf)


# The id of the echo actor in fuzz/peer_fuzzer.cpp's node (it checks).
ECHO_ID = 10
PING = wc.type_id("relay.test.ping")
STRING = wc.type_id("string")


def W():
    return wc.Writer()


# One value of each built-in type (docs/wire-protocol.md), by registry name.
BUILTINS = {
    "bool": b"\x01",
    "i8": struct.pack("<b", -3),
    "i16": struct.pack("<h", -300),
    "i32": struct.pack("<i", -5),
    "i64": struct.pack("<q", -1 << 40),
    "u8": b"\xff",
    "u16": struct.pack("<H", 65535),
    "u32": struct.pack("<I", 1 << 31),
    "u64": struct.pack("<Q", 1 << 63),
    "f32": struct.pack("<f", 1.5),
    "f64": struct.pack("<d", -2.25),
    "string": bytes(W().string("text").buf),
    "bytes": bytes(W().string(b"\x00\x01\x02").buf),
    "strings": bytes(W().u64(2).string("a").string("bc").buf),
    "string_map": bytes(W().u64(1).string("k").string("v").buf),
    "string_set": bytes(W().u64(2).string("x").string("y").buf),
    "atom": struct.pack("<Q", wc.atom("ping")),
    "actor": bytes(W().actor_ref(wc.TAG_SENDER_NODE, 7).buf),
    "actor_addr": bytes(W().actor_ref(wc.TAG_RECEIVER_NODE, ECHO_ID).buf),
    "actor_ptr": bytes(W().actor_ref(wc.TAG_NULL).buf),
    "error": bytes(W().error(2, wc.RELAY, b"why").buf),
    "exit_msg": bytes(W().actor_ref(wc.TAG_SENDER_NODE, 7)
                      .error(1, wc.EXIT, b"").buf),
    "down_msg": bytes(W().actor_ref(wc.TAG_SENDER_NODE, 7)
                      .error(0, 0, b"").buf),
    "unit": b"",
    "timespan": struct.pack("<q", 1000000),
    "timestamp": struct.pack("<q", 1700000000000000000),
}


def ping(seq, payload):
    return bytes(wc.Writer().u64(seq).string(payload).buf)


def message(receiver, elements, mid=wc.ASYNC_ID, sender=(wc.TAG_SENDER_NODE, 7),
            stages=()):
    return wc.frame(wc.MESSAGE, wc.encode_message(receiver, sender, mid,
                                                  elements, stages))


def peer_seeds():
    h = hello()
    seeds = {
        "hello": h,
        "reject": wc.frame(wc.REJECT, wc.Writer().u8(9).u8(1)
                           .string("go away").buf),
        "lookup": h + wc.frame(wc.LOOKUP, wc.Writer().u64(1).string("echo").buf),
        "lookup_missing": h + wc.frame(wc.LOOKUP, wc.Writer().u64(2)
                                       .string("nobody").buf),
        "heartbeat": h + wc.frame(wc.HEARTBEAT),
        # Sessions (hello flag can_resume): numbered frames, acks, goodbye,
        # and a resuming hello, which finds no session to resume.
        "session": hello(flags=1) + message(ECHO_ID, [(PING, ping(1, "s"))])
                   + wc.frame(wc.ACK, W().u64(0).buf)
                   + wc.frame(wc.HEARTBEAT),
        "session_ack_too_far": hello(flags=1) + wc.frame(wc.ACK, W().u64(5).buf),
        # A hidden node (hello flag bit 2, relayctl) asking the
        # introspection service by name.
        "hidden_lookup": hello(flags=4) + wc.frame(
            wc.LOOKUP, wc.Writer().u64(3).string("relay.introspect").buf),
        "session_goodbye": hello(flags=1) + wc.frame(wc.GOODBYE),
        # Round-trip probes (hello flag bit 3): one to answer, an answer
        # to a probe never sent, and one with a short body.
        "probe": hello(flags=8) + wc.frame(wc.PROBE, W().u64(77).buf)
                 + wc.frame(wc.PROBE_REPLY, W().u64(78).buf),
        "probe_short": hello(flags=8) + wc.frame(wc.PROBE, W().u32(1).buf),
        "session_resume_frame": hello(flags=1) + wc.frame(wc.RESUME,
                                                          W().u64(0).buf),
        "resuming_hello": wc.frame(wc.HELLO, W().u32(4242)
                                   .raw(bytes(range(1, 21))).string("seed")
                                   .u64(2).u64(3).u64(1).u64(0).buf),
        "retire": h + wc.frame(wc.RETIRE),
        "monitor": h + wc.frame(wc.MONITOR, wc.Writer().u64(ECHO_ID).buf),
        "down": h + wc.frame(wc.DOWN, wc.Writer().u64(7).error().buf),
        "down_error": h + wc.frame(wc.DOWN, wc.Writer().u64(7)
                                   .error(2, wc.RELAY, b"why").buf),
        # link/unlink: the sender's actor (a reference), then our actor's id.
        "link": h + wc.frame(wc.LINK, wc.Writer().actor_ref(wc.TAG_SENDER_NODE, 7)
                             .u64(ECHO_ID).buf),
        "unlink": h + wc.frame(wc.LINK, wc.Writer()
                               .actor_ref(wc.TAG_SENDER_NODE, 7).u64(ECHO_ID).buf)
        + wc.frame(wc.UNLINK, wc.Writer().actor_ref(wc.TAG_SENDER_NODE, 7)
                   .u64(ECHO_ID).buf),
        "lookup_reply": h + wc.frame(wc.LOOKUP_REPLY, wc.Writer().u64(1).u8(0)
                                     .actor_ref(wc.TAG_SENDER_NODE, 9)
                                     .u64(1).string("ping").buf),
        "module_kind": h + wc.frame(64, b"\x01\x02"),
    }
    for aid in (ECHO_ID, ECHO_ID + 1):
        seeds["ping_%d" % aid] = h + message(aid, [(PING, ping(aid, "hi"))])
        seeds["request_%d" % aid] = h + message(
            aid, [(PING, ping(aid, "req"))], mid=wc.request_id(aid))
    for name, value in BUILTINS.items():
        seeds["type_" + name] = h + message(
            ECHO_ID, [(wc.type_id(name), value)], mid=wc.request_id(1))
    seeds["two_elements"] = h + message(
        ECHO_ID, [(wc.type_id("i32"), BUILTINS["i32"]),
                  (STRING, BUILTINS["string"])])
    seeds["response"] = h + message(ECHO_ID, [(STRING, BUILTINS["string"])],
                                    mid=wc.response_id(wc.request_id(1)))
    seeds["stages"] = h + message(ECHO_ID, [(PING, ping(1, "x"))],
                                  stages=[(wc.TAG_RECEIVER_NODE, ECHO_ID)])
    seeds["spawn"] = h + message(1, [(STRING, BUILTINS["string"])],
                                 mid=wc.request_id(2))
    for name, frames in seeds.items():
        write("peer", name, b"\x00" + frames)
        write("peer", name + "_untrusted", b"\x01" + frames)
        write("stream", name + "_bulk", b"\x00" + frames)
        write("stream", name + "_bytes", b"\x01" + frames)
    write("stream", "cut_mid_frame", b"\x00" + h[:-3])
    write("stream", "bad_magic", b"\x00" + b"XLAY" + h[4:])
    # Bulk frames (mode bit 4: the channel passes descriptors); the file's
    # variant, size and contents follow the bulk frame in the input.
    inner = h
    bulk = (struct.pack("<IBBHI", 0x59414C52, 1, 17, 0, 8)
            + struct.pack("<Q", len(inner)))
    for variant, name in ((2, "sealed"), (3, "unsealed"), (1, "pipe"),
                          (0, "none")):
        write("stream", "bulk_file_" + name,
              b"\x04" + bulk + bytes([variant])
              + struct.pack("<H", len(inner)) + inner + h)


def tcp_auth_seeds():
    nonce = bytes(range(32))
    challenge = struct.pack("<IBBH", 0x41594c52, 1, 1, 0) + nonce
    none_challenge = struct.pack("<IBBH", 0x41594c52, 1, 0, 0) + nonce
    proof = bytes(32)
    for mode, name in [(0, "server"), (1, "client")]:
        for flags, suffix in [(0, ""), (2, "_bound"), (4, "_insecure")]:
            body = none_challenge if flags == 4 else challenge + proof + b"\x00"
            write("tcp_auth", name + suffix, bytes([mode | flags]) + body)


def shm_seeds():
    def field(which, value):
        return bytes([0, which]) + struct.pack("<Q", value)

    def poke(off, data):
        return bytes([1]) + struct.pack("<HB", off, len(data)) + data

    def read(n):
        return bytes([2]) + struct.pack("<H", n)

    def write_(n):
        return bytes([3]) + struct.pack("<H", n)

    frame = hello()
    write("shm_ring", "data", poke(256, frame) + field(0, len(frame)) + read(100))
    write("shm_ring", "tail_beyond", field(0, 1 << 40) + read(10))
    write("shm_ring", "head_back", field(1, 5) + write_(4000) + write_(4000)
          + read(10) + bytes([4]))
    write("shm_ring", "hang_up", poke(256, frame) + field(0, len(frame))
          + bytes([5]) + read(100) + read(100))
    write("shm_ring", "wrap", field(0, 4090) + field(1, 4090)
          + poke(256 + 4090, b"abcdef") + field(0, 4100) + read(64))


def mq_seeds():
    def send(data, prio=0):
        # prio byte: < 200 means priority 0, else prio % 4
        return bytes([0, 0 if prio == 0 else 200 + prio, len(data)]) + data

    def read(n):
        return bytes([1]) + struct.pack("<H", n)

    def write_(n):
        return bytes([2]) + struct.pack("<H", n)

    frame = hello()
    write("mq", "data", send(frame) + read(100))
    write("mq", "split", send(b"abcdefgh" * 20) + read(5) + read(7) + read(500))
    write("mq", "end", send(b"xyz") + send(b"") + read(2) + read(10) + read(10))
    write("mq", "after_end", send(b"") + send(b"late") + read(10) + read(10))
    write("mq", "priority", send(b"abc") + send(b"def", 3) + read(10) + read(10))
    write("mq", "full", b"".join(send(bytes([i]) * 200) for i in range(12))
          + read(1000) + read(1000) + write_(3000) + bytes([3, 3]))
    req = struct.pack("<IB3xI", 0x51594c52, 1, 1234) + b"0123456789abcdef" + bytes(4)
    rep = struct.pack("<IBBHII", 0x51594c52, 1, 0, 0, 1234, 0)
    write("mq", "rendezvous", bytes([4, len(req)]) + req + bytes([4, len(rep)]) + rep)


def uri_seeds():
    for i, uri in enumerate(["uds:///tmp/a.sock", "uds:@abstract",
                             "tcp://127.0.0.1:4000", "tcp://[::1]:0",
                             "tls://:443", "tls://host.example:1",
                             "shm:///run/x.sock", "tcp://[::1:4",
                             "mq:///relay-demo", "mq:///a/b"]):
        write("uri", "uri_%d" % i, uri.encode())


def deployment_seeds():
    d = os.path.join(corpus, "deployment")
    os.makedirs(d, exist_ok=True)
    # Executables that exist, so that parsing goes past them.
    write("deployment", "absolute.toml", b"""[supervisor]
name = "s"
strategy = "rest_for_one"
intensity = 3
period = "5s"

[[process]]
id = "a"
executable = "/bin/true"
args = ["1", "two"]
env = { A = "1" }
count = 2
channel = "uds"
restart = "transient"
shutdown = "500ms"

[[process]]
id = "b"
executable = "/bin/sh"
channel = "pipe"
restart = "temporary"
shutdown = "infinity"
""")
    for dirpath, _, files in os.walk(os.path.join(root, "samples")):
        for f in files:
            if f.endswith(".toml"):
                shutil.copy(os.path.join(dirpath, f), os.path.join(d, f))


if __name__ == "__main__":
    peer_seeds()
    tcp_auth_seeds()
    shm_seeds()
    mq_seeds()
    uri_seeds()
    deployment_seeds()
