"""The finsy side of bench/bmv2.py, in a process of its own: finsy's generated protobuf modules
register the same .proto files (google/rpc/status.proto, p4/v1/p4runtime.proto) as ICPN's, and
one process's protobuf pool holds each file once.

    python bench/finsy_write.py ADDRESS DEVICE_ID ELECTION_ID P4INFO N BATCH

Writes N FIB entries (the same table, keys and action as the ICPN and bare clients, under
5000::/16) encoded by finsy from its entity objects through its P4Schema, in WriteRequests of
BATCH, with the election id of the ICPN client that holds the primary role, and prints
entries/s (encoding and writing; the objects are built before the clock starts).
"""

from __future__ import annotations

import ipaddress
import sys
import time
from pathlib import Path

import finsy as fy
import grpc
from finsy import p4entity
from finsy.proto import p4r

FAMILY_IPV6 = 6  # pyctl.targets.bmv2.codes.FAMILY_IPV6 (not imported: its protobufs clash)
NEXT = "02:00:00:00:0b:01"


def main(argv: list[str]) -> int:
    address, device, election, p4info, n_text, batch_text = argv
    n, batch = int(n_text), int(batch_text)
    schema = fy.P4Schema(Path(p4info))
    base = int(ipaddress.IPv6Address("5000::"))
    entries = [
        +fy.P4TableEntry(
            "fib",
            match=fy.P4TableMatch(vrf=1, family=FAMILY_IPV6, addr=(base + (i << 64), 64)),
            action=fy.P4TableAction("set_nexthop", port=2, dmac=NEXT),
        )
        for i in range(n)
    ]
    with grpc.insecure_channel(address) as channel:
        write = channel.unary_unary(
            "/p4.v1.P4Runtime/Write",
            request_serializer=p4r.WriteRequest.SerializeToString,
            response_deserializer=p4r.WriteResponse.FromString,
        )
        election_id = p4r.Uint128(low=int(election))
        start = time.monotonic()
        for lo in range(0, n, batch):
            req = p4r.WriteRequest(device_id=int(device), election_id=election_id)
            req.updates.extend(p4entity.encode_updates(entries[lo : lo + batch], schema))
            write(req, timeout=60)
        print(n / (time.monotonic() - start))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
