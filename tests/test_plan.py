"""Topologies load with errors that name file, line and field; the plan derives every entry."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from pyctl.controller.plan import make_plan
from pyctl.errors import ConfigError
from pyctl.model.node import Behaviour, IFITRole
from pyctl.model.topology import load_topology

TOPOS = Path(__file__).resolve().parent.parent / "topologies"


@pytest.mark.parametrize("path", sorted(TOPOS.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_topologies_plan(path: Path) -> None:
    plan = make_plan(load_topology(path))
    assert plan.switches and plan.hosts
    for cfg in plan.switches.values():
        assert any(s.behaviour is Behaviour.END for s in cfg.local_sids)


def test_ingest_plan_has_four_paths_and_apn_marks() -> None:
    plan = make_plan(load_topology(TOPOS / "ingest.yaml"))
    head = plan.switches["pe-sh"]
    (pol,) = head.policies
    assert [str(sl.segments[0]) for sl in pol.sid_lists] == [
        "fc00:0:2::",
        "fc00:0:3::",
        "fc00:0:4::",
        "fc00:0:5::",
    ]
    assert all(str(sl.segments[-1]) == "fc00:0:6:d6::" for sl in pol.sid_lists)
    assert pol.match.dst == ipaddress.ip_network("2001:db8:2::/48")
    assert sorted(pol.buckets[:4]) == [0, 1, 2, 3]
    assert [c.mark.apn_id for c in head.apn.classifiers] == [0x10001, 0x10002, 0x10003, 0x10004]
    assert dict(head.apn.qp_map)[0x102].apn_id == 0x10002
    assert head.ifit.role is IFITRole.HEAD and len(head.ifit.flows) == 5
    assert plan.switches["p3"].ifit.role is IFITRole.TRANSIT
    tail = plan.switches["pe-nx"]
    assert tail.ifit.role is IFITRole.TAIL and tail.ifit.collector is not None
    # every transit knows how to reach the collector behind pe-nx
    for p in ("p1", "p2", "p3", "p4"):
        assert any(str(r.prefix) == "fd00::c/128" for r in plan.switches[p].routes)
    # the wiring is symmetric
    for a, b in plan.wiring.items():
        assert plan.wiring[b] == a


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("links:\n  - {a: ha, b: nowhere}\n", "line 8: links[0].b: 'nowhere' is not a node"),
        ("policies:\n  - {name: x, headend: ha, egress: pe1}\n", "'ha' is not a switch node"),
        ("flows:\n  - {name: f, src: ha, dst: pe1}\n", "flows[0].dst: 'pe1' is not a host"),
    ],
)
def test_topology_errors_name_file_line_field(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "t.yaml"
    f.write_text(
        "name: t\nsites:\n  - {name: a}\nnodes:\n  - {name: ha, kind: host, site: a}\n"
        "  - {name: pe1, kind: ebpf, role: headend, site: a}\n" + text
    )
    with pytest.raises(ConfigError) as e:
        make_plan(load_topology(f))
    assert str(e.value).startswith(str(f))
    assert message in str(e.value)


def test_switch_without_role_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "t.yaml"
    f.write_text("name: t\nnodes:\n  - {name: s, kind: ebpf}\n")
    with pytest.raises(ConfigError, match=r"line 3: nodes\[0\].role: is required"):
        load_topology(f)


@pytest.mark.parametrize(("hosts", "refused"), [(63, False), (64, True)])
def test_a_switch_holds_at_most_63_links(tmp_path: Path, hosts: int, refused: bool) -> None:
    """Ports are numbered from 1 and every data plane holds ports 0..63 (the eBPF port maps are
    arrays of 64): a 64th link is refused by name, not left to fail in a map update."""
    f = tmp_path / "t.yaml"
    lines = ["name: t", "sites:", "  - {name: a}", "nodes:"]
    lines += [f"  - {{name: h{i}, kind: host, site: a}}" for i in range(hosts)]
    lines += ["  - {name: pe1, kind: ebpf, role: headend, site: a}", "links:"]
    lines += [f"  - {{a: h{i}, b: pe1}}" for i in range(hosts)]
    f.write_text("\n".join(lines) + "\n")
    if refused:
        with pytest.raises(ConfigError, match="switch 'pe1' has more than 63 links"):
            make_plan(load_topology(f))
    else:
        assert max(p.index for p in make_plan(load_topology(f)).switches["pe1"].ports) == 63
