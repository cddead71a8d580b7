"""The resident tasks' wire format: fixed binary frames and a challenge-response handshake.

Nothing on this channel is ever unpickled. A frame is a 1-byte kind and an 8-byte length
followed by the payload; the reader checks the kind and the length against what it expects
before it reads the payload. Payloads are raw little-endian integers and float64 arrays.

Both ends hold a per-call secret ``K`` (random, shipped in the task closure). The accepting
end sends a fresh nonce ``n_s``; the connecting end answers with its index ``i``, a value
``x``, its own nonce ``n_c`` and ``HMAC-SHA256(K, "sparkgd-c" || n_s || n_c || i || x)``; the
accepting end checks it and proves itself with ``HMAC-SHA256(K, "sparkgd-s" || n_c || n_s)``.
The secret never crosses the socket, and a recorded answer is useless against another nonce.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import struct
from typing import Any, Callable

import numpy as np

from sparkgd.core.tree import Node

HEADER = struct.Struct("<BQ")
_HELLO = struct.Struct("<qq32s32s")  # index, extra value, client nonce, MAC
_ITER = struct.Struct("<q")  # seed, then the float64 weights
_PIECE = struct.Struct("<iiBqdd")  # level, index, has value, rows, loss sum, weight sum; then 8d bytes if any
_COUNT = struct.Struct("<I")
NONCE = 32

# frame kinds
CHALLENGE, ANSWER, PROOF, ADDRESS, SETUP, ITERATION, PIECES, STOP, SUMMARY, PLAN = range(1, 11)


class ChannelError(Exception):
    """A peer broke the protocol (bad MAC, unexpected frame, wrong size) or went away."""


def send(sock: socket.socket, kind: int, payload: bytes | memoryview = b"") -> None:
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


def recv(sock: socket.socket, kinds: tuple[int, ...], max_len: int,
         alive: Callable[[], bool] | None = None) -> tuple[int, bytearray]:
    """One frame of one of ``kinds`` whose payload is at most ``max_len`` bytes."""
    kind, n = HEADER.unpack(_recv_exact(sock, HEADER.size, alive))
    if kind not in kinds:
        raise ChannelError(f"unexpected frame kind {kind} (expected one of {kinds})")
    if n > max_len:
        raise ChannelError(f"a frame of {n} bytes is larger than the {max_len} expected")
    return kind, _recv_exact(sock, n, alive)


def _mac(secret: bytes, *parts: bytes) -> bytes:
    return hmac.new(secret, b"".join(parts), hashlib.sha256).digest()


def accept_handshake(conn: socket.socket, secret: bytes) -> tuple[int, int]:
    """The accepting end: challenge the peer; return its ``(index, extra)`` once it proved the secret."""
    nonce_s = os.urandom(NONCE)
    send(conn, CHALLENGE, nonce_s)
    _, answer = recv(conn, (ANSWER,), _HELLO.size)
    if len(answer) != _HELLO.size:
        raise ChannelError("a handshake answer of the wrong size")
    index, extra, nonce_c, mac = _HELLO.unpack(answer)
    if not hmac.compare_digest(mac, _mac(secret, b"sparkgd-c", nonce_s, nonce_c, struct.pack("<qq", index, extra))):
        raise ChannelError("the peer does not know the secret")
    send(conn, PROOF, _mac(secret, b"sparkgd-s", nonce_c, nonce_s))
    return index, extra


def connect_handshake(sock: socket.socket, secret: bytes, index: int, extra: int = 0) -> None:
    """The connecting end: answer the challenge and check the accepting end's proof."""
    _, nonce_s = recv(sock, (CHALLENGE,), NONCE)
    if len(nonce_s) != NONCE:
        raise ChannelError("a challenge of the wrong size")
    nonce_c = os.urandom(NONCE)
    mac = _mac(secret, b"sparkgd-c", bytes(nonce_s), nonce_c, struct.pack("<qq", index, extra))
    send(sock, ANSWER, _HELLO.pack(index, extra, nonce_c, mac))
    _, proof = recv(sock, (PROOF,), 32)
    if not hmac.compare_digest(bytes(proof), _mac(secret, b"sparkgd-s", nonce_c, bytes(nonce_s))):
        raise ChannelError("the accepting end does not know the secret")


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


