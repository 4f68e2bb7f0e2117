"""A run's report for a person: text tables, and PNG plots beside report.json."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pyctl.texttable import text_table


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:5.1f}%"


def _num(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def path_table(phases: list[dict[str, Any]], indent: str = "") -> list[str]:
    """Each SRv6 path's rate and utilisation of its capacity, a column per phase (a run's
    report and an experiment's)."""
    header = ["path (headend port -> first hop)", "capacity"]
    header += [f"{p['name']} Mbit/s  util" for p in phases]
    rows = []
    for i, p in enumerate(phases[0]["paths"]):
        row = [f"{p['policy']}: {p['headend']}:{p['port']} -> {p['first_hop']}"]
        row.append(f"{p['bw_mbit']:g} Mbit/s" if p["bw_mbit"] else "-")
        for ph in phases:
            q = ph["paths"][i]
            util = q["mbit"] / q["bw_mbit"] if q["bw_mbit"] else None
            row.append(f"{q['mbit']:8.2f}  {_pct(util)}")
        rows.append(row)
    return text_table(header, rows, numbers=True, indent=indent)


def _links_table(rows: list[dict[str, Any]]) -> list[str]:
    """Each link's configured delay and loss beside the measured ones (pyctl.net.linkreport)."""
    if not rows:
        return []
    header = [
        "link",
        "delay ms: set",
        "propagation",
        "IFIT min",
        "mean",
        "loss %: set",
        "a->b",
        "b->a",
        "frames a->b/b->a",
    ]
    table = []
    estimated = False
    for r in rows:
        cfg, meas = r["configured"], r["measured"]
        a2b, b2a = meas.get("a2b", {}), meas.get("b2a", {})
        delay = _num(cfg["delay_ms"])
        if cfg["delay_ms_b2a"] != cfg["delay_ms"]:
            delay += f"/{cfg['delay_ms_b2a']:.2f}"
        prop, low, mean = (
            _num(meas.get("propagation_ms")),
            _num(meas["delay_ms"]),
            _num(meas.get("delay_avg_ms")),
        )
        if meas.get("clock") == "estimated" and meas["delay_ms"] is not None:
            estimated = True
            prop, low = "n/a*", "n/a*"
            mean = f"+{meas['delay_avg_ms'] - meas['delay_ms']:.2f}*"
        table.append(
            [
                r["link"],
                delay,
                prop,
                low,
                mean,
                _num(cfg["loss_pct"], 3),
                _num(a2b.get("loss_pct"), 3),
                _num(b2a.get("loss_pct"), 3),
                f"{a2b.get('frames', 0)}/{b2a.get('frames', 0)}",
            ]
        )
    title = (
        f"links (the model applied by {rows[0]['element']}; delay measured by IFIT between"
        " the link's ends: propagation = min less the packet's own serialisation at the link"
        " rate, mean = with queueing; loss counted by the element):"
    )
    note = [f"* {ESTIMATED_NOTE} (mean +x), the absolute delay is not"] if estimated else []
    return ["", title, *text_table(header, table, numbers=True), *note]


def _loss_text(loss: dict[str, Any] | None) -> str:
    """A path's counted loss (the closed loop's counter export), or nothing."""
    if not loss or not loss.get("packets"):
        return ""
    return (
        f", loss {loss['packets_lost']}/{loss['packets']} packets"
        f" ({loss['loss_ppm'] / 1e4:.2f}%, {loss['periods']} colour periods)"
    )


ESTIMATED_NOTE = (
    "an end is a BMv2 switch, whose clock (µs since it started) the collector aligns by"
    " estimate, taking the fastest packet as the hop's floor: only the delay above the fastest"
    " packet is measured"
)


def _estimated(d: Any) -> bool:
    return isinstance(d, dict) and d.get("basis") == "estimated"


def _delay_text(d: Mapping[str, Any]) -> str:
    """A collector delay figure (mean, µs): as it is on a shared clock; above the fastest
    packet where an end's clock is only estimated (its absolute value is not measured)."""
    lo = d.get("min")
    if _estimated(d) and isinstance(lo, int | float):
        return f"+{d['avg'] - lo:.0f} us above the fastest*"
    return f"{d['avg']:.0f} us"


def _decisions(decisions: list[dict[str, Any]]) -> list[str]:
    """The scheduler's decisions, each with its reason."""
    if not decisions:
        return []
    t0 = decisions[0]["time"]
    out = ["", "scheduler decisions (closed loop: IFIT -> scheduler -> controller):"]
    for d in decisions:
        out.append(
            f"  {d['time'] - t0:6.2f} s  {d['kind']} {d['job']} -> {d['path']}: {d['reason']}"
        )
    return out


