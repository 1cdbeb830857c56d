"""Results into markdown tables and a verdict per target."""

from __future__ import annotations

from typing import Any

# (key, text) of every target; the figures are judged in `targets`.
TARGETS = {
    "sync_wall": "sync wall time within 1.15x of the floor",
    "sync_cpu": "sync CPU within 1.5x of the floor's",
    "vs_dlt": "sync at least 2.2x faster than dlt (wall)",
    "rss": "sync peak RSS under 300 MiB",
    "rss_flat": "sync RSS flat as days go by (last third of the run within 20% of the middle one)",
    "s3_wall": "sync into loopback S3 within 1.2x of the local sync's wall time",
    "s3_rss": "sync into loopback S3 peak RSS within 10% of the local sync's",
    "large_rss": "peak RSS under 1 GiB with the large stream",
    "ten_streams_rss": "peak RSS under 1 GiB on a day of ten 100 MiB streams",
    "rdp_rss": "peak RSS under 1 GiB on a day with a 128 MiB RDP recording",
    "nightly": "nightly with nothing new under 5% of a full day",
    "compliance": "whole compliance pack under 3 s",
}


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _by_name(out: dict[str, Any]) -> dict[str, dict[str, Any]]:
    names = {
        "floor": "floor",
        "lanes floor": "floor_lanes",
        "hoop-sessions": "sync",
        "loopback S3": "sync_s3",
        "dlt": "dlt",
    }
    found = {}
    for c in out.get("contenders", []):
        for prefix, key in names.items():
            if c["name"].startswith(prefix):
                found[key] = c
    return found


