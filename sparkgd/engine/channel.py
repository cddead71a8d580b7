"""The resident tasks' wire format: fixed binary frames and a challenge-response handshake.

Nothing on this channel is ever unpickled. A frame is a 1-byte kind and an 8-byte length
followed by the payload; the reader checks the kind and the length against what it expects
before it reads the payload. Payloads are raw little-endian integers and float64 arrays.

Both ends hold a per-call secret ``K`` (random, shipped in the task closure). The accepting
end sends a fresh nonce ``n_s``; the connecting end answers with its index ``i``, a value
``x``, its own nonce ``n_c`` and ``HMAC-SHA256(K, "sparkgd-c" || n_s || n_c || i || x)``; the
accepting end checks it and proves itself with ``HMAC-SHA256(K, "sparkgd-s" || n_c || n_s)``.
The secret never crosses the socket, and a recorded answer is useless against another nonce.

Every frame after the handshake is sealed (:class:`Link`): AES-256-GCM (``cryptography``) under a
key for its direction, ``HMAC-SHA256(K, "sparkgd-up" | "sparkgd-down" || n_s || n_c)``, fresh for
each connection; the nonce is the frame's sequence number in that direction and the header (kind,
length) is authenticated data. A frame altered, replayed, reordered, moved to the other direction
or to another connection fails its tag and is refused (:class:`ChannelError`); nothing of the
weights or sums crosses the wire in clear, whether or not Spark encrypts its own traffic (at
1 us a frame for 41 weights, 4.6 ms for an 8 MB one, encrypting always is cheaper than a second
code path to test).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import struct
from typing import Callable, Union

import numpy as np

from sparkgd.core import sums
from sparkgd.core.block import FoldSpec
from sparkgd.core.sums import Sums
from sparkgd.core.tree import Node

HEADER = struct.Struct("<BQ")
_HELLO = struct.Struct("<qq32s32s")  # index, extra value, client nonce, MAC
_ITER = struct.Struct("<q")  # seed, then the float64 weights
_NODE = struct.Struct("<ii")  # a piece's tree node (level, index); then its sums (sparkgd.core.sums)
_COUNT = struct.Struct("<I")
NONCE = 32

# frame kinds
CHALLENGE, ANSWER, PROOF, ADDRESS, SETUP, ITERATION, PIECES, STOP, SUMMARY, PLAN = range(1, 11)


TAG = 16  # bytes of an AES-GCM tag
COPY = -1  # the handshake's extra value of a second attempt of a task (a retry, a speculative copy)


class ChannelError(Exception):
    """A peer broke the protocol (bad MAC, unexpected frame, wrong size) or went away."""


class Link:
    """A connection after the handshake: every frame sealed for its direction and sequence number."""

    def __init__(self, sock: socket.socket, send_key: bytes, recv_key: bytes) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self.sock = sock
        self._seal, self._open = AESGCM(send_key), AESGCM(recv_key)
        self._sent = self._received = 0

    def send(self, kind: int, payload: bytes | memoryview = b"") -> None:
        header = HEADER.pack(kind, len(payload) + TAG)
        sealed = self._seal.encrypt(self._sent.to_bytes(12, "little"), bytes(payload), header)
        self._sent += 1
        self.sock.sendall(header + sealed)

    def recv(self, kinds: tuple[int, ...], max_len: int, alive: Callable[[], bool] | None = None
             ) -> tuple[int, bytearray]:
        from cryptography.exceptions import InvalidTag

        raw = _recv_exact(self.sock, HEADER.size, alive)
        kind, n = HEADER.unpack(raw)
        if kind not in kinds:
            raise ChannelError(f"unexpected frame kind {kind} (expected one of {kinds})")
        if n < TAG or n > max_len + TAG:
            raise ChannelError(f"a sealed frame of {n} bytes, expected at most {max_len + TAG}")
        sealed = _recv_exact(self.sock, n, alive)
        try:
            payload = self._open.decrypt(self._received.to_bytes(12, "little"), bytes(sealed), bytes(raw))
        except InvalidTag:
            raise ChannelError("a frame failed its check (altered, replayed, reordered or not ours)") from None
        self._received += 1
        return kind, bytearray(payload)

    def settimeout(self, value: float | None) -> None:
        self.sock.settimeout(value)

    def getsockname(self) -> tuple:
        return self.sock.getsockname()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


Conn = Union[socket.socket, Link]


def send(sock: Conn, kind: int, payload: bytes | memoryview = b"") -> None:
    if isinstance(sock, Link):
        return sock.send(kind, payload)
    sock.sendall(HEADER.pack(kind, len(payload)))
    if len(payload):
        sock.sendall(payload)


def _recv_exact(sock: socket.socket, n: int, alive: Callable[[], bool] | None) -> bytearray:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        try:
            k = sock.recv_into(view[got:])
        except TimeoutError:
            if alive is None or not alive():
                raise ChannelError("the peer did not answer in time") from None
            continue
        except OSError as e:
            raise ChannelError(f"the connection failed: {e}") from None
        if k == 0:
            raise ChannelError("the peer closed the connection")
        got += k
    return buf


def recv(sock: Conn, kinds: tuple[int, ...], max_len: int,
         alive: Callable[[], bool] | None = None) -> tuple[int, bytearray]:
    """One frame of one of ``kinds`` whose payload is at most ``max_len`` bytes."""
    if isinstance(sock, Link):
        return sock.recv(kinds, max_len, alive)
    kind, n = HEADER.unpack(_recv_exact(sock, HEADER.size, alive))
    if kind not in kinds:
        raise ChannelError(f"unexpected frame kind {kind} (expected one of {kinds})")
    if n > max_len:
        raise ChannelError(f"a frame of {n} bytes is larger than the {max_len} expected")
    return kind, _recv_exact(sock, n, alive)


def _mac(secret: bytes, *parts: bytes) -> bytes:
    return hmac.new(secret, b"".join(parts), hashlib.sha256).digest()


def _keys(secret: bytes, nonce_s: bytes, nonce_c: bytes) -> tuple[bytes, bytes]:
    """The connection's keys: (connecting -> accepting end, accepting -> connecting end)."""
    return _mac(secret, b"sparkgd-up", nonce_s, nonce_c), _mac(secret, b"sparkgd-down", nonce_s, nonce_c)