def render(report: dict[str, Any], run_dir: Path) -> str:
    secs = report["seconds_per_phase"]
    lines = [f"== {report['topology']} on {report['dataplane']} ({secs} s a phase)"]
    phases = report["phases"]
    if phases and phases[0]["paths"]:
        lines += ["", *path_table(phases)]
        means = report["mean_utilisation"]
        lines.append(
            "mean path utilisation: "
            + ", ".join(f"{name} {_pct(u)}" for name, u in means.items())
            + "   (paper: 20% single path -> over 90% with multi-path transfer)"
        )
    if phases:
        header = ["flow"] + [f"{p['name']} sent/recv Mbit/s  CE  CNP  PFC" for p in phases]
        rows = []
        for i, f in enumerate(phases[0]["flows"]):
            row = [f["name"]]
            for ph in phases:
                g = ph["flows"][i]
                row.append(
                    f"{g['sent_mbit']:7.2f}/{g['received_mbit']:7.2f} {g['ce']:4d} {g['cnps']:4d}"
                    f" {g.get('pfc_pauses', 0):4d}"
                )
            rows.append(row)
        lines += ["", *text_table(header, rows, numbers=True)]
    if report["ifit"]:
        lines += ["", "IFIT (traced path, one-way and per-hop delay from the collector):"]
        estimated = False
        for t in report["ifit"]:
            d = t["delay_us"]
            mean = d.get("avg") if isinstance(d, dict) else None
            estimated |= _estimated(d)
            lines.append(
                f"  {t['flow']}: {' -> '.join(t['path'])}"
                + (
                    f", one-way {_delay_text(d)} (jitter {d.get('jitter', 0):.0f} us)"
                    if isinstance(mean, int | float)
                    else ""
                )
                + (f", {t['path_changes']} path changes" if t["path_changes"] else "")
                + _loss_text(t.get("loss"))
            )
            hop_loss = {
                (h["from"], h["to"]): h["packets_lost"]
                for h in (t.get("loss") or {}).get("hops", [])
            }
            for h in t["hops"]:
                hd = h["delay_us"]
                hm = hd.get("avg") if isinstance(hd, dict) else None
                lost = hop_loss.get((h["from"], h["to"]))
                if isinstance(hm, int | float):
                    estimated |= _estimated(hd)
                    lines.append(
                        f"      {h['from']} -> {h['to']}: {_delay_text(hd)}"
                        + ("" if lost is None else f", {lost} lost")
                    )
        if estimated:
            lines.append(f"  * {ESTIMATED_NOTE}")
    lines += _decisions(report.get("decisions") or [])
    lines += _links_table(report.get("links") or [])
    switches = report.get("switches") or {}
    if switches:
        lines += [
            "",
            "switches (last phase): frames in/out, CE marked, PFC frames sent, held, drops",
        ]
        for name, st in switches.items():
            c = st.get("counts", {})
            drops = ", ".join(f"{k} {v}" for k, v in st.get("drops", {}).items()) or "none"
            lines.append(
                f"  {name}: {c.get('in', 0)}/{c.get('out', 0)}, CE {c.get('ce_marked', 0)},"
                f" PFC {c.get('pfc_frames', 0)}, held {c.get('held', 0)}, drops: {drops}"
            )
    plots = plot(report, run_dir)
    lines.append("")
    lines.append(f"report: {run_dir / 'report.json'}" + "".join(f", {p}" for p in plots))
    return "\n".join(lines)


def plot(report: dict[str, Any], run_dir: Path) -> list[Path]:
    """Utilisation over time per path (one panel per phase) and per-hop delay per flow."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: list[Path] = []
    phases = [p for p in report["phases"] if p["paths"]]
    if phases:
        fig, axes = plt.subplots(1, len(phases), figsize=(6 * len(phases), 3.5), squeeze=False)
        for ax, ph in zip(axes[0], phases, strict=True):
            for p in ph["paths"]:
                xs = [t for t, _ in p["samples"]]
                ys = [100 * m / p["bw_mbit"] if p["bw_mbit"] else m for _, m in p["samples"]]
                ax.plot(xs, ys, label=f"via {p['first_hop']}")
            ax.set_title(f"{report['topology']}: {ph['name']}")
            ax.set_xlabel("s")
            ax.set_ylabel("path utilisation %")
            ax.set_ylim(0, 110)
            ax.legend(fontsize="small")
        fig.tight_layout()
        path = run_dir / "utilisation.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        out.append(path)
    hops = [(t["flow"], h) for t in report["ifit"] for h in t["hops"]]
    # (a hop with an estimated clock: the delay above its fastest packet, marked *)
    means: list[tuple[str, float]] = [
        (
            f"{flow}\n{h['from']}->{h['to']}" + ("*" if _estimated(d) else ""),
            float(d["avg"] - d["min"]) if _estimated(d) and "min" in d else float(d["avg"]),
        )
        for flow, h in hops
        if isinstance(d := h["delay_us"], dict) and isinstance(d.get("avg"), int | float)
    ]
    if means:
        fig, ax = plt.subplots(figsize=(max(5, len(means) * 0.9), 3.5))
        ax.bar(range(len(means)), [m for _, m in means])
        ax.set_xticks(range(len(means)), [label for label, _ in means], fontsize="x-small")
        star = any(label.endswith("*") for label, _ in means)
        ax.set_ylabel("per-hop delay, us" + (" (* above the fastest packet)" if star else ""))
        ax.set_title(f"{report['topology']}: IFIT per-hop delay")
        fig.tight_layout()
        path = run_dir / "hop-delay.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        out.append(path)
    return out
