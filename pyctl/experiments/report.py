"""An experiment's report: report.json, the PNGs and the text a person reads (paper beside
emulated, what is scaled, per phase); `Outcome` is what `run` returns."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyctl.net.report import path_table
from pyctl.texttable import text_table


@dataclass
class Outcome:
    name: str
    report: dict[str, Any]
    run_dir: Path
    text: str


def render(report: Mapping[str, Any], run_dir: Path, plots: Sequence[Path]) -> str:
    """The text a person reads: paper beside emulated, what is scaled, per phase, the model."""
    lines = [
        f"== experiment {report['experiment']}: {report['title']}",
        f"   on {report['dataplane']}, {report['seconds_per_phase']:g} s a phase,"
        f" bandwidth scale {report['scale']:g}",
        "",
        "paper vs emulated:",
        *text_table(
            ["figure", "paper", "emulated", "note"],
            [[f["what"], f["paper"], f["emulated"], f["note"]] for f in report["figures"]],
            indent="  ",
        ),
        "",
        "what is scaled, and why:",
    ]
    for s in report["scaled"]:
        lines.append(f"  * {s['what']}: paper {s['paper']} -> here {s['here']} ({s['why']})")
    if report["model"]:
        lines += ["", "how the figures are computed:"]
        lines += [f"  * {m}" for m in report["model"]]
    if report.get("story"):
        lines += ["", "what happened:"]
        lines += [f"  {m}" for m in report["story"]]
    phases = [p for p in report["phases"] if p["paths"]]
    if phases:
        lines += ["", "paths (mean over the phase):", *path_table(phases, indent="  ")]
    flow_rows = []
    for ph in report["phases"]:
        for f in ph["flows"]:
            flow_rows.append(
                [
                    ph["name"],
                    f["name"],
                    f"{f['sent_mbit']:.2f}",
                    f"{f['received_mbit']:.2f}",
                    str(f["ce"]),
                    str(f["cnps"]),
                ]
            )
    if flow_rows:
        header = ["phase", "flow", "sent Mbit/s", "received Mbit/s", "CE", "CNP"]
        lines += ["", "flows:", *text_table(header, flow_rows, indent="  ")]
    lines += ["", f"report: {run_dir / 'report.json'}" + "".join(f", {p}" for p in plots)]
    return "\n".join(lines)


def finish(
    name: str,
    report: dict[str, Any],
    run_dir: Path,
    extra_plots: Callable[[Mapping[str, Any], Path], list[Path]] | None = None,
) -> Outcome:
    """Write report.json and the PNGs; the text for the terminal."""
    from pyctl.net.report import plot

    (run_dir / "report.json").write_text(json.dumps(report, indent=1))
    plots = plot(report, run_dir)
    if extra_plots is not None:
        plots += extra_plots(report, run_dir)
    return Outcome(name, report, run_dir, render(report, run_dir, plots))
