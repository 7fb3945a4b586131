# Part 1 of bench/balance/run (sourced: uses its helpers and settings): requests/s and latency
# of brigade balance, nginx and HAProxy in front of the same three upstreams, at each
# connection count in $CONNECTION_COUNTS, in $ROUNDS interleaved rounds.
#
# Every balancer is started once and stays up for the whole part (idle ones cost nothing but
# a health check a second), so a round measures them back to back under the same conditions.
# Each round visits the targets in a different order (rotated by one per round), so a drift of
# the machine (another tenant, thermal, page cache) spreads over all of them instead of
# landing on whichever ran last. Reported per target and connection count: the median
# round's requests/s (and the lowest and highest), the median p50 and p99, the latency added
# over the upstream measured directly, and the RSS after the last round. The ratio that
# decides issue 23's target is brigade's fast core with peak_ewma against the better of nginx
# and HAProxy, at every connection count.
#
# Charts (when CHART_DIR is not empty): balance-throughput.{json,svg} and
# balance-p99.{json,svg}, one group of bars per connection count and one bar per balancer
# (the upstream measured directly is in the table only), drawn by brigade-bench-chart from the
# same medians as the table.

UP1=$(free_port); UP2=$(free_port); UP3=$(free_port)
render "$HERE/upstreams.nginx.conf" "$WORK/upstreams.conf" UP1="$UP1" UP2="$UP2" UP3="$UP3"
start upstreams nginx -c "$WORK/upstreams.conf" -e "$WORK/upstreams.error.log"
UPSTREAMS_PID=$LAST_PID
wait_http "http://127.0.0.1:$UP1/"
wait_http "http://127.0.0.1:$UP3/"

# The targets, in table order: name, URL and the process whose RSS is reported.
TARGETS=(direct)
declare -A URL PID_OF
URL[direct]="http://127.0.0.1:$UP1/"

