#!/usr/bin/env python3
"""grpcio as the peer of mesh's security tests (mesh-tonic/tests/it/security/grpcio.rs).

Both roles use xDS credentials with a plaintext fallback and read the xDS
bootstrap (with file_watcher certificate_providers) from GRPC_XDS_BOOTSTRAP.

  client --target xds:///NAME --num-rpcs N
      Sends N grpc.testing.TestService/UnaryCall RPCs and prints one JSON
      object: {"ok": N, "hostnames": [...], "errors": {CODE: N}, "details": [...]}.
  server --port P --hostname H
      An xDS-enabled server (grpc.server(xds=True)) serving TestService on
      0.0.0.0:P; UnaryCall answers with hostname H and, as `username`, the
      client's identity (its certificate's URI SAN) or "" without one.
      Prints "serving" once started; runs until killed.

The stubs (package meshtest) are on PYTHONPATH (mesh_core::testing::python).
"""

import argparse
import json
import sys
import time
from concurrent import futures

import grpc
from grpc.experimental import insecure_channel_credentials
from meshtest import empty_pb2, messages_pb2, test_pb2_grpc


def client(args):
    creds = grpc.xds_channel_credentials(fallback_credentials=insecure_channel_credentials())
    ok, hostnames, errors, details = 0, set(), {}, []
    with grpc.secure_channel(args.target, creds) as channel:
        stub = test_pb2_grpc.TestServiceStub(channel)
        for _ in range(args.num_rpcs):
            try:
                resp = stub.UnaryCall(messages_pb2.SimpleRequest(fill_server_id=True), timeout=args.timeout)
                ok += 1
                hostnames.add(resp.hostname)
            except grpc.RpcError as e:
                code = e.code().name
                errors[code] = errors.get(code, 0) + 1
                if len(details) < 3:
                    details.append(e.details())
    print(json.dumps({"ok": ok, "hostnames": sorted(hostnames), "errors": errors, "details": details}))


class TestService(test_pb2_grpc.TestServiceServicer):
    def __init__(self, hostname):
        self.hostname = hostname

    def EmptyCall(self, request, context):
        context.send_initial_metadata((("hostname", self.hostname),))
        return empty_pb2.Empty()

    def UnaryCall(self, request, context):
        context.send_initial_metadata((("hostname", self.hostname),))
        sans = context.auth_context().get("x509_subject_alternative_name", [])
        uris = [s.decode() for s in sans if s.startswith(b"spiffe://")]
        return messages_pb2.SimpleResponse(
            hostname=self.hostname, server_id="grpcio", username=uris[0] if uris else ""
        )


def server(args):
    creds = grpc.xds_server_credentials(grpc.insecure_server_credentials())
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=4), xds=True)
    test_pb2_grpc.add_TestServiceServicer_to_server(TestService(args.hostname), srv)
    srv.add_secure_port(f"0.0.0.0:{args.port}", creds)
    srv.start()
    print("serving", flush=True)
    while True:
        time.sleep(3600)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="role", required=True)
    c = sub.add_parser("client")
    c.add_argument("--target", required=True)
    c.add_argument("--num-rpcs", type=int, default=5)
    c.add_argument("--timeout", type=float, default=5.0)
    s = sub.add_parser("server")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--hostname", default="grpcio-server")
    args = p.parse_args()
    client(args) if args.role == "client" else server(args)


if __name__ == "__main__":
    sys.exit(main())