def targets(out: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target with the measured figure and whether it is met (None: not measured)."""
    c = _by_name(out)
    floor, sync, dlt = c.get("floor"), c.get("sync"), c.get("dlt")
    ok = {k: v for k, v in c.items() if v["status"] == "ok"}
    rows: list[dict[str, Any]] = []

    def add(key: str, measured: str | None, met: bool | None) -> None:
        rows.append({"target": key, "text": TARGETS[key], "measured": measured, "met": met})

    if "sync" in ok and "floor" in ok:
        wall = sync["wall_s"] / floor["wall_s"]  # type: ignore[index]
        cpu = sync["cpu_s"] / floor["cpu_s"]  # type: ignore[index]
        add("sync_wall", f"{wall:.2f}x", wall <= 1.15)
        add("sync_cpu", f"{cpu:.2f}x", cpu <= 1.5)
    else:
        add("sync_wall", None, None)
        add("sync_cpu", None, None)
    if "sync" in ok and "dlt" in ok:
        ratio = dlt["wall_s"] / sync["wall_s"]  # type: ignore[index]
        add("vs_dlt", f"{ratio:.2f}x", ratio >= 2.2)
    else:
        add("vs_dlt", None, None)
    if "sync" in ok:
        add("rss", f"{sync['peak_rss_mib']:.1f} MiB", sync["peak_rss_mib"] < 300)  # type: ignore[index]
        thirds = sync.get("rss_thirds_mib") or (0, 0, 0)  # type: ignore[union-attr]
        # The first third holds start-up (imports); growth with days shows from the middle on.
        if thirds[1]:
            add(
                "rss_flat",
                f"{thirds[0]:.0f} / {thirds[1]:.0f} / {thirds[2]:.0f} MiB by third",
                thirds[2] <= 1.2 * thirds[1],
            )
        else:
            add("rss_flat", None, None)
    else:
        add("rss", None, None)
        add("rss_flat", None, None)
    if "sync" in ok and "sync_s3" in ok:
        s3 = c["sync_s3"]
        wall = s3["wall_s"] / sync["wall_s"]  # type: ignore[index]
        rss = s3["peak_rss_mib"] / sync["peak_rss_mib"]  # type: ignore[index]
        add("s3_wall", f"{wall:.2f}x", wall <= 1.2)
        add(
            "s3_rss",
            f"{rss:.2f}x ({s3['peak_rss_mib']:.0f} / {sync['peak_rss_mib']:.0f} MiB)",  # type: ignore[index]
            rss <= 1.1,
        )
    else:
        add("s3_wall", None, None)
        add("s3_rss", None, None)
    large = out.get("large_stream")
    if large and large["status"] == "ok":
        add(
            "large_rss",
            f"{large['peak_rss_mib']:.0f} MiB ({large['extra']['large_stream_mib']:g} MiB stream)",
            large["peak_rss_mib"] < 1024,
        )
    else:
        add("large_rss", None, None)
    for row in out.get("memory_rows", []):
        now = row.get("current") or {}
        key = {"ten-streams": "ten_streams_rss", "rdp": "rdp_rss"}[row["row"]]
        if now.get("status") == "ok":
            add(key, f"{now['peak_rss_mib']:.0f} MiB ({row['name']})", now["peak_rss_mib"] < 1024)
        else:
            add(key, None, None)
    nightly = out.get("nightly")
    if nightly and nightly["status"] == "ok" and "share_of_a_full_day" in nightly["extra"]:
        share = nightly["extra"]["share_of_a_full_day"]
        add("nightly", f"{100 * share:.0f}% of a full day", share < 0.05)
    else:
        add("nightly", None, None)
    comp = out.get("compliance")
    if comp and comp.get("status") == "ok":
        total = comp["rules_total_s"]
        add(
            "compliance",
            f"{total:.2f} s (every rule); refresh_findings {comp['refresh_findings_s']:.2f} s",
            total < 3.0,
        )
    else:
        add("compliance", None, None)
    return rows


def contender_table(out: dict[str, Any]) -> str:
    lines = [
        "| contender | wall s | CPU s | requests/s | sessions/s | peak RSS MiB | wall / CPU ratio to floor "
        "| wall / CPU ratio to lanes floor |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in out.get("contenders", []):
        if c["status"] != "ok":
            lines.append(
                f"| {c['name']} | {c['status']}: {c['note'].splitlines()[0] if c['note'] else ''} "
                "| | | | | | |"
            )
            continue
        lines.append(
            f"| {c['name']} | {_fmt(c['wall_s'])} | {_fmt(c['cpu_s'])} | {_fmt(c['requests_per_s'], 0)} "
            f"| {_fmt(c['sessions_per_s'], 0)} | {_fmt(c['peak_rss_mib'], 0)} "
            f"| {_ratios(c, '')} | {_ratios(c, '_lanes')} |"
        )
    return "\n".join(lines)


def store_line(out: dict[str, Any]) -> str:
    """The loopback S3 row against the local sync of the same run."""
    s3 = _by_name(out).get("sync_s3")
    if not s3 or s3["status"] != "ok" or "wall_ratio_to_sync" not in s3["extra"]:
        return ""
    x = s3["extra"]
    return (
        f"Into loopback S3 against the local sync of the same run: wall {x['wall_ratio_to_sync']:.2f}x, "
        f"CPU {x['cpu_ratio_to_sync']:.2f}x, peak RSS {x['rss_ratio_to_sync']:.2f}x; the S3 server "
        f"(its own process) used {_fmt(x.get('store_server_cpu_s'))} s of CPU for "
        f"{_fmt(x.get('store_objects'))} objects, {_fmt(x.get('store_mib'))} MiB."
    )


def _ratios(c: dict[str, Any], suffix: str) -> str:
    wall, cpu = (
        c["extra"].get(f"wall_ratio_to_floor{suffix}"),
        c["extra"].get(f"cpu_ratio_to_floor{suffix}"),
    )
    return "–" if wall is None or cpu is None else f"{wall:.2f}x / {cpu:.2f}x"


def _nightly_row(rows: list[str], nightly: dict[str, Any] | None, title: str) -> None:
    if nightly:
        if nightly["status"] == "ok":
            share = nightly["extra"].get("share_of_a_full_day")
            rows.append(
                f"| {title} | {_fmt(nightly['wall_s'])} s wall, "
                f"{_fmt(nightly['cpu_s'])} s CPU, {_fmt(nightly['requests'])} requests; "
                f"{nightly['extra'].get('days_synced')} day(s) re-read "
                f"({nightly['extra'].get('days_not_listed', 0)} by the ids of their open sessions, "
                f"not listed), {nightly['extra'].get('days_rebuilt')} rebuilt | "
                f"{'–' if share is None else f'{100 * share:.0f}% of a full day'} |"
            )
        else:
            rows.append(f"| {title} | {nightly['status']} | {nightly['note']} |")


def extras_table(out: dict[str, Any]) -> str:
    rows = []
    for key, title in (
        ("nightly", "nightly `hoop-sessions sync`, nothing new"),
        ("nightly_baseline", "the same nightly, baseline code"),
    ):
        _nightly_row(rows, out.get(key), title)
    large = out.get("large_stream")
    if large:
        if large["status"] == "ok":
            rows.append(
                f"| {large['name']} | {_fmt(large['wall_s'])} s wall, {_fmt(large['cpu_s'])} s CPU | "
                f"peak RSS {_fmt(large['peak_rss_mib'], 0)} MiB |"
            )
        else:
            rows.append(
                f"| {large['name']} | {large['status']} | {large['note'].splitlines()[0] if large['note'] else ''} |"
            )
    comp = out.get("compliance")
    if comp:
        if comp.get("status") == "ok":
            rows.append(
                f"| compliance pack, {comp['sessions']:,} sessions / {comp['events']:,} events | "
                f"{len(comp['rules'])} rules: {comp['rules_total_s']:.2f} s; "
                f"`refresh_findings`: {comp['refresh_findings_s']:.2f} s | "
                f"{comp['findings']:,} findings |"
            )
        else:
            rows.append(f"| compliance pack | failed | {comp.get('note', '')} |")
    if not rows:
        return ""
    return "\n".join(["| measurement | cost | figure |", "| --- | --- | --- |", *rows])


def memory_table(out: dict[str, Any]) -> str:
    """The memory rows: this code and the baseline's on the same day, side by side."""
    rows = out.get("memory_rows") or []
    if not rows:
        return ""
    lines = [
        "| day | peak RSS MiB | wall s | CPU s | sessions loaded | baseline: peak RSS MiB | wall s "
        "| CPU s | sessions loaded |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        cells = []
        for label in ("current", "baseline"):
            r = row.get(label)
            if r is None:
                cells.append("not run | | |")
            elif r["status"] != "ok":
                cells.append(
                    f"{r['status']}: {r['note'].splitlines()[0] if r['note'] else ''} | | |"
                )
            else:
                cells.append(
                    f"{_fmt(r['peak_rss_mib'], 0)} | {_fmt(r['wall_s'])} | {_fmt(r['cpu_s'])} "
                    f"| {_fmt(r['sessions'])}"
                )
        lines.append(f"| {row['name']} | {cells[0]} | {cells[1]} |")
    ref = rows[0]["baseline_ref"]
    lines.append("")
    lines.append(
        f"Baseline: the same day read by the code of commit {ref} (its `src/`, run with `PYTHONPATH`)."
    )
    return "\n".join(lines)


def rules_table(out: dict[str, Any]) -> str:
    comp = out.get("compliance")
    if not comp or comp.get("status") != "ok":
        return ""
    lines = ["| rule | kind | seconds | rows |", "| --- | --- | ---: | ---: |"]
    for r in sorted(comp["rules"], key=lambda r: -r["seconds"]):
        lines.append(f"| {r['rule']} | {r['kind']} | {r['seconds']:.3f} | {r['rows']:,} |")
    return "\n".join(lines)


def targets_table(out: dict[str, Any]) -> str:
    lines = ["| target | measured | met |", "| --- | --- | --- |"]
    for t in out.get("targets", []):
        met = {True: "yes", False: "**no**", None: "not measured"}[t["met"]]
        lines.append(f"| {t['text']} | {t['measured'] or '–'} | {met} |")
    return "\n".join(lines)


def markdown_report(out: dict[str, Any]) -> str:
    m = out["machine"]
    parts = [
        f"Machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB, Python {m['python']}."
    ]
    w = out.get("workload")
    if w:
        parts.append(
            f"Workload: {w['days']} days x {w['sessions_per_day']:,} sessions ({w['start']} .. {w['end']}), "
            f"{w['latency_ms']:g} ms latency per request, concurrency {w['concurrency']}, seed {w['seed']}."
        )
        parts.append(contender_table(out))
        if line := store_line(out):
            parts.append(line)
    for section in (extras_table(out), memory_table(out), rules_table(out), targets_table(out)):
        if section:
            parts.append(section)
    parts.append(f"Command: `{out['command'].strip()}`")
    return "\n\n".join(parts) + "\n"