for variant in peak_ewma:fast round_robin:fast round_robin:hyper; do
  algorithm=${variant%%:*}; core=${variant#*:}
  name="brigade $core core ($algorithm)"
  PORT=$(free_port); ADMIN=$(free_port)
  render "$HERE/brigade.toml" "$WORK/brigade-$algorithm-$core.toml" PORT="$PORT" ADMIN="$ADMIN" \
    UP1="$UP1" UP2="$UP2" UP3="$UP3" ALGORITHM="$algorithm" CHECK_PATH=/ CORE="$core"
  start "brigade-$algorithm-$core" env BRIGADE_LOG__FILTER=warn "$BRIGADE" balance \
    --config "$WORK/brigade-$algorithm-$core.toml" --log-format json
  PID_OF[$name]=$LAST_PID
  wait_http "http://127.0.0.1:$ADMIN/health/ready"
  TARGETS+=("$name"); URL[$name]="http://127.0.0.1:$PORT/"
done

PORT=$(free_port)
render "$HERE/balancer.nginx.conf" "$WORK/balancer.conf" PORT="$PORT" UP1="$UP1" UP2="$UP2" UP3="$UP3"
start nginx nginx -c "$WORK/balancer.conf" -e "$WORK/balancer.error.log"
PID_OF[nginx]=$LAST_PID
wait_http "http://127.0.0.1:$PORT/"
TARGETS+=(nginx); URL[nginx]="http://127.0.0.1:$PORT/"

PORT=$(free_port)
render "$HERE/haproxy.cfg" "$WORK/haproxy.cfg" PORT="$PORT" UP1="$UP1" UP2="$UP2" UP3="$UP3" CHECK_PATH=/
start haproxy haproxy -db -f "$WORK/haproxy.cfg"
PID_OF[haproxy]=$LAST_PID
wait_http "http://127.0.0.1:$PORT/"
TARGETS+=(haproxy); URL[haproxy]="http://127.0.0.1:$PORT/"

# One line per measurement: target, connections, round, requests/s, p50 ms, p99 ms.
RESULTS="$WORK/throughput.tsv"
: >"$RESULTS"
count=${#TARGETS[@]}
for round in $(seq 1 "$ROUNDS"); do
  for connections in $CONNECTION_COUNTS; do
    for i in $(seq 0 $((count - 1))); do
      name=${TARGETS[$(((i + round - 1) % count))]}
      log "round $round/$ROUNDS, $connections connections: $name"
      read -r rps p50 p99 < <(CONNECTIONS=$connections measure "${URL[$name]}")
      printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$connections" "$round" "$rps" "$p50" "$p99" >>"$RESULTS"
    done
  done
done

# RSS after the last round, KiB per target (direct: the upstream nginx, not a balancer).
RSS_FILE="$WORK/rss.tsv"
: >"$RSS_FILE"
for name in "${TARGETS[@]}"; do
  [ "$name" = direct ] && continue
  printf '%s\t%s\n' "$name" "$(rss_kib "${PID_OF[$name]}")" >>"$RSS_FILE"
done
for name in "${TARGETS[@]}"; do
  [ "$name" = direct ] || stop "${PID_OF[$name]}"
done
stop "$UPSTREAMS_PID"

# The table, the verdict and the chart tables, from the medians.
python3 - "$RESULTS" "$RSS_FILE" "$(nproc)" "$DURATION" "$ROUNDS" "${CHART_DIR:-}" "${TARGETS[@]}" <<'PY'
import json, statistics, sys

results, rss_file, cpus, duration, rounds, chart_dir, *targets = sys.argv[1:]
runs = {}
for line in open(results, encoding="utf-8"):
    name, conns, _round, rps, p50, p99 = line.rstrip("\n").split("\t")
    runs.setdefault((name, int(conns)), []).append((float(rps), float(p50), float(p99)))
rss = {}
for line in open(rss_file, encoding="utf-8"):
    name, kib = line.rstrip("\n").split("\t")
    rss[name] = int(kib) / 1024
counts = sorted({conns for _, conns in runs})

def median(name, conns, field):
    return statistics.median(run[field] for run in runs[(name, conns)])

brigade = "brigade fast core (peak_ewma)"
print()
print(f"## brigade balance vs nginx vs HAProxy ({cpus} CPUs, wrk -t1 -d{duration}, "
      f"{rounds} interleaved rounds, one worker each; medians)")
verdicts = []
for conns in counts:
    direct_p50 = median("direct", conns, 1)
    direct_p99 = median("direct", conns, 2)
    print()
    print(f"### {conns} connections")
    print()
    print("| target | requests/s (median) | lowest–highest | p50 ms | p99 ms | added p50 ms | added p99 ms | RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in targets:
        values = sorted(run[0] for run in runs[(name, conns)])
        rps, p50, p99 = (median(name, conns, field) for field in range(3))
        spread = f"{values[0]:.0f}–{values[-1]:.0f}"
        if name == "direct":
            print(f"| {name} | {rps:.0f} | {spread} | {p50:.3f} | {p99:.3f} | – | – | – |")
        else:
            print(f"| {name} | {rps:.0f} | {spread} | {p50:.3f} | {p99:.3f} | "
                  f"{p50 - direct_p50:.3f} | {p99 - direct_p99:.3f} | {rss[name]:.1f} |")
    ours = median(brigade, conns, 0)
    best_name = max(("nginx", "haproxy"), key=lambda n: median(n, conns, 0))
    best = median(best_name, conns, 0)
    added = median(brigade, conns, 2) - direct_p99
    nginx_added = median("nginx", conns, 2) - direct_p99
    met = ours >= 1.1 * best and added <= nginx_added
    verdicts.append(met)
    print()
    print(f"{brigade} at {conns} connections: {ours / best:.2f}× the better of nginx and "
          f"HAProxy ({best_name}), {ours / median('nginx', conns, 0):.2f}× nginx, "
          f"{ours / median('haproxy', conns, 0):.2f}× HAProxy; added p99 {added:.3f} ms vs "
          f"nginx {nginx_added:.3f} ms; target (≥ 1.1× the better, added p99 ≤ nginx's): "
          f"{'met' if met else 'NOT met'}")
print()
print(f"throughput target at every connection count: {'met' if all(verdicts) else 'NOT met'}")

if chart_dir:
    charts = {
        "balance-throughput": ("Proxied requests/s, one worker each (median of "
                               f"{rounds} rounds)", "req/s", 0),
        "balance-p99": (f"p99 latency, one worker each (median of {rounds} rounds)", "ms", 2),
    }
    for chart, (title, unit, field) in charts.items():
        rows = [{"label": f"{conns} connections",
                 "series": [{"name": name, "value": round(median(name, conns, field), 3)}
                            for name in targets if name != "direct"]}
                for conns in counts]
        with open(f"{chart_dir}/{chart}.json", "w", encoding="utf-8") as out:
            json.dump({"title": title, "unit": unit, "rows": rows}, out, indent=2)
            out.write("\n")
PY

if [ -n "${CHART_DIR:-}" ]; then
  for table in "$CHART_DIR"/balance-throughput.json "$CHART_DIR"/balance-p99.json; do
    "$CHART" "$table" -o "${table%.json}.svg" || die "cannot draw $table"
  done
  log "charts: $CHART_DIR/balance-throughput.svg, $CHART_DIR/balance-p99.svg"
fi
