"""A P4Runtime client for many switches at once: one gRPC channel and one stream per switch.

`Switch` talks to one device: arbitration (primary election), SetForwardingPipelineConfig,
batched writes, reads, packet-in / packet-out and digests. `P4RuntimeController` holds any
number of them and fans work out to all in parallel (p4runtime-shell keeps one global client,
which is why this exists).

Every refusal comes back as `P4RuntimeError` naming the switch, the entity (table and key) and,
when the switch's message or the client's own checks point at one, the field.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from pyctl.p4rt.entities import (
    Codec,
    CounterEntry,
    Entity,
    TableEntry,
    describe,
)
from pyctl.p4rt.errors import NotPrimaryError, P4RuntimeError
from pyctl.p4rt.p4info import P4Info, decode, encode
from pyctl.p4rt.pb import code_pb2, p4data_pb2, p4runtime_pb2, p4runtime_pb2_grpc, status_pb2

DEFAULT_BATCH = 1000
MAX_MESSAGE = 64 * 1024 * 1024


@dataclass(frozen=True)
class PacketIn:
    payload: bytes
    metadata: dict[str, int]


@dataclass(frozen=True)
class Digest:
    name: str
    list_id: int
    data: list[p4data_pb2.P4Data]


@dataclass(frozen=True)
class Update:
    kind: str  # "insert", "modify", "delete"
    entity: Entity


_UPDATE_TYPES = {
    "insert": p4runtime_pb2.Update.INSERT,
    "modify": p4runtime_pb2.Update.MODIFY,
    "delete": p4runtime_pb2.Update.DELETE,
}


def _code_name(code: int) -> str:
    try:
        return str(code_pb2.Code.Name(code))
    except ValueError:
        return str(code)


@dataclass
class _Stream:
    requests: queue.Queue[p4runtime_pb2.StreamMessageRequest | None] = field(
        default_factory=queue.Queue
    )
    arbitration: queue.Queue[p4runtime_pb2.MasterArbitrationUpdate] = field(
        default_factory=queue.Queue
    )
    packets: queue.Queue[p4runtime_pb2.PacketIn] = field(default_factory=queue.Queue)
    digests: queue.Queue[p4runtime_pb2.DigestList] = field(default_factory=queue.Queue)
    errors: queue.Queue[p4runtime_pb2.StreamError] = field(default_factory=queue.Queue)
    failure: list[str] = field(default_factory=list)

    def request_iterator(self) -> Iterator[p4runtime_pb2.StreamMessageRequest]:
        while True:
            item = self.requests.get()
            if item is None:
                return
            yield item


class Switch:
    """One P4Runtime device: a channel, a stream, the primary role, and a P4Info."""

    def __init__(
        self,
        name: str,
        address: str,
        device_id: int = 0,
        election_id: int = 1,
        p4info: P4Info | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.name = name
        self.address = address
        self.device_id = device_id
        self.election_id = election_id
        self.timeout = timeout
        self.p4info = p4info
        self.codec = Codec(p4info) if p4info is not None else None
        self._channel: grpc.Channel | None = None
        self._stub: p4runtime_pb2_grpc.P4RuntimeStub | None = None
        self._stream: _Stream | None = None
        self._reader: threading.Thread | None = None

    # ---- connection --------------------------------------------------------------------------

    def connect(self) -> None:
        """Open the channel and the stream, and become primary (or raise NotPrimaryError)."""
        self.close()
        self._channel = grpc.insecure_channel(
            self.address,
            options=[
                ("grpc.max_send_message_length", MAX_MESSAGE),
                ("grpc.max_receive_message_length", MAX_MESSAGE),
                # a refused batch carries one p4.v1.Error per update in its trailers
                ("grpc.max_metadata_size", MAX_MESSAGE),
            ],
        )
        try:
            grpc.channel_ready_future(self._channel).result(timeout=self.timeout)
        except grpc.FutureTimeoutError:
            self.close()
            raise P4RuntimeError(
                f"no P4Runtime server answers at {self.address} within {self.timeout:g} s",
                switch=self.name,
                code="UNAVAILABLE",
            ) from None
        self._stub = p4runtime_pb2_grpc.P4RuntimeStub(self._channel)
        stream = _Stream()
        self._stream = stream
        responses = self._stub.StreamChannel(stream.request_iterator())
        self._reader = threading.Thread(
            target=self._read_stream,
            args=(stream, responses),
            daemon=True,
            name=f"p4rt-{self.name}",
        )
        self._reader.start()
        self._arbitrate()

    def _read_stream(
        self, stream: _Stream, responses: Iterator[p4runtime_pb2.StreamMessageResponse]
    ) -> None:
        try:
            for msg in responses:
                which = msg.WhichOneof("update")
                if which == "arbitration":
                    stream.arbitration.put(msg.arbitration)
                elif which == "packet":
                    stream.packets.put(msg.packet)
                elif which == "digest":
                    stream.digests.put(msg.digest)
                elif which == "error":
                    stream.errors.put(msg.error)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                stream.failure.append(f"{e.code().name}: {e.details()}")

    def _arbitrate(self) -> None:
        stream = self._require_stream()
        req = p4runtime_pb2.StreamMessageRequest()
        req.arbitration.device_id = self.device_id
        req.arbitration.election_id.high = self.election_id >> 64
        req.arbitration.election_id.low = self.election_id & ((1 << 64) - 1)
        stream.requests.put(req)
        try:
            reply = stream.arbitration.get(timeout=self.timeout)
        except queue.Empty:
            reason = "; ".join(stream.failure) or "no arbitration answer"
            raise P4RuntimeError(
                f"arbitration failed: {reason}", switch=self.name, code="UNAVAILABLE"
            ) from None
        if reply.status.code != code_pb2.OK:
            raise NotPrimaryError(
                f"not primary (election id {self.election_id}): {reply.status.message}",
                switch=self.name,
                code=_code_name(reply.status.code),
            )

    def close(self) -> None:
        if self._stream is not None:
            self._stream.requests.put(None)
            self._stream = None
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self._reader is not None:
            self._reader.join(timeout=2)
            self._reader = None
        self._stub = None

    @property
    def connected(self) -> bool:
        return self._stub is not None

    def _require_stub(self) -> p4runtime_pb2_grpc.P4RuntimeStub:
        if self._stub is None:
            raise P4RuntimeError("not connected", switch=self.name)
        return self._stub

    def _require_stream(self) -> _Stream:
        if self._stream is None:
            raise P4RuntimeError("not connected", switch=self.name)
        return self._stream

    def _require_codec(self) -> Codec:
        if self.codec is None:
            raise P4RuntimeError("no P4Info: set a pipeline first", switch=self.name)
        return self.codec

    def _election(self) -> p4runtime_pb2.Uint128:
        return p4runtime_pb2.Uint128(
            high=self.election_id >> 64, low=self.election_id & ((1 << 64) - 1)
        )

    # ---- pipeline ----------------------------------------------------------------------------

    def set_pipeline(self, p4info: P4Info | Path | str, device_config: bytes | Path) -> None:
        """Install a P4 program (P4Info + BMv2 JSON) with VERIFY_AND_COMMIT."""
        info = p4info if isinstance(p4info, P4Info) else P4Info.load(p4info)
        config = device_config.read_bytes() if isinstance(device_config, Path) else device_config
        req = p4runtime_pb2.SetForwardingPipelineConfigRequest(
            device_id=self.device_id,
            election_id=self._election(),
            action=p4runtime_pb2.SetForwardingPipelineConfigRequest.VERIFY_AND_COMMIT,
        )
        req.config.p4info.CopyFrom(info.message)
        req.config.p4_device_config = config
        try:
            self._require_stub().SetForwardingPipelineConfig(req, timeout=self.timeout * 6)
        except grpc.RpcError as e:
            raise P4RuntimeError(
                f"SetForwardingPipelineConfig refused: {e.details()}",
                switch=self.name,
                code=e.code().name,
            ) from None
        self.p4info = info
        self.codec = Codec(info)

    def use_p4info(self, p4info: P4Info) -> None:
        """Adopt the P4Info of a pipeline some other client installed."""
        self.p4info = p4info
        self.codec = Codec(p4info)

    # ---- writes ------------------------------------------------------------------------------

    def write(self, updates: Sequence[Update], batch: int = DEFAULT_BATCH) -> None:
        """Send updates in WriteRequests of `batch` updates each, in order.

        One request is in flight while the next is encoded, so the switch applies a batch while
        the client builds the following one; a batch is sent only once the one before it has
        been applied, so the order and the first error are those of one request after another.
        """
        codec = self._require_codec()
        stub = self._require_stub()
        election = self._election()
        in_flight: tuple[grpc.Future, Sequence[Update]] | None = None
        try:
            for start in range(0, len(updates), batch):
                chunk = updates[start : start + batch]
                try:
                    req = p4runtime_pb2.WriteRequest(device_id=self.device_id, election_id=election)
                    for u in chunk:
                        upd = req.updates.add(type=_UPDATE_TYPES[u.kind])
                        codec.fill_entity(upd.entity, u.entity)
                finally:
                    # The batch sent before is settled first: its error comes before this one's.
                    if in_flight is not None:
                        sent, in_flight = in_flight, None
                        self._settle(*sent)
                in_flight = (stub.Write.future(req, timeout=self.timeout), chunk)
            if in_flight is not None:
                sent, in_flight = in_flight, None
                self._settle(*sent)
        finally:
            if in_flight is not None:  # interrupted (^C) while a batch was on its way
                in_flight[0].cancel()

    def _settle(self, future: grpc.Future, originals: Sequence[Update]) -> None:
        """Wait for a sent WriteRequest; its failure as a P4RuntimeError naming the update."""
        try:
            future.result()
        except grpc.RpcError as e:
            raise self._write_error(e, originals) from None

    def write_encoded(
        self,
        encoded: Sequence[p4runtime_pb2.Update],
        updates: Sequence[Update] | None = None,
        batch: int = DEFAULT_BATCH,
    ) -> None:
        """Send already-encoded updates (`updates`, when given, name them in errors)."""
        stub = self._require_stub()
        for start in range(0, len(encoded), batch):
            req = p4runtime_pb2.WriteRequest(device_id=self.device_id, election_id=self._election())
            req.updates.extend(encoded[start : start + batch])
            originals = updates[start : start + batch] if updates is not None else None
            self._send(stub, req, originals)

    def _send(
        self,
        stub: p4runtime_pb2_grpc.P4RuntimeStub,
        req: p4runtime_pb2.WriteRequest,
        originals: Sequence[Update] | None,
    ) -> None:
        try:
            stub.Write(req, timeout=self.timeout)
        except grpc.RpcError as e:
            raise self._write_error(e, originals) from None

    def insert(self, entities: Iterable[Entity], batch: int = DEFAULT_BATCH) -> None:
        self.write([Update("insert", e) for e in entities], batch)

    def modify(self, entities: Iterable[Entity], batch: int = DEFAULT_BATCH) -> None:
        self.write([Update("modify", e) for e in entities], batch)

    def delete(self, entities: Iterable[Entity], batch: int = DEFAULT_BATCH) -> None:
        self.write([Update("delete", e) for e in entities], batch)

    def _write_error(self, e: grpc.RpcError, updates: Sequence[Update] | None) -> P4RuntimeError:
        """The first failed update of a Write, from the per-update p4.v1.Error details."""
        status = _rpc_status(e)
        if status is not None:
            failed: list[tuple[int, p4runtime_pb2.Error]] = []
            for i, detail in enumerate(status.details):
                err = p4runtime_pb2.Error()
                if detail.Unpack(err) and err.canonical_code != code_pb2.OK:
                    failed.append((i, err))
            if failed:
                i, err = failed[0]
                entity_desc = None
                fld = None
                if updates is not None and i < len(updates):
                    u = updates[i]
                    entity_desc = f"{u.kind} {describe(u.entity)}"
                    fld = _field_in(err.message, self._field_names(u.entity))
                more = f" (and {len(failed) - 1} more update(s) failed)" if len(failed) > 1 else ""
                return P4RuntimeError(
                    err.message + more,
                    switch=self.name,
                    entity=entity_desc,
                    field=fld,
                    code=_code_name(err.canonical_code),
                )
        entity_desc = None
        if updates is not None and len(updates) == 1:
            entity_desc = f"{updates[0].kind} {describe(updates[0].entity)}"
        return P4RuntimeError(
            f"Write refused: {e.details()}",
            switch=self.name,
            entity=entity_desc,
            code=e.code().name,
        )

    def _field_names(self, entity: Entity) -> list[str]:
        return self.codec.field_names(entity) if self.codec is not None else []

    # ---- reads -------------------------------------------------------------------------------

    def read_entities(
        self, templates: Sequence[p4runtime_pb2.Entity]
    ) -> list[p4runtime_pb2.Entity]:
        req = p4runtime_pb2.ReadRequest(device_id=self.device_id)
        req.entities.extend(templates)
        out: list[p4runtime_pb2.Entity] = []
        try:
            for resp in self._require_stub().Read(req, timeout=self.timeout):
                out.extend(resp.entities)
        except grpc.RpcError as e:
            raise P4RuntimeError(
                f"Read refused: {e.details()}", switch=self.name, code=e.code().name
            ) from None
        return out

    def read_table(self, table: str) -> list[TableEntry]:
        codec = self._require_codec()
        ent = p4runtime_pb2.Entity()
        ent.table_entry.table_id = codec.p4info.table(table).id
        return [codec.decode_table_entry(e.table_entry) for e in self.read_entities([ent])]

    def read_counter(self, counter: str, index: int | None = None) -> dict[int, tuple[int, int]]:
        """index -> (packets, bytes) of an indirect counter (every cell when index is None)."""
        codec = self._require_codec()
        ent = codec.entity(CounterEntry(counter, index))
        if index is None:
            ent.counter_entry.ClearField("index")
        ent.counter_entry.ClearField("data")
        return self._counter_cells([ent])

    def read_counter_cells(
        self, counter: str, indices: Iterable[int]
    ) -> dict[int, tuple[int, int]]:
        """index -> (packets, bytes) of these cells of an indirect counter, in one request."""
        codec = self._require_codec()
        ents = []
        for index in sorted(set(indices)):
            ent = codec.entity(CounterEntry(counter, index))
            ent.counter_entry.ClearField("data")
            ents.append(ent)
        return self._counter_cells(ents) if ents else {}

    def _counter_cells(
        self, templates: Sequence[p4runtime_pb2.Entity]
    ) -> dict[int, tuple[int, int]]:
        result = {}
        for e in self.read_entities(templates):
            c = e.counter_entry
            result[c.index.index] = (c.data.packet_count, c.data.byte_count)
        return result

    # ---- packet I/O and digests ----------------------------------------------------------------

    def packet_out(self, payload: bytes, **metadata: int) -> None:
        """Send a frame to the switch's CPU port with the packet_out header fields given."""
        info = self._require_codec().p4info.packet_meta("packet_out")
        req = p4runtime_pb2.StreamMessageRequest()
        req.packet.payload = payload
        for name, value in metadata.items():
            if name not in info.fields:
                raise P4RuntimeError(
                    f"no such packet_out field (fields: {', '.join(info.fields)})",
                    switch=self.name,
                    entity="packet_out",
                    field=name,
                )
            f = info.fields[name]
            req.packet.metadata.add(
                metadata_id=f.id, value=encode(value, f.bitwidth, "packet_out", name)
            )
        self._require_stream().requests.put(req)

    def packet_in(self, timeout: float = 1.0) -> PacketIn | None:
        """The next frame the switch sent to the controller, or None after `timeout` seconds."""
        stream = self._require_stream()
        try:
            pkt = stream.packets.get(timeout=timeout)
        except queue.Empty:
            return None
        meta: dict[str, int] = {}
        if self.codec is not None and "packet_in" in self.codec.p4info.packet_metadata:
            info = self.codec.p4info.packet_meta("packet_in")
            for m in pkt.metadata:
                f = info.fields_by_id.get(m.metadata_id)
                meta[f.name if f else str(m.metadata_id)] = decode(m.value)
        return PacketIn(pkt.payload, meta)

    def drain_packets(self) -> int:
        stream = self._require_stream()
        n = 0
        while True:
            try:
                stream.packets.get_nowait()
            except queue.Empty:
                return n
            n += 1

    def digest(self, timeout: float = 1.0, ack: bool = True) -> Digest | None:
        stream = self._require_stream()
        try:
            dl = stream.digests.get(timeout=timeout)
        except queue.Empty:
            return None
        if ack:
            req = p4runtime_pb2.StreamMessageRequest()
            req.digest_ack.digest_id = dl.digest_id
            req.digest_ack.list_id = dl.list_id
            stream.requests.put(req)
        name = str(dl.digest_id)
        if self.codec is not None:
            name = self.codec.p4info.digests.by(dl.digest_id).name
        return Digest(name, dl.list_id, list(dl.data))

    def stream_errors(self) -> list[p4runtime_pb2.StreamError]:
        stream = self._require_stream()
        errors = []
        while True:
            try:
                errors.append(stream.errors.get_nowait())
            except queue.Empty:
                return errors

    def __enter__(self) -> Switch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class P4RuntimeController:
    """Many switches, one `Switch` each, driven in parallel."""

    def __init__(self, max_workers: int = 16) -> None:
        self.switches: dict[str, Switch] = {}
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="p4rt")

    def add(self, switch: Switch) -> Switch:
        if switch.name in self.switches:
            raise P4RuntimeError("a switch of this name is already registered", switch=switch.name)
        self.switches[switch.name] = switch
        return switch

    def __getitem__(self, name: str) -> Switch:
        try:
            return self.switches[name]
        except KeyError:
            raise P4RuntimeError(
                f"unknown switch (known: {', '.join(self.switches) or 'none'})", switch=name
            ) from None

    def each(self, fn: Callable[[Switch], None], names: Iterable[str] | None = None) -> None:
        """Run fn on the named switches (default: all) at once; raise the first failure."""
        targets = [self[n] for n in names] if names is not None else list(self.switches.values())
        futures = [self._pool.submit(fn, sw) for sw in targets]
        errors = [f.exception() for f in futures]
        for err in errors:
            if err is not None:
                raise err

    def connect_all(self) -> None:
        self.each(lambda sw: sw.connect())

    def write_all(self, updates: dict[str, Sequence[Update]], batch: int = DEFAULT_BATCH) -> None:
        def one(sw: Switch) -> None:
            sw.write(updates[sw.name], batch)

        self.each(one, updates.keys())

    def close(self) -> None:
        for sw in self.switches.values():
            sw.close()
        self._pool.shutdown(wait=True)


def _rpc_status(e: grpc.RpcError) -> status_pb2.Status | None:
    trailers = e.trailing_metadata() if hasattr(e, "trailing_metadata") else None
    for key, value in trailers or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status()
            status.ParseFromString(value)
            return status
    return None


def _field_in(message: str, names: list[str]) -> str | None:
    """The match field / parameter a switch's error message mentions, if any."""
    lowered = message.lower()
    for name in sorted(names, key=len, reverse=True):
        if name.lower() in lowered:
            return name
    return None
