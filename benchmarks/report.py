"""Results: one row per figure with its baseline and ratio; Markdown, JSON and a plot."""

from __future__ import annotations

import json
import platform
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Row:
    """One figure: ``value`` of ``subject`` against ``baseline_value`` of ``baseline``."""

    section: str
    subject: str
    value: float
    unit: str
    baseline: str = ""
    baseline_value: float | None = None
    target: str = ""
    note: str = ""
    #: False for rows that repeat a value against another baseline (one bar is enough)
    plot: bool = True

    @property
    def ratio(self) -> float | None:
        if self.baseline_value in (None, 0):
            return None
        assert self.baseline_value is not None
        return self.value / self.baseline_value


@dataclass
class Results:
    mode: str
    rows: list[Row] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        print(f"  {format_row_line(row)}", flush=True)
        return row

    def find(self, section: str, subject: str) -> Row | None:
        for row in self.rows:
            if row.section == section and row.subject == subject:
                return row
        return None


def machine_info() -> dict[str, Any]:
    import os

    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    if hasattr(os, "getloadavg"):
        # Other work on the machine skews every figure; the report says how busy it was.
        info["load average at start"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    for module in ("panoply_async", "orjson", "aiobotocore", "moto"):
        try:
            info[module] = __import__(module).__version__
        except Exception:  # a missing version must not stop the report
            info[module] = "?"
    return info


def _number(value: float | None) -> str:
    if value is None:
        return ""
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _ratio(row: Row) -> str:
    ratio = row.ratio
    return "" if ratio is None else f"{ratio:.2f} ×"


def format_row_line(row: Row) -> str:
    text = f"{row.section}: {row.subject} = {_number(row.value)} {row.unit}"
    if row.baseline:
        text += f"  (vs {row.baseline} {_number(row.baseline_value)}: {_ratio(row)})"
    return text


def to_markdown(results: Results) -> str:
    lines = [
        f"# panoply-async benchmarks ({results.mode})",
        "",
        "| figure | subject | value | unit | baseline | baseline value | ratio | target | note |",
        "| --- | --- | ---: | --- | --- | ---: | ---: | --- | --- |",
    ]
    for row in results.rows:
        cells = [
            row.section,
            row.subject,
            _number(row.value),
            row.unit,
            row.baseline,
            _number(row.baseline_value),
            _ratio(row),
            row.target,
            row.note,
        ]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    lines += ["", "Machine: " + ", ".join(f"{k} {v}" for k, v in results.machine.items())]
    lines += ["", f"Run took {results.seconds:.0f} s. Commands:", ""]
    lines += [f"    {command}" for command in results.commands]
    return "\n".join(lines) + "\n"


def to_json(results: Results) -> str:
    payload = {
        "mode": results.mode,
        "machine": results.machine,
        "seconds": results.seconds,
        "commands": results.commands,
        "rows": [
            {**{k: v for k, v in asdict(row).items() if k != "plot"}, "ratio": row.ratio}
            for row in results.rows
        ],
    }
    return json.dumps(payload, indent=2) + "\n"


def write_outputs(results: Results, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "results.md", out / "results.json"]
    written[0].write_text(to_markdown(results))
    written[1].write_text(to_json(results))
    plot = write_plot(results, out / "results.png")
    if plot is not None:
        written.append(plot)
    return written


def write_plot(results: Results, path: Path) -> Path | None:
    """Throughput and CPU bars; skipped (with a message) when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install -e '.[bench]' for one)")
        return None
    throughput = [
        r
        for r in results.rows
        if r.plot and r.section.startswith("throughput") and r.unit == "records/s"
    ]
    cpu = [
        r for r in results.rows if r.plot and r.section.startswith("cpu") and r.unit == "µs/record"
    ]
    figure, axes = plt.subplots(1, 2, figsize=(16, 6.5))
    _bars(axes[0], throughput, "end-to-end records/s (log)", log=True)
    _bars(axes[1], cpu, "CPU µs/record, sending included (log)", log=True)
    figure.suptitle(f"panoply-async benchmarks ({results.mode})")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _bars(axis: Any, rows: list[Row], title: str, *, log: bool) -> None:
    labels = [f"{r.section.split(':')[-1].strip()}: {r.subject}" for r in rows]
    values = [r.value for r in rows]
    colours = ["tab:blue" if r.subject.startswith("SDK") else "tab:gray" for r in rows]
    positions = list(range(len(rows)))
    axis.barh(positions, values, color=colours)
    axis.set_yticks(positions, labels, fontsize=8)
    axis.invert_yaxis()
    if log:
        axis.set_xscale("log")
    axis.set_title(title)
    for position, value in zip(positions, values, strict=True):
        axis.text(value, position, f" {_number(value)}", va="center", fontsize=7)