def accept_handshake(conn: socket.socket, secret: bytes) -> tuple[int, int, Link]:
    """The accepting end: challenge the peer; return its ``(index, extra)`` once it proved the secret, and the
    sealed :class:`Link` over ``conn``."""
    nonce_s = os.urandom(NONCE)
    send(conn, CHALLENGE, nonce_s)
    _, answer = recv(conn, (ANSWER,), _HELLO.size)
    if len(answer) != _HELLO.size:
        raise ChannelError("a handshake answer of the wrong size")
    index, extra, nonce_c, mac = _HELLO.unpack(answer)
    if not hmac.compare_digest(mac, _mac(secret, b"sparkgd-c", nonce_s, nonce_c, struct.pack("<qq", index, extra))):
        raise ChannelError("the peer does not know the secret")
    send(conn, PROOF, _mac(secret, b"sparkgd-s", nonce_c, nonce_s))
    up, down = _keys(secret, nonce_s, nonce_c)
    return index, extra, Link(conn, down, up)


def connect_handshake(sock: socket.socket, secret: bytes, index: int, extra: int = 0) -> Link:
    """The connecting end: answer the challenge and check the accepting end's proof; the sealed :class:`Link`."""
    _, nonce_s = recv(sock, (CHALLENGE,), NONCE)
    if len(nonce_s) != NONCE:
        raise ChannelError("a challenge of the wrong size")
    nonce_c = os.urandom(NONCE)
    mac = _mac(secret, b"sparkgd-c", bytes(nonce_s), nonce_c, struct.pack("<qq", index, extra))
    send(sock, ANSWER, _HELLO.pack(index, extra, nonce_c, mac))
    _, proof = recv(sock, (PROOF,), 32)
    if not hmac.compare_digest(bytes(proof), _mac(secret, b"sparkgd-s", nonce_c, bytes(nonce_s))):
        raise ChannelError("the accepting end does not know the secret")
    up, down = _keys(secret, bytes(nonce_s), nonce_c)
    return Link(sock, up, down)


def encode_address(host: str, port: int) -> bytes:
    return struct.pack("<H", port) + host.encode("utf-8")


def decode_address(payload: bytes) -> tuple[str, int]:
    if len(payload) < 3:
        raise ChannelError("an address frame of the wrong size")
    (port,) = struct.unpack_from("<H", payload)
    return bytes(payload[2:]).decode("utf-8"), port


