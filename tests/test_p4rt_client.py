"""The P4Runtime client against an in-process fake P4Runtime server (no BMv2 needed).

The fake server keeps table entries, clone sessions and counters, elects a primary by election
id, answers Write errors the way PI does (a google.rpc.Status whose details hold one p4.v1.Error
per update) and echoes packet-outs back as packet-ins.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field

import grpc
import pytest
from google.protobuf import any_pb2

from pyctl.p4rt import (
    LPM,
    CloneSession,
    CounterEntry,
    Exact,
    NotPrimaryError,
    P4Info,
    P4InfoError,
    P4RuntimeController,
    P4RuntimeError,
    Switch,
    TableEntry,
    Ternary,
    Update,
)
from pyctl.p4rt.pb import code_pb2, p4info_pb2, p4runtime_pb2, p4runtime_pb2_grpc, status_pb2


def synthetic_p4info() -> p4info_pb2.P4Info:
    """A small P4Info shaped like icpn.p4's: an LPM table, a ternary table, a counter, headers."""
    info = p4info_pb2.P4Info()
    t = info.tables.add()
    t.preamble.id, t.preamble.name, t.preamble.alias = 1, "IcpnIngress.endpoint.my_sid", "my_sid"
    t.match_fields.add(id=1, name="sid", bitwidth=128, match_type=p4info_pb2.MatchField.LPM)
    t.action_refs.add(id=10)
    t.action_refs.add(id=12)
    t.size = 1024
    t2 = info.tables.add()
    t2.preamble.id, t2.preamble.name, t2.preamble.alias = 2, "IcpnIngress.headend.policy", "policy"
    t2.match_fields.add(id=1, name="dst", bitwidth=128, match_type=p4info_pb2.MatchField.TERNARY)
    t2.match_fields.add(id=2, name="dscp", bitwidth=6, match_type=p4info_pb2.MatchField.TERNARY)
    t2.action_refs.add(id=11)
    t2.action_refs.add(id=12)
    t3 = info.tables.add()
    t3.preamble.id, t3.preamble.name, t3.preamble.alias = 3, "IcpnIngress.test_ctx", "test_ctx"
    t3.action_refs.add(id=13)
    t3.action_refs.add(id=12)
    a = info.actions.add()
    a.preamble.id, a.preamble.name, a.preamble.alias = 10, "IcpnIngress.endpoint.end", "end"
    a.params.add(id=1, name="psp", bitwidth=1)
    a.params.add(id=2, name="csid_bits", bitwidth=8)
    a2 = info.actions.add()
    a2.preamble.id, a2.preamble.name, a2.preamble.alias = 11, "IcpnIngress.set_policy", "set_policy"
    a2.params.add(id=1, name="policy_id", bitwidth=16)
    a3 = info.actions.add()
    a3.preamble.id, a3.preamble.name, a3.preamble.alias = 12, "NoAction", "NoAction"
    a4 = info.actions.add()
    a4.preamble.id, a4.preamble.name, a4.preamble.alias = (
        13,
        "IcpnIngress.set_context",
        "set_context",
    )
    a4.params.add(id=1, name="time_us", bitwidth=48)
    c = info.counters.add()
    c.preamble.id, c.preamble.name, c.preamble.alias = 20, "ifit_counts", "ifit_counts"
    c.size = 16
    for cid, name, fields in (
        (30, "packet_in", (("ingress_port", 16), ("reason", 16))),
        (31, "packet_out", (("egress_port", 16), ("in_port", 16), ("mode", 8), ("reserved", 8))),
    ):
        m = info.controller_packet_metadata.add()
        m.preamble.id, m.preamble.name = cid, name
        for i, (fname, bw) in enumerate(fields, 1):
            m.metadata.add(id=i, name=fname, bitwidth=bw)
    return info


def _key(te: p4runtime_pb2.TableEntry) -> tuple[int, bytes, int, bool]:
    match = b"".join(m.SerializeToString() for m in sorted(te.match, key=lambda m: m.field_id))
    return (te.table_id, match, te.priority, te.is_default_action)


