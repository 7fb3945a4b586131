#!/usr/bin/env python3
"""Turns callgrind profiles of the order path into a breakdown table, instructions per order.

Every function's own instructions (callgrind_annotate's self cost) go to exactly one bucket,
by the first rule its name matches, so the buckets add up to the total; the stages below them
are inclusive costs of brigade's own functions (they overlap the buckets and each other).

Usage: breakdown.py ORDERS LABEL=callgrind.out [LABEL=callgrind.out ...]
(PER=request names the unit in the table's heading, for profiles of other requests: bench/profile/menu.)
"""

import os
import re
import subprocess
import sys

# (bucket, pattern), first match wins. The pattern is matched against the function's name,
# prefixed "LIBC:" for glibc's and "C:" for the C code bundled in the binary (SQLite, mimalloc,
# aws-lc); the object file is left out (every function of the binary has "brigade" in it).
BUCKETS = [
    ("allocator (mimalloc)", r"^C:_?mi_"),
    ("JWT, HMAC, SHA-2, base64", r"jsonwebtoken|hmac|sha2|ring::|aws_lc|base64"),
    ("SQLite engine (bundled C; its malloc and mutexes in libc)",
     r"^C:|sqlite3|^LIBC:.*(malloc|free|pthread_mutex)"),
    ("libc (memcpy, memset, syscall entry)", r"^LIBC:"),
    ("sqlx driver (encode, decode, pool, worker)", r"sqlx|flume"),
    ("JSON (serde_json)", r"serde_json|serde::|serde_core"),
    ("logging (tracing, JSON log lines)", r"tracing|telemetry|JsonLayer|sharded_slab"),
    ("metrics", r"metrics"),
    ("HTTP (hyper, axum, tower, http)", r"hyper|axum|tower|http::|httparse|matchit"),
    ("async runtime (tokio, futures)", r"tokio|futures|mio::"),
    ("time, ids, formatting", r"chrono|uuid|core::fmt|alloc::fmt|itoa|ryu|Timespec"),
    ("brigade's own code", r"brigade_"),
    ("Rust std (collections, strings, hashing)", r"(core|alloc|std|hashbrown)::"),
]

# Stages: inclusive cost of the first function matching each pattern.
STAGES = [
    ("caller: JWT + session lookup", r"brigade_api::caller::Caller::resolve"),
    ("JWT verify only", r"brigade_api::auth::tokens::TokenKeys::verify"),
    ("idempotency pre-check (find_idempotent)", r"::find_idempotent"),
    ("placement checks (placement::prepare)", r"brigade_api::placement::prepare"),
    ("write the order (place_order)", r"::place_order"),
    ("payment provider (simulated authorize)", r"SimulatedProvider.*authorize"),
    ("settle the payment", r"::settle_(authorization|placed)"),
    ("catalogue cache (station loads)", r"catalogue_cache::add_load"),
    ("access log line (JsonLayer)", r"JsonLayer.*on_event"),
]

FILE = re.compile(r"^(\?\?\?|\S+\.(rs|c|h|S|cc)):")
LINE = re.compile(r"^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(?:\*\s+)?(.*?)(?: \[([^\]]*)\])?$")


def annotate(path, inclusive):
    out = subprocess.run(
        ["callgrind_annotate", f"--inclusive={'yes' if inclusive else 'no'}",
         "--threshold=100", path],
        check=True, capture_output=True, text=True).stdout
    total, rows = 0, []
    for line in out.splitlines():
        if "PROGRAM TOTALS" in line:
            total = int(line.split()[0].replace(",", ""))
            continue
        match = LINE.match(line)
        if match and match.group(3):
            name, obj = FILE.sub("", match.group(2)), match.group(3)
            if "libc.so" in obj or "ld-linux" in obj:
                name = "LIBC:" + name
            elif "::" not in name and not name.startswith("<"):
                name = "C:" + name  # C code bundled in the binary
            rows.append((int(match.group(1).replace(",", "")), name))
    return total, rows


def main():
    orders = int(sys.argv[1])
    profiles = [arg.split("=", 1) for arg in sys.argv[2:]]
    labels = [label for label, _ in profiles]
    bucket_rows, stage_rows, totals = {}, {}, []
    for _, path in profiles:
        total, rows = annotate(path, inclusive=False)
        totals.append(total)
        sums = dict.fromkeys([b for b, _ in BUCKETS] + ["other"], 0)
        for cost, name in rows:
            bucket = next((b for b, p in BUCKETS if re.search(p, name)), "other")
            sums[bucket] += cost
        sums["other"] += total - sum(sums.values())
        for bucket, cost in sums.items():
            bucket_rows.setdefault(bucket, []).append(cost)
        _, inclusive = annotate(path, inclusive=True)
        for stage, pattern in STAGES:
            cost = next((c for c, name in inclusive if re.search(pattern, name)), 0)
            stage_rows.setdefault(stage, []).append(cost)

    def cells(values):
        return " | ".join(
            f"{v / orders:,.0f} ({100 * v / t:.1f} %)" if t else "-"
            for v, t in zip(values, totals))

    per = os.environ.get("PER", "order")
    print(f"| instructions per {per} (self cost, every function in one bucket) | {' | '.join(labels)} |")
    print("|---|" + "---:|" * len(labels))
    for bucket, values in sorted(bucket_rows.items(), key=lambda kv: -kv[1][0]):
        print(f"| {bucket} | {cells(values)} |")
    print(f"| **total** | {' | '.join(f'**{t / orders:,.0f}**' for t in totals)} |")
    print()
    print(f"| stage (inclusive, overlapping) | {' | '.join(labels)} |")
    print("|---|" + "---:|" * len(labels))
    for stage, values in stage_rows.items():
        print(f"| {stage} | {cells(values)} |")


if __name__ == "__main__":
    main()
