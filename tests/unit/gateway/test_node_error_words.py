"""A node that cannot be reached is named in words; gRPC's transport text stays in the gateway's log."""

from __future__ import annotations

import grpc
import pytest

from comity.core import errors
from comity.core.rpc import to_trailing_metadata
from comity.gateway.routing import _node_error

TRANSPORT = (
    "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:42951: "
    "Failed to connect to remote host: Connection refused"
)


def _rpc_error(code: grpc.StatusCode, details: str, trailer: object = ()) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(*trailer), details=details)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN]
)
def test_transport_failures_are_worded_without_addresses(
    code: grpc.StatusCode, caplog: pytest.LogCaptureFixture
) -> None:
    err = _node_error("us-node", _rpc_error(code, TRANSPORT))
    assert isinstance(err, errors.Unavailable)
    words = err.diagnostics()
    assert "'us-node'" in words and "query was not answered" in words and "try again later" in words
    for internal in ("127.0.0.1", "ipv4", "failed to connect to all addresses", "UNKNOWN:"):
        assert internal not in words
    assert TRANSPORT in caplog.text  # the operator still has gRPC's words


def test_the_nodes_own_worded_answer_reaches_the_caller() -> None:
    node = errors.Unavailable("the record store cannot be used: the database is unreachable")
    trailer = to_trailing_metadata(node)
    err = _node_error("us-node", _rpc_error(grpc.StatusCode.UNAVAILABLE, node.message, trailer))
    assert isinstance(err, errors.Unavailable)
    assert err.message == "node 'us-node': the record store cannot be used: the database is unreachable"


def test_a_deadline_is_a_deadline() -> None:
    err = _node_error("us-node", _rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"))
    assert isinstance(err, errors.DeadlineExceeded) and "within the deadline" in err.message
