#!/usr/bin/env python3
"""A grpcio xDS client for mesh-control's interop test.

Sends --num-rpcs sequential grpc.testing.TestService/UnaryCall RPCs to an
xds:/// target (GRPC_XDS_BOOTSTRAP names the bootstrap) and prints one JSON
object: {"ok": N, "by_host": {hostname: count}, "errors": {CODE: count}}.

The stubs are generated from mesh-core/proto into --stubs by the test
(grpc_tools.protoc); nothing generated is committed.
"""

import argparse
import json
import sys


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--target", required=True, help="xds:///host:port")
    p.add_argument("--stubs", required=True, help="directory of generated stubs")
    p.add_argument("--num-rpcs", type=int, default=100)
    p.add_argument("--metadata", action="append", default=[], help="key=value, repeatable")
    p.add_argument("--timeout", type=float, default=10.0, help="per-RPC deadline (s)")
    args = p.parse_args()

    sys.path.insert(0, args.stubs)
    import grpc
    from meshtest import messages_pb2, test_pb2_grpc

    metadata = [tuple(kv.split("=", 1)) for kv in args.metadata]
    by_host, errors, ok = {}, {}, 0
    with grpc.insecure_channel(args.target) as channel:
        stub = test_pb2_grpc.TestServiceStub(channel)
        # The first RPC waits for xDS to deliver a config.
        grpc.channel_ready_future(channel).result(timeout=args.timeout)
        for _ in range(args.num_rpcs):
            try:
                resp = stub.UnaryCall(
                    messages_pb2.SimpleRequest(fill_server_id=True),
                    metadata=metadata,
                    timeout=args.timeout,
                    wait_for_ready=True,
                )
                ok += 1
                by_host[resp.hostname] = by_host.get(resp.hostname, 0) + 1
            except grpc.RpcError as e:
                code = e.code().name
                errors[code] = errors.get(code, 0) + 1
    print(json.dumps({"ok": ok, "by_host": by_host, "errors": errors}))


if __name__ == "__main__":
    main()