@dataclass
class FakeState:
    p4info: p4info_pb2.P4Info | None = None
    device_config: bytes = b""
    tables: dict[tuple[int, bytes, int, bool], p4runtime_pb2.TableEntry] = field(
        default_factory=dict
    )
    clones: dict[int, p4runtime_pb2.CloneSessionEntry] = field(default_factory=dict)
    counters: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)
    primary: int = 0
    writes: int = 0
    write_delay: float = 0.0  # seconds each Write takes (to see whether requests overlap)
    in_flight: int = 0
    most_in_flight: int = 0
    first_sids: list[bytes] = field(default_factory=list)  # each Write's first match value
    lock: threading.Lock = field(default_factory=threading.Lock)


class FakeP4Runtime(p4runtime_pb2_grpc.P4RuntimeServicer):
    def __init__(self) -> None:
        self.state = FakeState()

    def _check_primary(
        self, election: p4runtime_pb2.Uint128, context: grpc.ServicerContext
    ) -> None:
        eid = election.high << 64 | election.low
        if eid != self.state.primary:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "not the primary controller")

    def SetForwardingPipelineConfig(
        self,
        request: p4runtime_pb2.SetForwardingPipelineConfigRequest,
        context: grpc.ServicerContext,
    ) -> p4runtime_pb2.SetForwardingPipelineConfigResponse:
        self._check_primary(request.election_id, context)
        if not request.config.p4_device_config:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "empty device config")
        with self.state.lock:
            self.state.p4info = request.config.p4info
            self.state.device_config = request.config.p4_device_config
            self.state.tables.clear()
        return p4runtime_pb2.SetForwardingPipelineConfigResponse()

    def _apply(self, u: p4runtime_pb2.Update) -> p4runtime_pb2.Error:
        ok = p4runtime_pb2.Error(canonical_code=code_pb2.OK)
        which = u.entity.WhichOneof("entity")
        if which == "table_entry":
            te = u.entity.table_entry
            tables = (
                {t.preamble.id for t in self.state.p4info.tables} if self.state.p4info else set()
            )
            if te.table_id not in tables:
                return p4runtime_pb2.Error(
                    canonical_code=code_pb2.NOT_FOUND, message=f"table id {te.table_id} unknown"
                )
            key = _key(te)
            if te.is_default_action:
                self.state.tables[key] = te
                return ok
            if u.type == p4runtime_pb2.Update.INSERT:
                if key in self.state.tables:
                    return p4runtime_pb2.Error(
                        canonical_code=code_pb2.ALREADY_EXISTS,
                        message="Match entry exists, use MODIFY if you wish to change action",
                    )
                for p in te.action.action.params:
                    if p.param_id == 2 and len(p.value) > 1:
                        return p4runtime_pb2.Error(
                            canonical_code=code_pb2.INVALID_ARGUMENT,
                            message="Bytestring provided for csid_bits does not fit",
                        )
                self.state.tables[key] = te
            elif u.type == p4runtime_pb2.Update.MODIFY:
                if key not in self.state.tables:
                    return p4runtime_pb2.Error(
                        canonical_code=code_pb2.NOT_FOUND, message="no entry"
                    )
                self.state.tables[key] = te
            else:
                if self.state.tables.pop(key, None) is None:
                    return p4runtime_pb2.Error(
                        canonical_code=code_pb2.NOT_FOUND, message="Cannot find match entry"
                    )
            return ok
        if which == "packet_replication_engine_entry":
            cs = u.entity.packet_replication_engine_entry.clone_session_entry
            self.state.clones[cs.session_id] = cs
            return ok
        if which == "counter_entry":
            ce = u.entity.counter_entry
            self.state.counters[(ce.counter_id, ce.index.index)] = (
                ce.data.packet_count,
                ce.data.byte_count,
            )
            return ok
        return p4runtime_pb2.Error(canonical_code=code_pb2.UNIMPLEMENTED, message=which or "?")

    def Write(
        self, request: p4runtime_pb2.WriteRequest, context: grpc.ServicerContext
    ) -> p4runtime_pb2.WriteResponse:
        self._check_primary(request.election_id, context)
        with self.state.lock:
            self.state.in_flight += 1
            self.state.most_in_flight = max(self.state.most_in_flight, self.state.in_flight)
        time.sleep(self.state.write_delay)
        with self.state.lock:
            self.state.in_flight -= 1
            results = [self._apply(u) for u in request.updates]
            self.state.writes += len(request.updates)
            if request.updates and request.updates[0].entity.table_entry.match:
                self.state.first_sids.append(
                    request.updates[0].entity.table_entry.match[0].lpm.value
                )
        if any(r.canonical_code != code_pb2.OK for r in results):
            status = status_pb2.Status(code=code_pb2.UNKNOWN, message="write failed")
            for r in results:
                detail = any_pb2.Any()
                detail.Pack(r)
                status.details.append(detail)
            context.set_trailing_metadata(
                (("grpc-status-details-bin", status.SerializeToString()),)
            )
            context.abort(grpc.StatusCode.UNKNOWN, "write failed")
        return p4runtime_pb2.WriteResponse()

    def Read(
        self, request: p4runtime_pb2.ReadRequest, context: grpc.ServicerContext
    ) -> Iterator[p4runtime_pb2.ReadResponse]:
        resp = p4runtime_pb2.ReadResponse()
        with self.state.lock:
            for ent in request.entities:
                which = ent.WhichOneof("entity")
                if which == "table_entry":
                    for te in self.state.tables.values():
                        if te.table_id == ent.table_entry.table_id and not te.is_default_action:
                            resp.entities.add().table_entry.CopyFrom(te)
                elif which == "counter_entry":
                    for (cid, idx), (pk, by) in sorted(self.state.counters.items()):
                        if cid == ent.counter_entry.counter_id:
                            c = resp.entities.add().counter_entry
                            c.counter_id, c.index.index = cid, idx
                            c.data.packet_count, c.data.byte_count = pk, by
        yield resp

    def StreamChannel(
        self,
        request_iterator: Iterator[p4runtime_pb2.StreamMessageRequest],
        context: grpc.ServicerContext,
    ) -> Iterator[p4runtime_pb2.StreamMessageResponse]:
        out: queue.Queue[p4runtime_pb2.StreamMessageResponse | None] = queue.Queue()

        def reader() -> None:
            try:
                self._serve_stream(request_iterator, out)
            except grpc.RpcError:
                pass  # the client went away
            out.put(None)

        threading.Thread(target=reader, daemon=True).start()
        while True:
            item = out.get()
            if item is None:
                return
            yield item

    def _serve_stream(
        self,
        request_iterator: Iterator[p4runtime_pb2.StreamMessageRequest],
        out: queue.Queue[p4runtime_pb2.StreamMessageResponse | None],
    ) -> None:
        for req in request_iterator:
            which = req.WhichOneof("update")
            if which == "arbitration":
                eid = req.arbitration.election_id
                value = eid.high << 64 | eid.low
                with self.state.lock:
                    if value >= self.state.primary:
                        self.state.primary = value
                        code = code_pb2.OK
                    else:
                        code = code_pb2.ALREADY_EXISTS
                resp = p4runtime_pb2.StreamMessageResponse()
                resp.arbitration.CopyFrom(req.arbitration)
                resp.arbitration.status.code = code
                out.put(resp)
            elif which == "packet":
                # Echo: the payload comes back as a packet-in from port 7, reason 0.
                resp = p4runtime_pb2.StreamMessageResponse()
                resp.packet.payload = req.packet.payload
                resp.packet.metadata.add(metadata_id=1, value=b"\x00\x07")
                resp.packet.metadata.add(metadata_id=2, value=b"\x00\x00")
                out.put(resp)