def encode_pieces(pieces: dict[Node, Any]) -> bytes:
    """Accumulators ``(gradient sum, loss sum, rows, weight sum)`` or ``None``, keyed by tree node."""
    out = [_COUNT.pack(len(pieces))]
    for (level, index), acc in sorted(pieces.items()):
        if acc is None:
            out.append(_PIECE.pack(level, index, 0, 0, 0.0, 0.0))
        else:
            g, loss, rows, wsum = acc
            out.append(_PIECE.pack(level, index, 1, rows, loss, wsum))
            out.append(np.ascontiguousarray(g, dtype="<f8").tobytes())
    return b"".join(out)


def pieces_size(num_pieces: int, num_weights: int) -> int:
    """The largest payload :func:`encode_pieces` makes for this many pieces."""
    return _COUNT.size + num_pieces * (_PIECE.size + 8 * num_weights)


def decode_pieces(payload: bytearray, num_weights: int) -> dict[Node, Any]:
    """Inverse of :func:`encode_pieces`, checking every size against ``num_weights``."""
    if len(payload) < _COUNT.size:
        raise ChannelError("a pieces frame of the wrong size")
    (count,) = _COUNT.unpack_from(payload)
    pos, out = _COUNT.size, {}
    for _ in range(count):
        if pos + _PIECE.size > len(payload):
            raise ChannelError("a pieces frame shorter than its count")
        level, index, has, rows, loss, wsum = _PIECE.unpack_from(payload, pos)
        pos += _PIECE.size
        if has not in (0, 1):
            raise ChannelError("a piece with a bad flag")
        if has:
            end = pos + 8 * num_weights
            if end > len(payload):
                raise ChannelError("a pieces frame shorter than its vectors")
            g = np.frombuffer(payload, dtype="<f8", count=num_weights, offset=pos).copy()
            out[(level, index)] = (g, loss, rows, wsum)
            pos = end
        else:
            out[(level, index)] = None
    if pos != len(payload):
        raise ChannelError("a pieces frame longer than its count")
    return out


def encode_plan(kw: dict, depth: int, num_weights: int, port: int) -> bytes | None:
    """What a task that built its block needs to serve iterations: :func:`~sparkgd.core.block.block_sums`'s
    keywords, the tree depth, the number of weights and the root's first port, as a JSON header and the
    scale's float64 bytes. ``None`` when ``kw`` holds what plain data cannot say (a gradient defined elsewhere)."""
    from sparkgd.core.gradients import gradient_spec

    spec = gradient_spec(kw["gradient"])
    if spec is None or set(kw) - {"gradient", "fraction", "fit_intercept", "scale", "validation"}:
        return None
    scale = kw.get("scale")
    head = json.dumps({"gradient": spec, "fraction": kw["fraction"], "fit_intercept": bool(kw["fit_intercept"]),
                       "validation": kw.get("validation"), "scale": None if scale is None else len(scale),
                       "depth": depth, "num_weights": num_weights, "port": port}).encode()
    tail = b"" if scale is None else np.ascontiguousarray(scale, dtype="<f8").tobytes()
    return _COUNT.pack(len(head)) + head + tail


def decode_plan(payload: bytearray) -> tuple[dict, int, int, int]:
    """Inverse of :func:`encode_plan`: ``(kw, depth, num_weights, port)``."""
    from sparkgd.core.gradients import gradient_from_spec

    try:
        (size,) = _COUNT.unpack_from(payload)
        head = json.loads(bytes(payload[_COUNT.size:_COUNT.size + size]))
        count = head["scale"]
        rest = len(payload) - _COUNT.size - size
        if rest != 8 * (count or 0):
            raise ChannelError("a plan frame of the wrong size")
        kw = {"gradient": gradient_from_spec(head["gradient"]), "fraction": float(head["fraction"]),
              "fit_intercept": bool(head["fit_intercept"]),
              "scale": None if count is None else np.frombuffer(payload, dtype="<f8", offset=_COUNT.size + size).copy()}
        if head["validation"] is not None:
            kw["validation"] = (float(head["validation"][0]), int(head["validation"][1]))
        return kw, int(head["depth"]), int(head["num_weights"]), int(head["port"])
    except (ValueError, KeyError, TypeError, struct.error) as e:
        raise ChannelError(f"a bad plan frame: {e}") from None
