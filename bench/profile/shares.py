#!/usr/bin/env python3
"""Where the CPU time of the order path goes, from a collapsed stack file.

Used by bench/profile/flamegraph. Input: `inferno-collapse-perf --all` output
("frame;frame;... weight" per line, root first, kernel frames ending in `_[k]`). Each sample
goes to the innermost part of the order path on its stack: the kernel when its leaf frame is a
kernel frame, else the first frame from the leaf up that matches a part's pattern, else
"other". The parts therefore add up to 100 %.

Usage: shares.py LABEL FOLDED_FILE
"""

import re
import sys

# Parts of the order path. Patterns match demangled Rust paths (inferno keeps each frame's
# crate path) and C symbols; the innermost matching frame decides.
PARTS = [
    ("SQLite engine", r"^sqlite3|^sqlite3[A-Za-z_]+|libsqlite3"),
    ("PostgreSQL protocol (sqlx-postgres)", r"sqlx_postgres::"),
    ("sqlx pool and statements (sqlx-core, sqlx-sqlite)", r"sqlx_core::|sqlx_sqlite::"),
    ("password and token crypto (JWT, HMAC, SHA-2, Argon2)", r"jsonwebtoken::|\bhmac::|\bsha2::|\bargon2::|ring::|aws_lc"),
    ("JSON (serde_json)", r"serde_json::"),
    ("logging and spans (tracing)", r"tracing_subscriber::|tracing_core::|\btracing::"),
    ("metrics", r"\bmetrics::|metrics_exporter_prometheus::|metrics_util::"),
    ("allocator (mimalloc)", r"^_?mi_|mimalloc"),
    ("brigade's own code", r"brigade_[a-z]+::"),
    ("HTTP (hyper, axum, tower)", r"\bhyper::|\baxum::|\btower::|\bhttp::"),
    ("async runtime (tokio)", r"\btokio::"),
    ("C library (memcpy, locks, …)", r"^__?(memcpy|memmove|memset|pthread|lll_|GI_|libc)|^(malloc|free)$|libc\.so"),
]


def main():
    label, path = sys.argv[1], sys.argv[2]
    compiled = [(name, re.compile(pattern)) for name, pattern in PARTS]
    weights = {name: 0 for name, _ in PARTS}
    kernel = other = total = 0
    with open(path, encoding="utf-8", errors="replace") as folded:
        for line in folded:
            stack, _, weight = line.rstrip("\n").rpartition(" ")
            if not weight.isdigit():
                continue
            n = int(weight)
            total += n
            frames = stack.split(";")
            if frames[-1].endswith("_[k]"):
                kernel += n
                continue
            for frame in reversed(frames):
                part = next((name for name, pattern in compiled if pattern.search(frame)), None)
                if part:
                    weights[part] += n
                    break
            else:
                other += n
    share = lambda n: f"{100.0 * n / max(total, 1):.1f} %"
    print(f"\n| {label}: part of the order path | share of CPU time |\n|---|---:|")
    for name, _ in PARTS:
        print(f"| {name} | {share(weights[name])} |")
    print(f"| kernel (system calls, network, scheduling) | {share(kernel)} |")
    print(f"| other | {share(other)} |")


if __name__ == "__main__":
    main()
