"""gRPC server reflection (grpc.reflection.v1 and v1alpha) as stock clients use it: grpcio-
reflection's ProtoReflectionDescriptorDatabase over v1alpha, raw v1 stubs generated from
proto/grpc/reflection/v1, and health per exposed service name."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from support import Stubs, SwaplineServer, health_pb2 as hpb  # first: generates the grpcproto stubs
from grpcproto.reflection.v1 import reflection_pb2 as v1, reflection_pb2_grpc as v1_grpc  # noqa: I001

BASE_SERVICES = {
    "swapline.v1.TaskService", "swapline.v1.ConsumerService", "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection",
}
NOT_FOUND = grpc.StatusCode.NOT_FOUND.value[0]


def v1_exchange(channel, *requests: v1.ServerReflectionRequest) -> list[v1.ServerReflectionResponse]:
    """Sends `requests` on one v1 stream and returns the answers, one per request."""
    stub = v1_grpc.ServerReflectionStub(channel)
    return list(stub.ServerReflectionInfo(iter(requests), timeout=20))


def file_names(response: v1.ServerReflectionResponse) -> list[str]:
    assert response.WhichOneof("message_response") == "file_descriptor_response", response
    names = []
    for serialized in response.file_descriptor_response.file_descriptor_proto:
        proto = descriptor_pb2.FileDescriptorProto()
        proto.ParseFromString(serialized)
        names.append(proto.name)
    return names


@pytest.mark.parametrize("interop", [False, True], ids=["default", "interop-testing"])
def test_v1alpha_lists_and_resolves_every_method(server_factory, interop):
    server = server_factory(*(["--enable-interop-testing"] if interop else []))
    database = ProtoReflectionDescriptorDatabase(server.channel())
    services = set(database.get_services())
    assert services == BASE_SERVICES | ({"grpc.testing.TestService"} if interop else set())
    pool = DescriptorPool(database)
    for name in services:
        service = pool.FindServiceByName(name)
        assert service.methods, name
        for method in service.methods:
            # Both ends of every method resolve to a full message descriptor.
            assert method.input_type.fields is not None and method.output_type.full_name
    create = pool.FindMethodByName("swapline.v1.TaskService.CreateTask")
    assert create.input_type.full_name == "swapline.v1.CreateTaskRequest"
    assert create.output_type.full_name == "swapline.v1.Task"
    assert pool.FindEnumTypeByName("swapline.v1.TaskStatus").values_by_name["TASK_STATUS_PENDING"].number == 1
    with pytest.raises(KeyError):
        database.FindFileContainingSymbol("swapline.v1.NoSuchMessage")
    with pytest.raises(KeyError):
        database.FindFileByName("no/such/file.proto")


def test_v1_answers_every_kind_of_request_on_one_stream(module_server):
    list_services, by_symbol, again, by_name, unknown, extension, numbers, unknown_type = v1_exchange(
        module_server.channel(),
        v1.ServerReflectionRequest(host="h", list_services=""),
        v1.ServerReflectionRequest(file_containing_symbol="swapline.v1.TaskService.CreateTask"),
        v1.ServerReflectionRequest(file_containing_symbol="swapline.v1.FaceSwapParams.OptionsEntry"),
        v1.ServerReflectionRequest(file_by_filename="grpc/health/v1/health.proto"),
        v1.ServerReflectionRequest(file_containing_symbol="swapline.v1.Nope"),
        v1.ServerReflectionRequest(file_containing_extension=v1.ExtensionRequest(
            containing_type="swapline.v1.Task", extension_number=100)),
        v1.ServerReflectionRequest(all_extension_numbers_of_type="swapline.v1.Task"),
        v1.ServerReflectionRequest(all_extension_numbers_of_type="swapline.v1.Nope"),
    )
    assert {s.name for s in list_services.list_services_response.service} == BASE_SERVICES
    assert list_services.valid_host == "h" and list_services.original_request.list_services == ""
    assert file_names(by_symbol) == ["swapline/v1/tasks.proto"]
    assert file_names(again) == ["swapline/v1/tasks.proto"]
    assert file_names(by_name) == ["grpc/health/v1/health.proto"]
    for response in (unknown, extension, unknown_type):
        assert response.error_response.error_code == NOT_FOUND and response.error_response.error_message
    assert numbers.all_extension_numbers_response.base_type_name == "swapline.v1.Task"
    assert list(numbers.all_extension_numbers_response.extension_number) == []


def test_v1_sends_dependencies_with_the_file_once_per_stream(interop_server):
    first, second = v1_exchange(
        interop_server.channel(),
        v1.ServerReflectionRequest(file_containing_symbol="grpc.testing.TestService"),
        v1.ServerReflectionRequest(file_by_filename="grpc/testing/messages.proto"),
    )
    names = file_names(first)
    assert names[0] == "grpc/testing/test.proto"
    assert set(names) == {"grpc/testing/test.proto", "grpc/testing/empty.proto", "grpc/testing/messages.proto"}
    assert file_names(second) == ["grpc/testing/messages.proto"]


def test_reflection_is_open_on_a_server_with_tokens(tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("client reflection-client-token\n")
    server = SwaplineServer("--store", "memory", "--auth-tokens-file", str(tokens)).start()
    try:
        assert set(ProtoReflectionDescriptorDatabase(server.channel()).get_services()) == BASE_SERVICES
        (answer,) = v1_exchange(server.channel(), v1.ServerReflectionRequest(list_services=""))
        assert {s.name for s in answer.list_services_response.service} == BASE_SERVICES
    finally:
        server.stop()


@pytest.mark.parametrize("interop", [False, True], ids=["default", "interop-testing"])
def test_health_answers_for_every_listed_service_and_only_those(server_factory, interop):
    server = server_factory(*(["--enable-interop-testing"] if interop else []))
    health = Stubs(server.channel()).health
    listed = set(ProtoReflectionDescriptorDatabase(server.channel()).get_services())
    for service in listed | {""}:
        assert health.Check(hpb.HealthCheckRequest(service=service), timeout=10).status == hpb.HealthCheckResponse.SERVING
    unknown = ["no.such.Service"] + ([] if interop else ["grpc.testing.TestService"])
    for service in unknown:
        with pytest.raises(grpc.RpcError) as info:
            health.Check(hpb.HealthCheckRequest(service=service), timeout=10)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
