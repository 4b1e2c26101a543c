"""gRPC's official interop cases (doc/interop-test-descriptions.md in grpc/grpc), run unchanged
with the stock grpcio client against `swapline serve --enable-interop-testing`."""

from __future__ import annotations

import threading

import grpc
import pytest

from support import empty_pb2, messages_pb2, test_pb2_grpc

SC = grpc.StatusCode
SPECIAL_MESSAGE = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n"
ECHO_INITIAL = ("x-grpc-test-echo-initial", "test_initial_metadata_value")
ECHO_TRAILING = ("x-grpc-test-echo-trailing-bin", b"\xab\xab\xab")


@pytest.fixture(scope="module")
def channel(interop_server):
    if messages_pb2 is None:
        pytest.fail("proto/grpc/testing/{empty,messages,test}.proto are missing", pytrace=False)
    return interop_server.channel()


@pytest.fixture(scope="module")
def stub(channel):
    return test_pb2_grpc.TestServiceStub(channel)


def zeros(n: int) -> "messages_pb2.Payload":
    return messages_pb2.Payload(body=b"\x00" * n)


class HeldOpenRequests:
    """A request iterator that yields the given requests and then blocks without half-closing
    until released, so the client can cancel or time out mid-stream."""

    def __init__(self, *requests):
        self.requests = list(requests)
        self.release = threading.Event()

    def __iter__(self):
        yield from self.requests
        self.release.wait(30)


def test_empty_unary(stub):
    resp = stub.EmptyCall(empty_pb2.Empty(), timeout=10)
    assert isinstance(resp, empty_pb2.Empty)
    assert resp.ByteSize() == 0


def test_large_unary(stub):
    req = messages_pb2.SimpleRequest(response_size=314159, payload=zeros(271828))
    resp = stub.UnaryCall(req, timeout=10)
    assert len(resp.payload.body) == 314159
    assert resp.payload.body == b"\x00" * 314159


def test_server_streaming(stub):
    sizes = [31415, 9, 2653, 58979]
    req = messages_pb2.StreamingOutputCallRequest(
        response_parameters=[messages_pb2.ResponseParameters(size=s) for s in sizes])
    call = stub.StreamingOutputCall(req, timeout=10)
    got = [len(r.payload.body) for r in call]
    assert got == sizes
    assert call.code() == SC.OK


def test_server_streaming_respects_flow_control_for_large_responses(stub):
    # Well past the default 64 KiB windows: the server has to wait for WINDOW_UPDATEs.
    sizes = [1_000_000] * 6 + [7]
    req = messages_pb2.StreamingOutputCallRequest(
        response_parameters=[messages_pb2.ResponseParameters(size=s) for s in sizes])
    got = [r.payload.body for r in stub.StreamingOutputCall(req, timeout=30)]
    assert [len(b) for b in got] == sizes
    assert all(b == b"\x00" * len(b) for b in got)


def test_ping_pong(stub):
    steps = [(31415, 27182), (9, 8), (2653, 1828), (58979, 45904)]
    requests: list = []
    cond = threading.Condition()

    def gen():
        for size, payload in steps:
            with cond:
                requests.append(size)
            yield messages_pb2.StreamingOutputCallRequest(
                response_parameters=[messages_pb2.ResponseParameters(size=size)],
                payload=zeros(payload))
            with cond:  # wait for the reply before sending the next request
                cond.wait_for(lambda: len(got) >= len(requests), timeout=10)

    got: list[int] = []
    call = stub.FullDuplexCall(gen(), timeout=20)
    for resp in call:
        with cond:
            got.append(len(resp.payload.body))
            cond.notify_all()
    assert got == [s for s, _ in steps]
    assert call.code() == SC.OK


def test_empty_stream(stub):
    call = stub.FullDuplexCall(iter(()), timeout=10)
    assert list(call) == []
    assert call.code() == SC.OK


def test_status_code_and_message_unary(stub):
    req = messages_pb2.SimpleRequest(
        response_status=messages_pb2.EchoStatus(code=2, message="test status message"))
    with pytest.raises(grpc.RpcError) as info:
        stub.UnaryCall(req, timeout=10)
    assert info.value.code() == SC.UNKNOWN
    assert info.value.details() == "test status message"


def test_status_code_and_message_full_duplex(stub):
    req = messages_pb2.StreamingOutputCallRequest(
        response_status=messages_pb2.EchoStatus(code=2, message="test status message"))
    call = stub.FullDuplexCall(iter([req]), timeout=10)
    with pytest.raises(grpc.RpcError) as info:
        list(call)
    assert info.value.code() == SC.UNKNOWN
    assert info.value.details() == "test status message"


