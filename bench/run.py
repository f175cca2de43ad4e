"""Run every benchmark, print the figures and write bench/RESULTS.md.

    ./bench/run            (from the repository root; sets up .venv through ./im first)
    ./bench/run --scale-sizes 1000,10000,100000
                           (the scale benchmark on a home of 100,000 incidents too: building
                           it takes a few minutes the first time, its PDF report about ten;
                           IM_BENCH_SCALE_SIZES=... does the same)
    ./bench/run --cluster  (ingest with 1, 2 and 3 `im serve` on one PostgreSQL database, and
                           the inbound sync on it: bench/cluster.py, 6 to 12 minutes more;
                           IM_BENCH_CLUSTER=1 does the same; without it, the section of an
                           earlier run is kept as it is)

Each benchmark is bounded in time and compares against a baseline measured in the same run,
because absolute times on shared machines drift. Targets (2 cores): ingest >= 5,000 durable
events/s, p99 <= 50 ms at 64 connections, >= half the bare endpoint's rate, >= 0.9 x the
stack before im bounded requests; inbound sync of 10,000 incidents in <= ceil(N/100) + 1 list
calls per 10,000-record window, no per-incident calls, no 429s; CLI start-up <= 100 ms above
`python -c pass`; on homes of 1,000 to 100,000 incidents, `im sla check`, `im metrics
connector` and `GET /metrics` within 2 x of their time at 1,000, the PDF report of 100,000
incidents under 60 s and 500 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import cluster
import ingest
import report_json
import report_pdf
import scale
import startup
import sync_cost

from common import machine
from im_pagerduty import directory

RESULTS = Path(__file__).with_name("RESULTS.md")
# What the calls a poll makes besides listing incidents are for.
OTHER_CALLS = {
    "GET /users": "GET /users?query=EMAIL: im's own user, looked up by e-mail, kept"
                  f" {directory.TTL_SECONDS / 60:g} minutes",
    "GET /webhook_subscriptions": "GET /webhook_subscriptions: is the subscription enabled",
}


def other_call(call: str) -> str:
    if call.startswith("GET /users/"):
        return (f"{call}: a user named by an incident, looked up by id, kept"
                f" {directory.TTL_SECONDS / 60:g} minutes")
    return OTHER_CALLS.get(call, call)


SCALE_SIZES = "1000,10000"  # 100,000 (about 15 minutes) when asked


def main() -> None:
    parser = argparse.ArgumentParser(description="Run every benchmark; write bench/RESULTS.md.")
    parser.add_argument("--scale-sizes",
                        default=os.environ.get("IM_BENCH_SCALE_SIZES") or SCALE_SIZES,
                        help="homes of the scale benchmark, in incidents, comma-separated"
                             f" (default {SCALE_SIZES}; or IM_BENCH_SCALE_SIZES)")
    parser.add_argument("--cluster", action="store_true",
                        default=os.environ.get("IM_BENCH_CLUSTER", "") not in ("", "0"),
                        help="also ingest with 1, 2 and 3 im serve on one PostgreSQL database,"
                             " and the inbound sync on it (bench/cluster.py, 6 to 12 minutes"
                             " more; or IM_BENCH_CLUSTER=1)")
    options = parser.parse_args()
    sizes = sorted(int(s.replace("_", "")) for s in options.scale_sizes.split(",") if s.strip())
    started = time.monotonic()
    print("ingest (about 6 minutes)...", file=sys.stderr)
    flow = ingest.run()
    print(json.dumps(flow, indent=2))
    print("sync cost (about 30 s)...", file=sys.stderr)
    cost = sync_cost.run()
    print(json.dumps(cost, indent=2, default=str))
    print("CLI start-up (about 30 s)...", file=sys.stderr)
    boot = startup.run()
    for name, value in boot.items():
        print(f"{name:<26} {value:7.1f} ms")
    print("PDF report of a long timeline (about a minute)...", file=sys.stderr)
    pdf = report_pdf.run()
    print(json.dumps(pdf, indent=2))
    print("reports over 10,000 and 50,000 incidents (about 3 minutes)...", file=sys.stderr)
    reports = report_json.run()
    print("\n".join(report_json.table(reports)))
    print(f"scale, homes of {', '.join(f'{s:,}' for s in sizes)} incidents (about 2 minutes"
          " at 1,000 and 10,000, homes cached in bench/.homes/)...", file=sys.stderr)
    grown = scale.run(tuple(sizes))
    print("\n".join(scale.markdown(sizes, grown)))
    if options.cluster:
        print("several im serve on one PostgreSQL database, and the inbound sync on it (6 to 12"
              " minutes)...", file=sys.stderr)
        shared = cluster.markdown(cluster.run())
        print("\n".join(shared))
    else:  # the section of an earlier run, as it is
        earlier = cluster.section(RESULTS.read_text()) if RESULTS.exists() else None
        shared = earlier.splitlines() if earlier else []
    write(flow, cost, boot, pdf, reports, (sizes, grown), time.monotonic() - started,
          shared)
    print(f"wrote {RESULTS}", file=sys.stderr)


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def write(flow: dict, cost: dict, boot: dict, pdf: list,  # type: ignore[type-arg]
          reports: list, grown: tuple,  # type: ignore[type-arg]
          seconds: float, shared: list[str]) -> None:
    inbound = cost["inbound"]
    base = boot[startup.BASELINE]
    lines = [
        "# Benchmark results",
        "",
        f"- Machine: {machine()}",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "- Command: `./bench/run` (all benchmarks, {:.0f} s)".format(seconds),
        "- Absolute figures drift with the machine's other load; each is set against a baseline"
        " measured in the same run.",
        "",
        "## Webhook ingest (`bench/ingest.py`)",
        "",
        f"wrk, {flow['connections']} connections, {flow['seconds']} s per run, distinct signed"
        " PagerDuty v3 `incident.annotated` events posted to `im serve` (uvicorn + uvloop +"
        " httptools, with im's bounds on requests: docs/server.md), which verifies each"
        " signature, stores it durably (WAL, synchronous=FULL, group commit) and answers 202"
        " only after the commit; its background work applies them meanwhile (in the same"
        " process with one worker, in the supervisor process with `--workers 2`). Two baselines"
        " on the same stack, with as many worker processes, run just before the `im serve` they"
        " are set against: a raw ASGI app that reads the body and answers 202 (the ceiling of"
        " the stack itself) and a bare Litestar endpoint that does the same.",
        "",
        f"Each configuration ran {flow['rounds']} times, in turn.",
        "",
        "| round | workers | raw ASGI (ceiling) | bare Litestar | `im serve`, durable | p50"
        " | p99 | to raw ASGI | to bare Litestar |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for entry in flow["runs"]:
        lines.append(
            f"| {entry['round']} | {entry['workers']} | {entry['raw']['rate']:,.0f}/s"
            f" | {entry['bare']['rate']:,.0f}/s"
            f" | {entry['durable_rate']:,.0f}/s | {entry['p50_ms']:.1f} ms"
            f" | {entry['p99_ms']:.1f} ms | {entry['ratio_to_raw']:.2f}"
            f" | {entry['ratio_to_baseline']:.2f} |")
    lines.append("")
    for entry in flow["runs"]:
        drained = entry["backlog_applied_seconds"]
        lines += [
            f"- Round {entry['round']}, `--workers {entry['workers']}`: ratio to the bare"
            " Litestar endpoint"
            f" {entry['ratio_to_baseline']:.2f} (target >= 0.5:"
            f" {verdict(entry['ratio_to_baseline'] >= 0.5)}); 5,000 events/s:"
            f" {verdict(entry['durable_rate'] >= 5000)}; p99 <= 50 ms:"
            f" {verdict(entry['p99_ms'] <= 50)}. Answered 2xx: {entry['answered_2xx']:,} of"
            f" {entry['requests']:,}; stored: {entry['stored']:,}; lost (2xx answers beyond"
            f" the rows stored; the crash tests check by event id): {entry['lost']};"
            f" duplicated: {entry['duplicated']}; socket errors: {entry['socket_errors']}."
            f" Peak resident memory of `im serve` (all its processes):"
            f" {entry['peak_rss_mib']:.0f} MiB. Events left to apply when the burst ended:"
            f" {entry['backlog_after_burst']:,}, applied"
            + (f" {drained:.1f} s later." if drained is not None else " NOT within 120 s.")]
    runs = flow["stacks"]

    def total(stack: str, key: str) -> float:
        return sum(r[key] for r in runs if r["stack"] == stack)

    def mean(stack: str, key: str) -> float:
        return total(stack, key) / sum(1 for r in runs if r["stack"] == stack)

    rate_ratio = total("shipped", "durable_rate") / total("httptools", "durable_rate")
    cpu_ratio = mean("shipped", "cpu_us_per_request") / mean("httptools", "cpu_us_per_request")
    lines += [
        "",
        "### The server stack, before and after im bounded requests (one worker)",
        "",
        "`im serve` on uvicorn's httptools protocol as it comes (the stack before issue #16:"
        " no bound on a request's head, its time or the connections) and with im's bounds (as"
        " shipped), twice in ABBA order so that drift in the machine's load falls on both alike;"
        " then"
        " on uvicorn's h11 protocol, which bounds a head's size itself (through"
        " `bench/serve_as.py`). CPU per request is that of the `im serve` process during the"
        " burst, the applying of events in the background included, divided by the requests"
        " answered: it moves far less with the machine's other load than the rate does.",
        "",
        "| run | stack | durable | p50 | p99 | CPU per request |",
        "|---|---|---|---|---|---|",
    ]
    labels = {"httptools": "httptools as it comes (before)",
              "shipped": "httptools + im's bounds (shipped)", "h11": "h11"}
    for number, run in enumerate(runs, 1):
        lines.append(f"| {number} | {labels[run['stack']]} | {run['durable_rate']:,.0f}/s"
                     f" | {run['p50_ms']:.1f} ms | {run['p99_ms']:.1f} ms"
                     f" | {run['cpu_us_per_request']:.0f} µs |")
    lines += [
        "",
        f"As shipped, to before: {rate_ratio:.2f} x the durable rate (target >= 0.9:"
        f" {verdict(rate_ratio >= 0.9)}) and {cpu_ratio:.2f} x the CPU per request. h11:"
        f" {total('h11', 'durable_rate') / mean('httptools', 'durable_rate'):.2f} x the rate"
        f" and {mean('h11', 'cpu_us_per_request') / mean('httptools', 'cpu_us_per_request'):.2f}"
        " x the CPU per request of the stack before: it would cost more than im's bounds do,"
        " for fewer bounds.",
    ]
    lines += [
        "",
        "## Sync cost against the sandbox (`bench/sync_cost.py`)",
        "",
        "PagerDuty sandbox at PagerDuty's rate limit (960 requests a minute), calls counted in"
        " the sandbox's request log.",
        "",
        "| operation | API calls | what |",
        "|---|---|---|",
    ]
    for label in ("create_3_services", "create_1_service_warm", "ack_3_services",
                  "resolve_3_services"):
        entry = cost[label]
        lines.append(f"| {label.replace('_', ' ')} | {entry['calls']} |"
                     f" {', '.join(entry['by_path'])} |")
    lines += [
        "",
        f"Inbound sync of {inbound['incidents']:,} PagerDuty incidents (one poll):"
        f" {inbound['list_calls']} list calls (bound 2 x (ceil(N/100) + 1 per 10,000-record"
        f" window) + 1 = {inbound['bound']}: {verdict(inbound['list_calls'] <= inbound['bound'])}):"
        f" {inbound['window_calls']} pages of the incidents created in the poll's window,"
        f" {inbound['log_calls']} of PagerDuty's log of the changes in it (each new incident's"
        f" trigger among them) and {inbound['older_open_calls']} of the older ones still open"
        " (the hourly sweep, which a first poll makes),"
        f" {inbound['per_incident_calls']} per-incident calls,"
        f" {len(inbound['other_calls'])} other call{'s' * (len(inbound['other_calls']) != 1)}"
        f" ({'; '.join(other_call(c) for c in inbound['other_calls']) or 'none'}),"
        f" {inbound['status_429']} answers"
        f" 429; {inbound['wall_seconds']} s wall, {inbound['cpu_seconds']} s CPU of the syncing"
        " thread,"
        f" {inbound['cpu_ms_per_incident']} ms CPU per synced incident (each becomes an im"
        f" incident with its timeline and link). Outcomes: {inbound['outcomes']}.",
        "",
    ]
    old = cost["year_old_cursor"]
    lines += [
        f"A poll with a cursor a year old, on an account of {old['users']:,} users and"
        f" {old['incidents']:,} incidents made over the last year (half still open):"
        f" {old['list_calls']} list calls (bound {old['bound']}, the year asked in parts of"
        f" 180 days: {verdict(old['list_calls'] <= old['bound'])}),"
        f" {old['per_incident_calls']} per-incident calls, {old['user_listings']} listings of"
        f" users (people looked up by id: {', '.join(old['user_lookups']) or 'none'}),"
        f" {old['status_4xx']} answers 4xx (no stall: {verdict(old['status_4xx'] == 0)}), cursor"
        f" moved: {'yes' if old['cursor_moved'] else 'NO'}; {old['wall_seconds']} s wall."
        f" Outcomes: {old['outcomes']}.",
        "",
        "## CLI start-up (`bench/startup.py`)",
        "",
        f"Median wall time of {startup.RUNS} runs each, warm database, the commands run in turn"
        " round after round. `python -c \"import typer\"` is a second reference: the floor the"
        " command-line framework alone sets on this machine.",
        "",
        "| command | median | above `python -c pass` |",
        "|---|---|---|",
    ]
    for name, value in boot.items():
        lines.append(f"| `{name}` | {value:.0f} ms | {value - base:+.0f} ms |")
    commands = {k: v for k, v in boot.items() if k not in (startup.BASELINE, startup.FLOOR)}
    worst = max(v - base for v in commands.values())
    floor = boot[startup.FLOOR] - base
    lines += ["", f"Target <= 100 ms above `python -c pass`: {verdict(worst <= 100)}"
              f" (worst {worst:.0f} ms). Importing Typer alone costs {floor:+.0f} ms; the"
              f" commands add {min(commands.values()) - boot[startup.FLOOR]:+.0f} to"
              f" {max(commands.values()) - boot[startup.FLOOR]:+.0f} ms to it.", ""]
    lines += [
        "## PDF report of a long timeline (`bench/report_pdf.py`)",
        "",
        "One incident with N timeline lines, `im report` as PDF, each in a process of its own."
        " As shipped, a long table is laid out in chunks of"
        f" {report_pdf_chunk()} rows drawn as one; the baseline, in the same run, lays it out"
        " as one table, which reportlab lays out again, whatever is left of it, at every page"
        " break.",
        "",
        "| lines | layout | time | per 1,000 lines | peak memory | PDF |",
        "|---|---|---|---|---|---|",
    ]
    for entry in pdf:
        lines.append(f"| {entry['lines']:,} | {entry['layout']} | {entry['seconds']:.1f} s"
                     f" | {entry['seconds'] / entry['lines'] * 1000:.2f} s"
                     f" | {entry['peak_mib']:.0f} MiB | {entry['bytes'] / 1024 ** 2:.1f} MiB |")
    biggest = max((e for e in pdf if e["layout"] == "chunked"), key=lambda e: e["lines"])
    lines += ["", f"Target: {biggest['lines']:,} lines in under 15 s:"
              f" {verdict(biggest['seconds'] < 15)} ({biggest['seconds']:.1f} s).", ""]
    lines += [
        "## Reports over many incidents (`bench/report_json.py`)",
        "",
        f"N incidents over {report_json.DAYS} days, each with five timeline lines, `im report`"
        " of them all as JSON and as PDF, each in a process of its own: streamed as shipped"
        " (read from the store a batch at a time, written as they come) and, as the baseline"
        " in the same run, built whole in memory and rendered.",
        "",
        *report_json.table(reports),
        "",
    ]
    lines += scale_section(*grown)
    # several servers on one PostgreSQL database (--cluster), its own date and machine state
    lines += [*shared, ""] if shared else []
    RESULTS.write_text("\n".join(lines))


def scale_section(sizes: list[int], results: dict) -> list[str]:  # type: ignore[type-arg]
    return [
        "## Scale: cost by size of the history (`bench/scale.py`)",
        "",
        "Homes of N incidents built through im's application layer over two years (5% still"
        " open, about five timeline lines, 1.8 services and PagerDuty links each; the outbox's"
        " deliveries and the hourly purge as under `im serve`), cached in bench/.homes/. The"
        " real CLI in child processes against a copy, with a PagerDuty sandbox holding the"
        " open remote incidents; warm, the median of 5 runs after one (fewer where a run"
        " takes long, as said), the sizes in turn round after round; wall time and the CPU"
        " time of the command's process (the goals are judged on CPU time: a shared machine's"
        " load moves wall time by more than 2 x); peak memory is the child's. `GET /metrics`"
        " is scraped from a real `im serve`. Growth per 10x: the largest size's figure to the"
        " smallest's, per tenfold size (1.00 x: flat; 10 x: in step with the history)."
        " 100,000 incidents: `./bench/run --scale-sizes 1000,10000,100000` or"
        " `.venv/bin/python bench/scale.py` (`--sizes ...,1000000` for a million).",
        "",
        *scale.markdown(sizes, results),
        "",
    ]


def report_pdf_chunk() -> int:
    from im.reports.as_pdf import CHUNK_ROWS

    return int(CHUNK_ROWS)


if __name__ == "__main__":
    main()
