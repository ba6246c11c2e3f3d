"""The buffered AMQP transport cuts the same frames out of the stream, whatever the chunking."""

import socket
import struct

import pytest

from evtools.amqptransport import BufferedTCPTransport


def frame(kind, channel, payload):
    return struct.pack(">BHI", kind, channel, len(payload)) + payload + b"\xce"


def transport_on(sock):
    transport = object.__new__(BufferedTCPTransport)
    transport.sock = sock
    transport.raise_on_initial_eintr = True
    transport.connected = True
    transport._setup_transport()
    return transport


def test_frames_split_and_packed_any_way_are_read_whole():
    ours, theirs = socket.socketpair()
    frames = [frame(1, 1, b"x" * n) for n in (0, 1, 7, 300, 70000)] + [frame(3, 2, b"body")]
    stream = b"".join(frames)
    transport = transport_on(ours)
    for start in range(0, len(stream), 4093):  # odd-sized chunks cut through headers and bodies
        theirs.sendall(stream[start:start + 4093])
    got = [transport.read_frame() for _ in frames]
    assert got == [(1, 1, b"x" * n) for n in (0, 1, 7, 300, 70000)] + [(3, 2, b"body")]


def test_a_timeout_in_the_middle_of_a_frame_loses_nothing():
    ours, theirs = socket.socketpair()
    transport = transport_on(ours)
    data = frame(1, 1, b"hello world")
    theirs.sendall(data[:9])
    ours.settimeout(0.05)
    with pytest.raises(socket.timeout):
        transport.read_frame()
    theirs.sendall(data[9:])
    assert transport.read_frame() == (1, 1, b"hello world")


def test_a_bad_frame_end_and_a_closed_peer_are_errors():
    from amqp.exceptions import UnexpectedFrame
    ours, theirs = socket.socketpair()
    transport = transport_on(ours)
    theirs.sendall(frame(1, 1, b"ab")[:-1] + b"\x00")
    with pytest.raises(UnexpectedFrame):
        transport.read_frame()
    theirs.close()
    with pytest.raises(OSError, match="unexpectedly closed"):
        transport.read_frame()
    assert transport.connected is False
