#!/usr/bin/env python3
"""Share of samples per part of the order path, from a collapsed stack file.

Used by bench/profile/flamegraph. Input: inferno-collapse-perf output ("frame;frame;... count"
per line). A sample counts in a part when any frame of its stack matches the part's pattern;
the kernel part counts samples whose leaf is a kernel frame.

Usage: shares.py LABEL FOLDED_FILE
"""

import re
import sys

# Parts of the order path, in the order the table lists them. Patterns match demangled Rust
# paths (inferno keeps the crate path of each frame).
PARTS = [
    ("HTTP: hyper and axum", r"\bhyper::|\baxum::"),
    ("authentication: JWT verify, session lookup", r"jsonwebtoken::|brigade_api::caller::"),
    ("placement checks (brigade_api::placement)", r"brigade_api::placement::"),
    ("payment provider call", r"brigade_payments::"),
    ("store: sqlx", r"\bsqlx_core::|\bsqlx_sqlite::|\bsqlx_postgres::"),
    ("SQLite engine (sqlite3*)", r"\bsqlite3[A-Za-z_]*"),
    ("JSON (serde_json)", r"\bserde_json::"),
    ("logging and spans (tracing)", r"\btracing_subscriber::|\btracing_core::|\btracing::"),
    ("metrics", r"\bmetrics::|\bmetrics_exporter_prometheus::|\bmetrics_util::"),
    ("allocator (mimalloc)", r"\bmi_[a-z_]+|mimalloc"),
    ("async runtime (tokio)", r"\btokio::runtime::"),
]
KERNEL = re.compile(r"_\[k\]$|^(entry_SYSCALL|__x64_sys|do_syscall|syscall_exit)")


def main():
    label, path = sys.argv[1], sys.argv[2]
    compiled = [(name, re.compile(pattern)) for name, pattern in PARTS]
    counts = {name: 0 for name, _ in PARTS}
    kernel = 0
    total = 0
    with open(path, encoding="utf-8", errors="replace") as folded:
        for line in folded:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not count.isdigit():
                continue
            n = int(count)
            total += n
            for name, pattern in compiled:
                if pattern.search(stack):
                    counts[name] += n
            leaf = stack.rsplit(";", 1)[-1]
            if KERNEL.search(leaf):
                kernel += n
    print(f"\n| {label}: part of the order path | share of samples |\n|---|---:|")
    for name, _ in PARTS:
        print(f"| {name} | {100.0 * counts[name] / max(total, 1):.1f} % |")
    print(f"| in the kernel (leaf frame) | {100.0 * kernel / max(total, 1):.1f} % |")
    print(f"| samples | {total} |")


if __name__ == "__main__":
    main()
