"""The resident channel: authenticated by challenge-response, fixed frames, sizes checked first, no pickle."""

import logging
import socket
import struct
import threading

import numpy as np
import pytest

from sparkgd.core.block import FoldSpec
from sparkgd.core.sums import Sums
from sparkgd.engine import channel, executor, resident
from sparkgd.engine.channel import (
    ANSWER,
    ITERATION,
    PIECES,
    ChannelError,
    accept_handshake,
    connect_handshake,
    decode_pieces,
    encode_pieces,
    recv,
    send,
)

SECRET = b"k" * 32


def run_pair(server_side, client_side):
    """Run both ends over a socket pair; return what each returned or raised."""
    a, b = socket.socketpair()
    a.settimeout(5)
    b.settimeout(5)
    out = {}

    def call(name, fn, sock):
        try:
            out[name] = fn(sock)
        except Exception as e:  # the test inspects it
            out[name] = e
        finally:
            sock.close()

    threads = [threading.Thread(target=call, args=("server", server_side, a)),
               threading.Thread(target=call, args=("client", client_side, b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return out["server"], out["client"]


def test_the_right_secret_passes_and_carries_the_index():
    server, client = run_pair(lambda s: accept_handshake(s, SECRET), lambda s: connect_handshake(s, SECRET, 3, 7))
    assert server[:2] == (3, 7) and isinstance(server[2], channel.Link) and isinstance(client, channel.Link)


def test_a_wrong_secret_is_refused_by_either_end():
    server, client = run_pair(lambda s: accept_handshake(s, SECRET), lambda s: connect_handshake(s, b"x" * 32, 1))
    assert isinstance(server, ChannelError) and "secret" in str(server)
    assert isinstance(client, ChannelError)  # no proof came back
    server, client = run_pair(lambda s: accept_handshake(s, b"x" * 32), lambda s: connect_handshake(s, SECRET, 1))
    assert isinstance(server, ChannelError)


def test_a_replayed_answer_is_refused():
    recorded = {}

    def recording_client(sock):
        _, nonce = recv(sock, (channel.CHALLENGE,), channel.NONCE)
        original = channel.send

        def spy(s, kind, payload=b""):
            if kind == ANSWER:
                recorded["answer"] = bytes(payload)
            original(s, kind, payload)

        channel.send = spy
        try:
            sock_nonce = bytes(nonce)
            # answer as a genuine client would, from the challenge already read
            nonce_c = b"c" * 32
            mac = channel._mac(SECRET, b"sparkgd-c", sock_nonce, nonce_c, struct.pack("<qq", 2, 0))
            spy(sock, ANSWER, channel._HELLO.pack(2, 0, nonce_c, mac))
        finally:
            channel.send = original
        return recv(sock, (channel.PROOF,), 32)

    server, _ = run_pair(lambda s: accept_handshake(s, SECRET), recording_client)
    assert server[:2] == (2, 0)

    def replaying_client(sock):
        recv(sock, (channel.CHALLENGE,), channel.NONCE)  # a fresh nonce this time
        send(sock, ANSWER, recorded["answer"])

    server, _ = run_pair(lambda s: accept_handshake(s, SECRET), replaying_client)
    assert isinstance(server, ChannelError) and "secret" in str(server)


def test_sizes_and_kinds_are_checked_before_reading_the_payload():
    big, client = run_pair(lambda s: recv(s, (ITERATION,), 1000),
                           lambda s: s.sendall(channel.HEADER.pack(ITERATION, 10**12)))  # announces 1 TB, sends none
    assert isinstance(big, ChannelError) and "larger" in str(big)
    wrong, _ = run_pair(lambda s: recv(s, (ITERATION,), 1000), lambda s: send(s, PIECES, b"1234"))
    assert isinstance(wrong, ChannelError) and "unexpected" in str(wrong)
    short, _ = run_pair(lambda s: recv(s, (ITERATION,), 1000),
                        lambda s: s.sendall(channel.HEADER.pack(ITERATION, 100) + b"x" * 10))
    assert isinstance(short, ChannelError) and "closed" in str(short)


def test_pieces_round_trip_and_bad_pieces_are_refused():
    g = np.random.default_rng(0).normal(size=5)
    pieces = {(0, 3): Sums(g, 1.5, 7, 7.0, 0.25, 3.0), (1, 2): None}
    back = decode_pieces(bytearray(encode_pieces(pieces)), 5)
    assert back[(1, 2)] is None and back[(0, 3)][0].tobytes() == g.tobytes()
    assert back[(0, 3)][1:] == (1.5, 7, 7.0, 0.25, 3.0)  # the held-out sums travel as their own fields
    raw = bytearray(encode_pieces(pieces))
    for bad in (raw[:-8], raw + b"\0" * 8, bytearray(struct.pack("<I", 5)) + raw[4:]):
        with pytest.raises(ChannelError):
            decode_pieces(bad, 5)
    with pytest.raises(ChannelError):
        decode_pieces(raw, 6)  # a vector of the wrong length


def test_nothing_on_the_channel_is_unpickled():
    for module in (channel, executor, resident):
        assert "pickle" not in vars(module), f"{module.__name__} imports pickle"


def test_the_root_refuses_wrong_secrets_and_second_connections(caplog):
    server = executor.bind("127.0.0.1", 0)
    port = server.getsockname()[1]
    accepted = {}
    t = threading.Thread(target=lambda: accepted.setdefault("conns", executor.accept_children(server, SECRET, 2)))
    t.start()
    clients = []

    def connect(secret, index):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        clients.append(s)
        try:
            connect_handshake(s, secret, index)
        except ChannelError:
            return False
        s.settimeout(0.5)
        try:
            return s.recv(1) != b""  # refused: closed by the root right after the handshake
        except TimeoutError:
            return True  # kept open

    with caplog.at_level(logging.WARNING, logger="sparkgd"):
        assert not connect(b"wrong" * 7, 1)
        assert connect(SECRET, 1)
        assert not connect(SECRET, 1)  # index 1 is taken
        assert connect(SECRET, 2)
        t.join(10)
    server.close()
    for s in clients:
        s.close()
    assert len(accepted["conns"]) == 2
    assert "does not know the secret" in caplog.text and "second connection for task 1" in caplog.text
    for c in accepted["conns"]:
        c.close()


@pytest.mark.parametrize("gradient", ["squared", "logistic", "hinge", "huber", "multinomial"])
def test_plans_round_trip_exactly(gradient):
    from sparkgd.core.gradients import GRADIENTS, HuberGradient, MultinomialGradient

    g = {"huber": HuberGradient(0.7), "multinomial": MultinomialGradient(4)}.get(gradient) or GRADIENTS[gradient]()
    scale = np.random.default_rng(0).normal(size=7) / 3.0
    for kw in (FoldSpec(g, 0.1 + 0.2, True, scale, (1 / 3, 2**40 + 1)), FoldSpec(g, 1.0)):
        out, depth, d, port = channel.decode_plan(bytearray(channel.encode_plan(kw, 3, 29, 5000)))
        assert (depth, d, port) == (3, 29, 5000)
        assert type(out.gradient) is type(g) and repr(out.gradient) == repr(g)
        assert out.gradient.num_sets == g.num_sets
        assert out.fraction == kw.fraction and out.fit_intercept == kw.fit_intercept
        assert out.validation == kw.validation
        assert (out.scale is None) == (kw.scale is None)
        if kw.scale is not None:
            assert out.scale.tobytes() == scale.tobytes()


def test_a_plan_cannot_carry_a_gradient_defined_elsewhere_and_bad_plans_are_refused():
    from sparkgd.core.gradients import LeastSquaresGradient

    class Mine(LeastSquaresGradient):
        pass

    assert channel.encode_plan(FoldSpec(Mine(), 1.0), 2, 3, 0) is None
    good = channel.encode_plan(FoldSpec(LeastSquaresGradient(), 1.0, False, np.ones(3)), 2, 3, 0)
    for bad in (good[:-1], good + b"x", b"\x05\x00\x00\x00{}", good[:4] + b"[" + good[5:]):
        with pytest.raises(channel.ChannelError):
            channel.decode_plan(bytearray(bad))


def test_a_task_the_driver_gave_up_before_setup_ends_quietly():
    """A non-root resident task whose driver closes before sending SETUP (the start was given up: busy
    slots) returns without an error, so no worker traceback lands in the logs of a successful fit."""
    driver, task = socket.socketpair()
    task.settimeout(5)
    driver.close()
    assert executor.work(task, 1, [], secret=SECRET, spec=None, tree=None, num_weights=3, port=0,
                          num_tasks=2) is None
    assert task.fileno() == -1  # closed on the way out


def _linked_pair():
    """Two ends of a loopback connection after the handshake, and the raw sockets under them."""
    a, b = socket.socketpair()
    got = {}
    t = threading.Thread(target=lambda: got.setdefault("server", accept_handshake(a, SECRET)))
    t.start()
    client = connect_handshake(b, SECRET, 1)
    t.join(10)
    return got["server"][2], client, a, b


def test_sealed_frames_round_trip_and_hide_the_floats():
    server, client, raw_server, _ = _linked_pair()
    w = np.random.default_rng(4).normal(size=64)
    tap = []
    client.sock = _Tap(client.sock, tap)
    send(client, ITERATION, channel.encode_iteration(9, w))
    seed, back = channel.decode_iteration(recv(server, (ITERATION,), channel.iteration_size(64))[1])
    assert seed == 9 and back.tobytes() == w.tobytes()
    wire = b"".join(tap)
    assert all(w[i:i + 1].tobytes() not in wire for i in range(64))  # no float64 of the weights in clear
    assert len(wire) == channel.HEADER.size + channel.iteration_size(64) + channel.TAG


class _Tap:
    """A socket whose sent bytes are recorded."""

    def __init__(self, sock, into):
        self._sock, self._into = sock, into

    def sendall(self, data):
        self._into.append(bytes(data))
        self._sock.sendall(data)

    def __getattr__(self, name):
        return getattr(self._sock, name)


def _frames(link, count):
    """``count`` frames as ``link`` puts them on the wire (each frame's bytes)."""
    tap = []
    link.sock = _Tap(link.sock, tap)
    for k in range(count):
        send(link, PIECES, bytes([k]) * 40)
    link.sock = link.sock._sock
    return tap


@pytest.mark.parametrize("attack", ["flip", "replay", "reorder", "reflect", "kind"])
def test_an_altered_replayed_reordered_or_reflected_frame_is_refused(attack):
    server, client, raw_server, raw_client = _linked_pair()
    frames = _frames(client, 2)
    raw_server.recv(sum(len(f) for f in frames), socket.MSG_WAITALL)  # drop the genuine ones from the wire
    first, second = frames
    if attack == "flip":
        bad = first[:-1] + bytes([first[-1] ^ 1])
        raw_client.sendall(bad)
    elif attack == "replay":
        raw_client.sendall(first + first)
        recv(server, (PIECES,), 100)  # the first copy is genuine
    elif attack == "reorder":
        raw_client.sendall(second)
    elif attack == "reflect":  # the server's own frame sent back to it
        back = _frames(server, 1)[0]
        raw_client.recv(len(back), socket.MSG_WAITALL)
        raw_client.sendall(back)
    else:  # the header's kind changed: it is authenticated too
        raw_client.sendall(bytes([ITERATION]) + first[1:])
    with pytest.raises(ChannelError, match="failed its check"):
        recv(server, (PIECES, ITERATION), 100)


def test_a_frame_of_another_connection_is_refused():
    server, _, _, raw_client = _linked_pair()
    other = _linked_pair()  # kept: its sockets stay open
    frame = _frames(other[1], 1)[0]  # the same secret, sequence number and direction, another connection
    raw_client.sendall(frame)
    with pytest.raises(ChannelError, match="failed its check"):
        recv(server, (PIECES,), 100)
