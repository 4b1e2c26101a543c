"""grpc.health.v1.Health as a stock client (and grpc_health_probe-style tooling) uses it."""

from __future__ import annotations

import queue
import threading

import grpc
import pytest

from support import Stubs, health_pb2 as hpb

SERVING = hpb.HealthCheckResponse.SERVING
SERVICE_UNKNOWN = hpb.HealthCheckResponse.SERVICE_UNKNOWN


@pytest.fixture(scope="module")
def health(module_server):
    return Stubs(module_server.channel()).health


@pytest.mark.parametrize("service", ["", "swapline.v1.TaskService", "swapline.v1.ConsumerService"])
def test_check_serving(health, service):
    resp = health.Check(hpb.HealthCheckRequest(service=service), timeout=10)
    assert resp.status == SERVING


@pytest.mark.parametrize("service", ["no.such.Service", "grpc.testing.TestService"])
def test_check_unknown_service_is_not_found(health, service):
    with pytest.raises(grpc.RpcError) as info:
        health.Check(hpb.HealthCheckRequest(service=service), timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def _first_then_quiet(call, quiet_s: float = 1.0):
    """Returns the first streamed status and whether the stream stayed open afterwards."""
    got: queue.Queue = queue.Queue()

    def run():
        try:
            for item in call:
                got.put(item)
            got.put("END")
        except grpc.RpcError as err:
            got.put(err)

    threading.Thread(target=run, daemon=True).start()
    first = got.get(timeout=10)
    try:
        nxt = got.get(timeout=quiet_s)
    except queue.Empty:
        nxt = None
    call.cancel()
    return first, nxt


def test_watch_streams_current_status_and_stays_open(health):
    call = health.Watch(hpb.HealthCheckRequest(service=""), timeout=30)
    first, nxt = _first_then_quiet(call)
    assert isinstance(first, hpb.HealthCheckResponse), first
    assert first.status == SERVING
    assert nxt is None, f"Watch must stay open with no change; got {nxt!r}"


def test_watch_named_service(health):
    call = health.Watch(hpb.HealthCheckRequest(service="swapline.v1.TaskService"), timeout=30)
    first, _ = _first_then_quiet(call, quiet_s=0.2)
    assert isinstance(first, hpb.HealthCheckResponse), first
    assert first.status == SERVING


def test_watch_unknown_service_reports_service_unknown(health):
    # Per the health protocol, Watch does not fail for an unknown service: it reports
    # SERVICE_UNKNOWN and keeps the stream open in case the service appears.
    call = health.Watch(hpb.HealthCheckRequest(service="no.such.Service"), timeout=30)
    first, nxt = _first_then_quiet(call)
    assert isinstance(first, hpb.HealthCheckResponse), first
    assert first.status == SERVICE_UNKNOWN
    assert nxt is None
