"""Retries on I/O: the deployment flow's reload signal to a serving endpoint that answers 500 once."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.helpers.flows import OVERRIDES, PROFILE, FullRun, Project, prefect_client, task_run_named
from tests.helpers.ports import free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def flaky_server() -> Iterator[tuple[int, list[int]]]:
    """A local stand-in for `medpipe serve`: POST /v1/reload answers 500 the first time, then reloads."""
    answers: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server API
            status = 500 if not answers else 200
            answers.append(status)
            body = json.dumps({"reloaded": status == 200}).encode()
            self.send_response(status if self.path == "/v1/reload" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:  # quiet
            pass

    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield port, answers
    server.shutdown()
    server.server_close()


def test_a_flaky_reload_call_is_retried_and_recorded(
    full_run: FullRun, project: Project, flaky_server: tuple[int, list[int]]
) -> None:
    from pipelines.deployment import deployment_flow

    port, answers = flaky_server
    t = full_run.summary.training
    overrides = [*OVERRIDES, "serving.host=127.0.0.1", f"serving.port={port}"]
    state = deployment_flow(t.prepared_path, t.champion, project.params, PROFILE, overrides, return_state=True)

    assert state.is_completed(), state.message
    assert state.result().server_reloaded is True
    assert answers == [500, 200]
    with prefect_client() as client:
        run = task_run_named(client, state.state_details.flow_run_id, "signal-server")
        assert run.run_count == 2
        names = [s.name for s in client.read_task_run_states(run.id)]
    assert names.count("AwaitingRetry") == 1 and names[-1] == "Completed", names
