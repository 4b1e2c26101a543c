"""`output_providers` past the 128 bytes of `storage_provider`: a consumer that sends the map
gets it stored whole and served by gRPC and REST, while `storage_provider` (a short name
field) falls back to the providers."""

from __future__ import annotations

import httpx

from support import tasks_pb2 as pb
from test_tasks import fetched, get, update


def test_a_long_output_providers_map_is_kept_whole(server, stubs):
    resp = fetched(stubs)
    providers = {f"format{n:02}": "local" if n == 0 else "s3" for n in range(20)}
    outputs = {fmt: f"https://cdn.example.com/{resp.task.task_id}/{fmt}" for fmt in providers}
    per_output = ",".join(f"{fmt}:{providers[fmt]}" for fmt in sorted(providers))
    assert len(per_output) > 128
    result = pb.TaskResult(output_url=outputs["format00"], outputs=outputs, job_id="job_1",
                           storage_provider="local,s3", output_providers=providers)
    done = update(stubs, resp.task.task_id, resp.lease_id, pb.TASK_STATUS_COMPLETED, result=result)
    assert dict(done.result.output_providers) == providers
    assert done.result.storage_provider == "local,s3"

    stored = get(stubs, resp.task.task_id)
    assert dict(stored.result.output_providers) == providers
    assert stored.result.storage_provider == "local,s3"
    rest = httpx.get(f"http://{server.address}/api/face-swap/task/{resp.task.task_id}", timeout=10)
    assert rest.status_code == 200, rest.text
    assert rest.json()["result"]["output_providers"] == providers
    assert "files_expired_at_ms" not in rest.json()["result"] and stored.result.files_expired_at_ms == 0