def encode_iteration(seed: int, weights: np.ndarray) -> bytes:
    return _ITER.pack(int(seed)) + np.ascontiguousarray(weights, dtype="<f8").tobytes()


def decode_iteration(payload: bytearray) -> tuple[int, np.ndarray]:
    if len(payload) < _ITER.size or (len(payload) - _ITER.size) % 8:
        raise ChannelError("an iteration frame of the wrong size")
    (seed,) = _ITER.unpack_from(payload)
    return seed, np.frombuffer(payload, dtype="<f8", offset=_ITER.size)


def iteration_size(num_weights: int) -> int:
    return _ITER.size + 8 * num_weights


def encode_pieces(pieces: dict[Node, Sums | None]) -> bytes:
    """:class:`~sparkgd.core.sums.Sums` (or ``None``) keyed by tree node, each in its one encoding."""
    out = [_COUNT.pack(len(pieces))]
    for (level, index), value in sorted(pieces.items()):
        out.append(_NODE.pack(level, index))
        out.append(sums.encode(value))
    return b"".join(out)


def pieces_size(num_pieces: int, num_weights: int) -> int:
    """The largest payload :func:`encode_pieces` makes for this many pieces."""
    return _COUNT.size + num_pieces * (_NODE.size + sums.size(num_weights))


def decode_pieces(payload: bytearray, num_weights: int) -> dict[Node, Sums | None]:
    """Inverse of :func:`encode_pieces`, checking every size against ``num_weights``."""
    if len(payload) < _COUNT.size:
        raise ChannelError("a pieces frame of the wrong size")
    (count,) = _COUNT.unpack_from(payload)
    pos, out = _COUNT.size, {}
    try:
        for _ in range(count):
            if pos + _NODE.size > len(payload):
                raise ValueError("shorter than its count")
            node = _NODE.unpack_from(payload, pos)
            out[node], pos = sums.decode(payload, num_weights, pos + _NODE.size)
    except ValueError as e:
        raise ChannelError(f"a bad pieces frame: {e}") from None
    if pos != len(payload):
        raise ChannelError("a pieces frame longer than its count")
    return out


def encode_plan(fold: FoldSpec, depth: int, num_weights: int, port: int) -> bytes | None:
    """What a task that built its block needs to serve iterations: the :class:`~sparkgd.core.block.FoldSpec`,
    the tree depth, the number of weights and the root's first port, as a JSON header and the scale's
    float64 bytes. ``None`` when the spec holds what plain data cannot say (a gradient defined elsewhere)."""
    from sparkgd.core.gradients import gradient_spec

    spec = gradient_spec(fold.gradient)
    if spec is None:
        return None
    scale = fold.scale
    head = json.dumps({"gradient": spec, "fraction": fold.fraction, "fit_intercept": bool(fold.fit_intercept),
                       "validation": fold.validation, "scale": None if scale is None else len(scale),
                       "depth": depth, "num_weights": num_weights, "port": port}).encode()
    tail = b"" if scale is None else np.ascontiguousarray(scale, dtype="<f8").tobytes()
    return _COUNT.pack(len(head)) + head + tail


def decode_plan(payload: bytearray) -> tuple[FoldSpec, int, int, int]:
    """Inverse of :func:`encode_plan`: ``(fold spec, depth, num_weights, port)``."""
    from sparkgd.core.gradients import gradient_from_spec

    try:
        (size,) = _COUNT.unpack_from(payload)
        head = json.loads(bytes(payload[_COUNT.size:_COUNT.size + size]))
        count = head["scale"]
        rest = len(payload) - _COUNT.size - size
        if rest != 8 * (count or 0):
            raise ChannelError("a plan frame of the wrong size")
        validation = head["validation"]
        scale = None if count is None else np.frombuffer(payload, dtype="<f8", offset=_COUNT.size + size).copy()
        fold = FoldSpec(gradient_from_spec(head["gradient"]), float(head["fraction"]), bool(head["fit_intercept"]),
                        scale, None if validation is None else (float(validation[0]), int(validation[1])))
        return fold, int(head["depth"]), int(head["num_weights"]), int(head["port"])
    except (ValueError, KeyError, TypeError, struct.error) as e:
        raise ChannelError(f"a bad plan frame: {e}") from None