def test_special_status_message(stub):
    req = messages_pb2.SimpleRequest(
        response_status=messages_pb2.EchoStatus(code=2, message=SPECIAL_MESSAGE))
    with pytest.raises(grpc.RpcError) as info:
        stub.UnaryCall(req, timeout=10)
    assert info.value.code() == SC.UNKNOWN
    assert info.value.details() == SPECIAL_MESSAGE


def test_unimplemented_method(stub):
    with pytest.raises(grpc.RpcError) as info:
        stub.UnimplementedCall(empty_pb2.Empty(), timeout=10)
    assert info.value.code() == SC.UNIMPLEMENTED


def test_unimplemented_service(channel):
    unimplemented = test_pb2_grpc.UnimplementedServiceStub(channel)
    with pytest.raises(grpc.RpcError) as info:
        unimplemented.UnimplementedCall(empty_pb2.Empty(), timeout=10)
    assert info.value.code() == SC.UNIMPLEMENTED


def _assert_echoed(initial, trailing):
    assert ECHO_INITIAL in list(initial), f"initial metadata: {initial!r}"
    assert ECHO_TRAILING in list(trailing), f"trailing metadata: {trailing!r}"


def test_custom_metadata_unary(stub):
    req = messages_pb2.SimpleRequest(response_size=314159, payload=zeros(271828))
    resp, call = stub.UnaryCall.with_call(req, metadata=[ECHO_INITIAL, ECHO_TRAILING], timeout=10)
    assert len(resp.payload.body) == 314159
    _assert_echoed(call.initial_metadata(), call.trailing_metadata())


def test_custom_metadata_streaming_output(stub):
    req = messages_pb2.StreamingOutputCallRequest(
        response_parameters=[messages_pb2.ResponseParameters(size=314159)], payload=zeros(271828))
    call = stub.StreamingOutputCall(req, metadata=[ECHO_INITIAL, ECHO_TRAILING], timeout=10)
    assert [len(r.payload.body) for r in call] == [314159]
    assert call.code() == SC.OK
    _assert_echoed(call.initial_metadata(), call.trailing_metadata())


def test_custom_metadata_full_duplex(stub):
    req = messages_pb2.StreamingOutputCallRequest(
        response_parameters=[messages_pb2.ResponseParameters(size=314159)], payload=zeros(271828))
    call = stub.FullDuplexCall(iter([req]), metadata=[ECHO_INITIAL, ECHO_TRAILING], timeout=10)
    assert [len(r.payload.body) for r in call] == [314159]
    assert call.code() == SC.OK
    _assert_echoed(call.initial_metadata(), call.trailing_metadata())


def test_timeout_on_sleeping_server(stub, interop_server):
    requests = HeldOpenRequests(messages_pb2.StreamingOutputCallRequest(payload=zeros(27182)))
    call = stub.FullDuplexCall(iter(requests), timeout=0.001)
    try:
        with pytest.raises(grpc.RpcError) as info:
            list(call)
        assert info.value.code() == SC.DEADLINE_EXCEEDED
    finally:
        requests.release.set()
    # and the server is none the worse for it
    assert stub.EmptyCall(empty_pb2.Empty(), timeout=10).ByteSize() == 0


def test_cancel_after_first_response(stub):
    requests = HeldOpenRequests(messages_pb2.StreamingOutputCallRequest(
        response_parameters=[messages_pb2.ResponseParameters(size=31415)], payload=zeros(27182)))
    call = stub.FullDuplexCall(iter(requests), timeout=20)
    try:
        first = next(call)
        assert len(first.payload.body) == 31415
        call.cancel()
        with pytest.raises(grpc.RpcError) as info:
            next(call)
        assert info.value.code() == SC.CANCELLED
        assert call.code() == SC.CANCELLED
    finally:
        requests.release.set()
    assert stub.EmptyCall(empty_pb2.Empty(), timeout=10).ByteSize() == 0


def test_interop_service_is_off_by_default(module_server):
    if empty_pb2 is None:
        pytest.fail("interop protos missing", pytrace=False)
    stub = test_pb2_grpc.TestServiceStub(module_server.channel())
    with pytest.raises(grpc.RpcError) as info:
        stub.EmptyCall(empty_pb2.Empty(), timeout=10)
    assert info.value.code() == SC.UNIMPLEMENTED
