"""The benchmark's output: the machine, the Markdown table, the PNG chart, raw JSON."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import events_cost
import pools

BROKER_NAMES = {"sqlite": "SQLite (embedded)", "redis": "Redis", "amqp": "RabbitMQ"}
COLORS = {"celeriac": "#2e7d32", "celery": "#1565c0", "dramatiq": "#ef6c00"}
BULK_API = {
    "celeriac": "`noop.delay_many([()] * 1,000)`: one broker round trip per 1,000 "
                "messages (confirmed, on RabbitMQ)",
    "celery": "`group(noop.si() x 1,000).apply_async()` (sends one by one)",
    "dramatiq": "`group(noop.message() x 1,000).run()` (enqueues one by one)",
}


def machine() -> dict[str, Any]:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = 0.0
    try:
        mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem_gib, 1),
            "python": platform.python_version(), "os": platform.platform(terse=True),
            "redis": _cmd(["redis-server", "--version"]).split(" v=")[-1].split(" ")[0],
            "rabbitmq": _cmd(["rabbitmqctl", "-q", "version"]),
            "commit": _cmd(["git", "rev-parse", "--short", "HEAD"])
            + (" (with local changes)" if _src_changed() else "")}


def _src_changed() -> bool:
    """Whether src/ differs from the commit (``_cmd`` says "?" for no output, so not it)."""
    try:
        proc = subprocess.run(["git", "status", "--porcelain", "src"], capture_output=True,
                              text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return False
    return proc.returncode == 0 and bool(proc.stdout.strip())


def _cmd(argv: list[str]) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        return proc.stdout.strip().splitlines()[0] if proc.stdout.strip() else "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


# -- the table ------------------------------------------------------------------------
def _rate(cell: dict[str, Any] | None) -> str:
    return f"{cell['rate']:,.0f}" if cell else "failed"


def rows(run: dict[str, Any]) -> list[list[str]]:
    out = []
    for system, brokers in run["systems"].items():
        for broker, res in brokers.items():
            name = BROKER_NAMES[broker]
            if "unavailable" in res:
                out.append([system, name, "skipped: " + _short(res["unavailable"]),
                            *["-"] * 5])
                continue
            lat = res.get("latency")
            fast = res.get("consume_fast")
            out.append([
                system, name, _rate(res.get("publish_delay")), _rate(res.get("publish_bulk")),
                _rate(fast), _rate(res.get("consume_default")),
                f"{lat['p50_ms']:.2f} / {lat['p99_ms']:.2f}" if lat else "failed",
                f"{fast['peak_rss_mb']:.0f}" if fast else "failed",
            ])
    return out


def _short(reason: str) -> str:
    """The first clause of a skip reason, to fit in a table cell."""
    return reason.split(" (")[0]


def _num(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.2f}"


HEADER = ["system", "broker", "`.delay()` loop /s", "bulk publish /s",
          "consume /s, fast worker", "consume /s, default worker",
          "round trip p50 / p99 ms", "worker peak RSS MB"]


def markdown_table(run: dict[str, Any]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |",
             "|" + "|".join(["---"] * 2 + ["---:"] * (len(HEADER) - 2)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows(run)]
    return "\n".join(lines)


def text_table(run: dict[str, Any]) -> str:
    table = [[h.replace("`", "") for h in HEADER], *rows(run)]
    widths = [max(len(r[i]) for r in table) for i in range(len(HEADER))]
    return "\n".join("  ".join(c.rjust(w) if i > 1 else c.ljust(w)
                               for i, (c, w) in enumerate(zip(r, widths, strict=True)))
                     for r in table)


def _get(run: dict[str, Any], system: str, broker: str, *path: str) -> float | None:
    node: Any = run["systems"].get(system, {}).get(broker, {})
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return float(node) if isinstance(node, (int, float)) else None


def targets(run: dict[str, Any]) -> list[str]:
    """Issue 7's targets, met or not, from this run's numbers."""
    out = []

    def line(what: str, value: float | None, goal: float, unit: str, less: bool = False) -> None:
        if value is None:
            out.append(f"| {what} | not measured | {_num(goal)} {unit} | - |")
            return
        ok = value < goal if less else value >= goal
        out.append(f"| {what} | {_num(value)} {unit} | {'<' if less else '>='} {_num(goal)} "
                   f"{unit} | {'met' if ok else 'MISSED'} |")

    line("consume, SQLite", _get(run, "celeriac", "sqlite", "consume_fast", "rate"),
         10_000, "/s")
    for broker, factor in (("redis", 10), ("amqp", 3)):
        name = BROKER_NAMES[broker]
        mine = _get(run, "celeriac", broker, "consume_fast", "rate")
        line(f"consume, {name}", mine, 16_700, "/s")
        celery = max(filter(None, (_get(run, "celery", broker, f"consume_{k}", "rate")
                                   for k in ("fast", "default"))), default=None)
        if celery:
            line(f"consume, {name}, x best Celery", mine and mine / celery, factor, "x")
        celery_delay = _get(run, "celery", broker, "publish_delay", "rate")
        mine_delay = _get(run, "celeriac", broker, "publish_delay", "rate")
        if celery_delay:
            line(f"`.delay()`, {name}, x Celery", mine_delay and mine_delay / celery_delay,
                 5, "x")
        line(f"bulk publish, {name}", _get(run, "celeriac", broker, "publish_bulk", "rate"),
             100_000 if broker == "redis" else 30_000, "/s")
        line(f"round trip p50, {name}", _get(run, "celeriac", broker, "latency", "p50_ms"),
             1.0, "ms", less=True)
        line(f"round trip p99, {name}", _get(run, "celeriac", broker, "latency", "p99_ms"),
             2.5, "ms", less=True)
    return ["| target | this run | goal | |", "|---|---:|---:|---|", *out]


def markdown(run: dict[str, Any]) -> str:
    m = run["machine"]
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "# Benchmark: celeriac, Celery and Dramatiq",
        "",
        f"`make bench`, {when}, N = {run['n']:,} no-op tasks per measurement, "
        f"{run['latency_n']:,} round trips, {run['minutes']:.1f} min in all. "
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}, "
        f"Python {m['python']}, Redis {m['redis']}, RabbitMQ {m['rabbitmq']}, celeriac at "
        f"{m['commit']}.",
        "",
        markdown_table(run),
        "",
        "Consume: one worker draining a full queue, first to last execution; results ignored. "
        "Round trip: `delay()` then `get()` with the fast worker idle. Peak RSS: the fast "
        "worker while consuming (all its processes). "
        "`skipped`: not measured (see notes).",
        "",
        "## Configurations",
        "",
        "| system | versions | fast worker | default worker | bulk publish | results |",
        "|---|---|---|---|---|---|",
    ]
    for system, config in run["configs"].items():
        notes = {res.get("backend") for res in run["systems"][system].values()
                 if res.get("backend")}
        parts.append(f"| {system} | {config['versions']} | {config['fast']}: "
                     f"`{config['fast_cmd']}` | {config['default']}: `{config['default_cmd']}` "
                     f"| {BULK_API[system]} | {'; '.join(sorted(notes))} |")
    parts += ["", "Acks: every worker acks after the task ran: celeriac and Dramatiq by "
              "default, Celery with `task_acks_late = True` (its default, ack on receipt, "
              "loses the task if the worker dies mid-run).", ""]
    delayed = [(b, r["delayed"]) for b, r in run["systems"].get("celeriac", {}).items()
               if "delayed" in r]
    if delayed:
        parts += ["## Delayed tasks stay in the broker", "",
                  "| broker | tasks scheduled 1 h ahead | worker RSS before | after | change "
                  "| until all passed the worker |",
                  "|---|---:|---:|---:|---:|---:|"]
        parts += [f"| {BROKER_NAMES[b]} | {d['n']:,} | {d['rss_before_mb']:.1f} MB | "
                  f"{d['rss_after_mb']:.1f} MB | {d['delta_mb']:+.1f} MB | "
                  f"{d.get('received_s', 0.0):.1f} s |" for b, d in delayed]
        parts.append("")
    parts += chord_section(run)
    parts += beat_section(run)
    parts += pools.section(run)
    scaling = [(system, b, r) for system, brokers in run["systems"].items()
               for b, r in brokers.items() if "cpu" in r or "fair" in r]
    if scaling:
        parts += ["## CPU-bound tasks and long tasks (default worker)", "",
                  "| system | broker | 2 ms CPU tasks: 1 child | 2 children | speed-up "
                  "| 20 x 1 s tasks, 2 workers x 2 children (ideal 5 s) "
                  "| 2 x 10 s then 18 x 1 s (ideal 10 s) |",
                  "|---|---|---:|---:|---:|---:|---:|"]
        for system, b, r in scaling:
            cpu, fair = r.get("cpu"), r.get("fair")
            parts.append(
                f"| {system} | {BROKER_NAMES[b]} | "
                + (f"{cpu['one_s']:.2f} s | {cpu['two_s']:.2f} s | {cpu['speedup']:.2f}x"
                   if cpu else "- | - | -")
                + (f" | {fair['seconds']:.2f} s | {fair['mixed_s']:.2f} s |" if fair
                   else " | - | - |"))
        parts.append("")
    parts += events_cost.section(run)
    parts += dashboard_section(run)
    if "celeriac" in run["systems"]:
        parts += ["## Issue 7's targets", "", *targets(run), ""]
    notes = []
    for system, brokers in run["systems"].items():
        for broker, res in brokers.items():
            if "unavailable" in res:
                notes.append(f"- {system} on {BROKER_NAMES[broker]}: not available: "
                             f"{res['unavailable']}")
            for error in res.get("errors", []):
                notes.append(f"- {system} on {BROKER_NAMES[broker]}: {error}")
    if notes:
        parts += ["## Notes", "", *notes, ""]
    parts += ["![chart](chart.png)", ""]
    return "\n".join(parts)


# -- the chord row --------------------------------------------------------------------
def chord_section(run: dict[str, Any]) -> list[str]:
    """"Chord of 1,000 no-op tasks, send to callback done": a table, or nothing."""
    cells = [(system, broker, res["chord"]) for system, brokers in run["systems"].items()
             for broker, res in brokers.items() if "chord" in res]
    if not cells:
        return []
    n = run.get("chord_n", 1000)
    lines = [f"## Chord of {n:,} no-op tasks, send to callback done", "",
             "The fast worker; results in Redis on both brokers; from `chord(header)(body)` "
             "to the body's result read by `get()`; the median of 3 after a warm-up chord.",
             "", "| system | broker | median s | runs s | header tasks /s | x Celery |",
             "|---|---|---:|---|---:|---:|"]
    for system, broker, cell in cells:
        celery = run["systems"].get("celery", {}).get(broker, {}).get("chord")
        ratio = f"{celery['median_s'] / cell['median_s']:.1f}x" \
            if celery and system != "celery" else "-"
        runs = ", ".join(f"{s:.3f}" for s in cell["seconds"])
        lines.append(f"| {system} | {BROKER_NAMES[broker]} | {cell['median_s']:.3f} | "
                     f"{runs} | {cell['rate']:,.0f} | {ratio} |")
    return [*lines, ""]


def beat_section(run: dict[str, Any]) -> list[str]:
    """celeriac beat, 1,000 entries due every second (issue 18's target): a table."""
    cells = [(b, r["beat"]) for b, r in run["systems"].get("celeriac", {}).items()
             if "beat" in r]
    if not cells:
        return []
    lines = ["## Beat: 1,000 entries due every second", "",
             "celeriac's scheduler (what `celeriac beat` runs) on each broker for 20 s; "
             "lateness: when each run's publish returned minus when it was due (p99 "
             "target: under 100 ms). Idle: one entry a day, the scheduler's CPU in 10 s "
             "(bench/beat.py).", "",
             "| broker | runs | lateness p50 ms | p99 ms | max ms | slowest tick: publish "
             "began / took ms | p99 < 100 ms | idle CPU ms / 10 s |",
             "|---|---:|---:|---:|---:|---:|---|---:|"]
    for broker, cell in cells:
        worst = (f"{cell['worst_began_ms']:.1f} / {cell['worst_publish_ms']:.1f}"
                 if "worst_began_ms" in cell else "-")
        lines.append(f"| {BROKER_NAMES[broker]} | {cell['runs']:,} | {cell['p50_ms']:.1f} | "
                     f"{cell['p99_ms']:.1f} | {cell['max_ms']:.1f} | {worst} | "
                     f"{'met' if cell['p99_ms'] < 100 else 'MISSED'} | "
                     f"{cell['idle_cpu_ms']:.1f} |")
    return [*lines, ""]


def write_chord(run: dict[str, Any], raw: Path) -> str:
    """``run.py --only chord``: the raw JSON, and the chord table for the terminal."""
    raw.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (raw / f"chord-{stamp}.json").write_text(json.dumps(run, indent=2))
    errors = [f"- {system} on {BROKER_NAMES[broker]}: {error}"
              for system, brokers in run["systems"].items()
              for broker, res in brokers.items() for error in res.get("errors", [])]
    return "\n".join(["", *chord_section(run), *errors])


# -- the chart ------------------------------------------------------------------------
def chart(run: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, colors, cells = [], [], []
    for system, brokers in run["systems"].items():
        for broker, res in brokers.items():
            labels.append(f"{system} / {BROKER_NAMES[broker].split(' ')[0]}")
            colors.append(COLORS[system])
            cells.append(res)
    panels = [("`.delay()` loop, tasks/s", ("publish_delay", "rate")),
              ("bulk publish, tasks/s", ("publish_bulk", "rate")),
              ("consume, fast worker, tasks/s", ("consume_fast", "rate")),
              ("round trip p50, ms (p99 outlined)", ("latency", "p50_ms"))]
    fig, axes = plt.subplots(2, 2, figsize=(13, 1.6 + 0.42 * len(labels) * 2))
    for ax, (title, (phase, key)) in zip(axes.flat, panels, strict=True):
        values = [float(c.get(phase, {}).get(key, 0) or 0) for c in cells]
        y = list(range(len(labels)))
        if phase == "latency":
            p99 = [float(c.get(phase, {}).get("p99_ms", 0) or 0) for c in cells]
            ax.barh(y, p99, color="none", edgecolor=colors, linewidth=1.2)
        ax.barh(y, values, color=colors)
        for yi, value in zip(y, values, strict=True):
            text = "n/a" if not value else (f"{value:.2f}" if phase == "latency"
                                            else f"{value:,.0f}")
            ax.text(value, yi, " " + text, va="center", fontsize=8)
        ax.set_yticks(y, labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_title(title.replace("`", ""), fontsize=10)
        ax.margins(x=0.18)
    m = run["machine"]
    fig.suptitle(f"celeriac vs Celery vs Dramatiq, N={run['n']:,}: {m['cpu']}, "
                 f"{m['cores']} cores, Python {m['python']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(run: dict[str, Any], directory: Path) -> str:
    """Write results.md, chart.png (into ``directory``) and the raw JSON; return the
    table as text for the terminal."""
    raw = directory if directory.name == "raw" else directory / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (raw / f"run-{stamp}.json").write_text(json.dumps(run, indent=2))
    (directory / "results.md").write_text(markdown(run))
    try:
        chart(run, directory / "chart.png")
    except Exception as exc:  # the table matters more than the picture
        print(f"chart not drawn: {exc}", file=sys.stderr)
    section = "\n".join([*pools.section(run), *events_cost.section(run), *beat_section(run),
                         *dashboard_section(run)])
    return (f"\n{text_table(run)}\n\n{section}\nwritten: {directory / 'results.md'}, "
            f"{directory / 'chart.png'}")


def dashboard_section(run: dict[str, Any]) -> list[str]:
    """The dashboard fed 10,000 task events/s (celeriac on Redis)."""
    rows = [(b, r["dashboard"]) for b, r in run["systems"].get("celeriac", {}).items()
            if "dashboard" in r]
    if not rows:
        return []
    parts = ["## The dashboard at 10,000 events/s", "",
             "| broker | events sent | rate | seen a second later | CPU of a core "
             "| RSS middle -> end | kept up, bounded |", "|---|---:|---:|---:|---:|---:|---|"]
    for b, d in rows:
        parts.append(f"| {BROKER_NAMES[b]} | {d['sent']:,} | {d['rate']:,.0f}/s | "
                     f"{d['seen']:,} | {d['cpu_pct']:.0f}% | {d['rss_middle_mb']:.0f} -> "
                     f"{d['rss_end_mb']:.0f} MB | {'yes' if d['keeps_up'] else 'NO'}, "
                     f"{'yes' if d['bounded'] else 'NO'} |")
    return [*parts, ""]