@pytest.fixture
def fake() -> Iterator[tuple[FakeP4Runtime, str]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    servicer = FakeP4Runtime()
    p4runtime_pb2_grpc.add_P4RuntimeServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield servicer, f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


@pytest.fixture
def info() -> P4Info:
    return P4Info(synthetic_p4info())


def _connected(address: str, info: P4Info, election_id: int = 1, name: str = "s1") -> Switch:
    sw = Switch(name, address, election_id=election_id, timeout=5)
    sw.connect()
    sw.set_pipeline(info, b'{"fake": true}')
    return sw


def sid_entry(prefix: str, plen: int, psp: int = 0) -> TableEntry:
    return TableEntry("my_sid", {"sid": LPM(prefix, plen)}, "end", {"psp": psp, "csid_bits": 16})


def test_names_resolve_by_full_name_alias_and_suffix(info: P4Info) -> None:
    assert info.table("IcpnIngress.endpoint.my_sid").id == 1
    assert info.table("my_sid").id == 1
    assert info.table("endpoint.my_sid").id == 1
    assert info.action("set_policy").params["policy_id"].bitwidth == 16
    with pytest.raises(P4InfoError, match="no table 'mysid'"):
        info.table("mysid")


def test_arbitration_pipeline_and_batched_writes(
    fake: tuple[FakeP4Runtime, str], info: P4Info
) -> None:
    servicer, address = fake
    with _connected(address, info) as sw:
        assert servicer.state.device_config == b'{"fake": true}'
        entries = [sid_entry(f"fc00:{i:x}::", 32) for i in range(1, 251)]
        sw.insert(entries, batch=100)
        assert servicer.state.writes == 250
        read = sw.read_table("my_sid")
        assert len(read) == 250
        got = {(e.match["sid"].value, e.match["sid"].prefix_len) for e in read}  # type: ignore[union-attr]
        assert (0xFC000001 << 96, 32) in got
        assert read[0].action == "IcpnIngress.endpoint.end"
        sw.delete(entries[:50])
        assert len(sw.read_table("my_sid")) == 200


def test_batches_arrive_in_order_one_at_a_time(
    fake: tuple[FakeP4Runtime, str], info: P4Info
) -> None:
    """The client encodes a batch while the one before is on the switch, but never sends two
    at once: a switch may apply concurrent requests in any order, and a later entry can depend
    on an earlier one (a group on its members)."""
    servicer, address = fake
    servicer.state.write_delay = 0.05  # long enough for a second request to overlap the first
    with _connected(address, info) as sw:
        entries = [sid_entry(f"fc00:{i:x}::", 32) for i in range(1, 41)]
        sw.insert(entries, batch=10)
        assert servicer.state.most_in_flight == 1
        # Batches start at entries 1, 11, 21, 31 (fc00:N:: in the top 32 bits of the SID).
        assert [int.from_bytes(v, "big") >> 96 for v in servicer.state.first_sids] == [
            0xFC000000 | n for n in (1, 11, 21, 31)
        ]
        # A batch the switch refuses stops the write there: an entry the client cannot encode
        # in the batch after it does not hide the switch's error, and no later batch is sent.
        bad = sid_entry("fc00:99::", 32, psp=5)  # psp is one bit
        with pytest.raises(P4RuntimeError) as e:
            sw.write(
                [
                    Update("insert", entries[0]),  # already there: ALREADY_EXISTS
                    Update("insert", bad),
                    Update("insert", sid_entry("fc00:77::", 32)),
                ],
                batch=1,
            )
        assert e.value.code == "ALREADY_EXISTS"
        assert len(sw.read_table("my_sid")) == 40
        # The batches before an entry the client cannot encode are applied, as one request
        # after another would have applied them; nothing after it is sent.
        with pytest.raises(P4InfoError, match="psp"):
            sw.write(
                [
                    Update("insert", sid_entry("fc00:78::", 32)),
                    Update("insert", bad),
                    Update("insert", sid_entry("fc00:79::", 32)),
                ],
                batch=1,
            )
        assert len(sw.read_table("my_sid")) == 41


def test_lpm_and_ternary_values_are_masked_and_dont_care_omitted(info: P4Info) -> None:
    from pyctl.p4rt import Codec

    codec = Codec(info)
    te = codec.table_entry(
        TableEntry("my_sid", {"sid": LPM("fc00:1::ffff", 32)}, "end", {"psp": 1, "csid_bits": 16})
    )
    assert te.match[0].lpm.value == (0xFC000001 << 96).to_bytes(16, "big")
    pol = codec.table_entry(
        TableEntry(
            "policy",
            {"dst": Ternary(0x1234, 0xFF00), "dscp": Ternary(0, 0)},
            "set_policy",
            {"policy_id": 3},
            priority=10,
        )
    )
    assert len(pol.match) == 1  # dscp don't care: omitted
    assert pol.match[0].ternary.value == (0x1200).to_bytes(16, "big")


def test_client_refuses_bad_fields_naming_entity_and_field(info: P4Info) -> None:
    from pyctl.p4rt import Codec

    codec = Codec(info)
    with pytest.raises(P4InfoError) as e:
        codec.table_entry(
            TableEntry("my_sid", {"sidd": LPM("fc00::", 16)}, "end", {"psp": 0, "csid_bits": 0})
        )
    assert e.value.field == "sidd" and "my_sid" in str(e.value)
    with pytest.raises(P4InfoError) as e:
        codec.table_entry(sid_entry("fc00::", 16, psp=2))
    assert e.value.field == "psp" and "does not fit in 1 bits" in str(e.value)
    with pytest.raises(P4InfoError, match="needs parameter"):
        codec.table_entry(TableEntry("my_sid", {"sid": LPM("fc00::", 16)}, "end", {"psp": 0}))
    with pytest.raises(P4InfoError, match="priority"):
        codec.table_entry(
            TableEntry("policy", {"dscp": Ternary(1, 0x3F)}, "set_policy", {"policy_id": 1})
        )
    with pytest.raises(P4InfoError, match="not one of the table's actions"):
        codec.table_entry(
            TableEntry("my_sid", {"sid": LPM("fc00::", 16)}, "set_policy", {"policy_id": 1})
        )
    with pytest.raises(P4InfoError, match="is a lpm field, given a exact match"):
        codec.table_entry(
            TableEntry("my_sid", {"sid": Exact(1)}, "end", {"psp": 0, "csid_bits": 0})
        )


def test_switch_errors_name_the_entity_and_field(
    fake: tuple[FakeP4Runtime, str], info: P4Info
) -> None:
    _, address = fake
    with _connected(address, info) as sw:
        sw.insert([sid_entry("fc00:1::", 48)])
        with pytest.raises(P4RuntimeError) as e:
            sw.write(
                [
                    Update("insert", sid_entry("fc00:2::", 48)),
                    Update("insert", sid_entry("fc00:1::", 48)),
                ]
            )
        err = e.value
        assert err.code == "ALREADY_EXISTS"
        assert err.switch == "s1"
        assert err.entity is not None and "my_sid" in err.entity and "sid=fc00:1::/48" in err.entity
        assert "Match entry exists" in str(err)
        with pytest.raises(P4RuntimeError) as e:
            sw.delete([sid_entry("fc00:9::", 48)])
        assert e.value.code == "NOT_FOUND" and "delete table my_sid" in str(e.value)


def test_switch_error_points_at_the_field_it_mentions(
    fake: tuple[FakeP4Runtime, str], info: P4Info
) -> None:
    _, address = fake
    with _connected(address, info) as sw:
        bad = p4runtime_pb2.Update(type=p4runtime_pb2.Update.INSERT)
        good = sw.codec.entity(sid_entry("fc00:5::", 48))  # type: ignore[union-attr]
        bad.entity.CopyFrom(good)
        bad.entity.table_entry.action.action.params[1].value = b"\x01\x00"
        with pytest.raises(P4RuntimeError) as e:
            sw.write_encoded([bad], [Update("insert", sid_entry("fc00:5::", 48))])
        assert e.value.field == "csid_bits"
        assert e.value.code == "INVALID_ARGUMENT"


def test_lower_election_id_is_not_primary(fake: tuple[FakeP4Runtime, str], info: P4Info) -> None:
    _, address = fake
    with _connected(address, info, election_id=10):
        second = Switch("s1b", address, election_id=5, timeout=5)
        with pytest.raises(NotPrimaryError, match="not primary"):
            second.connect()
        second.close()


def test_default_entries_counters_and_clone_sessions(
    fake: tuple[FakeP4Runtime, str], info: P4Info
) -> None:
    servicer, address = fake
    with _connected(address, info) as sw:
        sw.modify(
            [TableEntry("test_ctx", action="set_context", params={"time_us": 7}, default=True)]
        )
        stored = [t for t in servicer.state.tables.values() if t.is_default_action]
        assert len(stored) == 1 and stored[0].action.action.action_id == 13
        sw.insert([CloneSession(1, ((3, 0),))])
        assert servicer.state.clones[1].replicas[0].egress_port == 3
        sw.modify([CounterEntry("ifit_counts", 5, packets=2, bytes=300)])
        assert sw.read_counter("ifit_counts") == {5: (2, 300)}
        with pytest.raises(P4InfoError, match="outside 0..15"):
            sw.modify([CounterEntry("ifit_counts", 16)])


def test_packet_out_and_in(fake: tuple[FakeP4Runtime, str], info: P4Info) -> None:
    _, address = fake
    with _connected(address, info) as sw:
        sw.packet_out(b"\x01\x02frame", egress_port=3, mode=0)
        pkt = sw.packet_in(timeout=5)
        assert pkt is not None
        assert pkt.payload == b"\x01\x02frame"
        assert pkt.metadata == {"ingress_port": 7, "reason": 0}
        with pytest.raises(P4RuntimeError) as e:
            sw.packet_out(b"x", egress=1)
        assert e.value.field == "egress"


def test_unreachable_switch_says_where(info: P4Info) -> None:
    sw = Switch("ghost", "127.0.0.1:1", timeout=0.5)
    with pytest.raises(
        P4RuntimeError, match="switch ghost: no P4Runtime server answers at 127.0.0.1:1"
    ):
        sw.connect()


def test_controller_drives_many_switches_at_once(info: P4Info) -> None:
    servers = []
    try:
        ctl = P4RuntimeController()
        for i in range(4):
            server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
            servicer = FakeP4Runtime()
            p4runtime_pb2_grpc.add_P4RuntimeServicer_to_server(servicer, server)
            port = server.add_insecure_port("127.0.0.1:0")
            server.start()
            servers.append((server, servicer))
            ctl.add(Switch(f"s{i}", f"127.0.0.1:{port}", timeout=5))
        ctl.connect_all()
        ctl.each(lambda sw: sw.set_pipeline(info, b"{}"))
        ctl.write_all(
            {f"s{i}": [Update("insert", sid_entry(f"fc00:{i + 1:x}::", 32))] * 1 for i in range(4)}
        )
        for i, (_, servicer) in enumerate(servers):
            assert servicer.state.writes == 1
            (te,) = [t for t in servicer.state.tables.values()]
            assert te.match[0].lpm.value[:4] == (0xFC000000 + i + 1).to_bytes(4, "big")
        with pytest.raises(P4RuntimeError, match="unknown switch"):
            ctl["s9"]
        ctl.close()
    finally:
        for server, _ in servers:
            server.stop(grace=None)


def test_shell_command_line() -> None:
    # How its venv is made and what it says without a switch: tests/test_shell.py.
    import argparse

    from pyctl.errors import ICPNError
    from pyctl.targets.bmv2 import shell

    ap = argparse.ArgumentParser()
    shell.add_parser(ap.add_subparsers())
    args = ap.parse_args(["shell", ":9559", "--device-id", "3"])
    argv = shell.shell_argv(args)
    assert argv[argv.index("--grpc-addr") + 1] == "127.0.0.1:9559"
    assert argv[argv.index("--device-id") + 1] == "3"
    assert argv[argv.index("--election-id") + 1] == "0,0"  # below the controller's election id
    assert "--config" not in argv
    with pytest.raises(ICPNError, match="not host:port"):
        shell.address_of("switch1")
