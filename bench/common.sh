# bench/common.sh: what brigade's benchmark scripts share — tool installation, server start and
# readiness, wrk runs, the demo ids an order needs, formatting. Sourced after the script has
# set WORK, PIDS, BRIGADE, WARMUP, DURATION, SERVER_CPU and CLIENT_CPU; it installs the EXIT
# trap that stops every server in PIDS and removes WORK.

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'bench/service: %s\n' "$*" >&2; exit 1; }

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [[ -n $WORK && -d $WORK ]]; then
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# Tools

as_root() {
  if [[ $EUID -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    die "need root (or sudo) to run: $*"
  fi
}

APT_UPDATED=0
apt_install() {
  log "installing $* from Debian"
  if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null; then
    if [[ $APT_UPDATED -eq 0 ]]; then
      APT_UPDATED=1
      as_root apt-get update -qq >/dev/null
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    else
      die "cannot install $*"
    fi
  fi
}

# need COMMAND PACKAGE: installs PACKAGE when COMMAND is missing.
need() {
  command -v "$1" >/dev/null || apt_install "$2"
  command -v "$1" >/dev/null || die "$1 is still missing after installing $2"
}

# ---------------------------------------------------------------------------------------------
# Helpers

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# now_us: wall clock in microseconds, without spawning a process.
now_us() {
  local t=${EPOCHREALTIME//[.,]/}
  printf '%s' "$((10#$t))"
}

# start_server LOGFILE COMMAND...: starts COMMAND pinned to SERVER_CPU; sets SERVER_PID.
start_server() {
  local logfile=$1
  shift
  taskset -c "$SERVER_CPU" "$@" >"$logfile" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
}

stop_server() {
  local pid=$1
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

# wait_ready URL PID LOGFILE: polls URL until it answers 2xx; fails when PID dies or after 120s.
wait_ready() {
  local url=$1 pid=$2 logfile=$3 deadline=$((SECONDS + 120))
  until curl -fs -o /dev/null --max-time 2 "$url"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      cat "$logfile" >&2 || true
      die "server exited before $url answered"
    fi
    if ((SECONDS > deadline)); then
      cat "$logfile" >&2 || true
      die "$url did not become ready within 120s"
    fi
    sleep 0.05
  done
}

# start_brigade NAME LOGFILE ARGS...: starts `brigade serve` on a free port and waits for
# readiness; sets SERVER_PID and BASE.
BASE=""
start_brigade() {
  local name=$1 logfile=$2 port
  shift 2
  port=$(free_port)
  log "starting brigade ($name) on 127.0.0.1:$port"
  start_server "$logfile" "$BRIGADE" serve --listen "127.0.0.1:$port" --drain-delay-ms 0 "$@"
  BASE="http://127.0.0.1:$port"
  wait_ready "$BASE/health/ready" "$SERVER_PID" "$logfile"
}

# fmt_int N: 12345.6 -> 12,346
fmt_int() {
  python3 -c 'import sys; print(f"{float(sys.argv[1]):,.0f}")' "$1"
}

# ratio A B: A/B with two decimals, or "n/a".
ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0 && a != "") printf "%.2f", a / b; else printf "n/a" }'
}

# verdict VALUE OP LIMIT: "met" or "MISSED".
verdict() {
  awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN {
    if (v == "n/a" || v == "") { print "n/a"; exit }
    ok = (op == ">=") ? (v + 0 >= l + 0) : (v + 0 <= l + 0)
    print ok ? "met" : "MISSED"
  }'
}

# to_seconds 10s|2m|1h|10 -> seconds
to_seconds() {
  local d=$1
  [[ $d =~ ^([0-9]+)([smh]?)$ ]] || die "DURATION must look like 10s, 2m or 1h, not '$d'"
  local n=${BASH_REMATCH[1]}
  case ${BASH_REMATCH[2]} in
    m) echo $((n * 60)) ;;
    h) echo $((n * 3600)) ;;
    *) echo "$n" ;;
  esac
}

# run_wrk KEY LABEL CONNECTIONS URL [LUA]: warm-up, then the measured run; stores req/s in
# RPS[KEY] and a note about errors in NOTE[KEY].
declare -A RPS=() NOTE=()
run_wrk() {
  local key=$1 label=$2 connections=$3 url=$4 script=${5:-}
  local args=(-t1 "-c$connections" --latency)
  if [[ -n $script ]]; then
    args+=(-s "$script")
  fi
  local out="$WORK/wrk-$key.txt"
  taskset -c "$CLIENT_CPU" wrk "${args[@]}" -d "$WARMUP" "$url" >/dev/null
  taskset -c "$CLIENT_CPU" wrk "${args[@]}" -d "$DURATION" "$url" >"$out"
  local rps p50 p99 non2xx sockerr
  rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
  p50=$(awk '$1 == "50%" { print $2 }' "$out")
  p99=$(awk '$1 == "99%" { print $2 }' "$out")
  non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")
  sockerr=$(sed -n 's/^ *Socket errors: *//p' "$out")
  [[ -n $rps ]] || { cat "$out" >&2; die "no Requests/sec in wrk output for $label"; }
  RPS[$key]=$rps
  local note=""
  if [[ -n $non2xx ]]; then
    note="$non2xx non-2xx"
  fi
  if [[ -n $sockerr ]]; then
    note="${note:+$note, }socket errors: $sockerr"
  fi
  NOTE[$key]=$note
  printf '    %-52s %10s req/s   p50 %-9s p99 %-9s %s\n' "$label" "$(fmt_int "$rps")" \
    "$p50" "$p99" "${note:+($note)}" >&2
}

# ids BASE: sets SHOP_ID and ITEM_ID to the first demo shop and an available item on its menu,
# and TOKEN to a login token of the demo customer (orders need a customer).
ids() {
  local base=$1
  TOKEN=$(curl -fsS -X POST -H 'Content-Type: application/json' \
    -d "{\"email\":\"customer@brigade.demo\",\"password\":\"$BRIGADE_DEMO_PASSWORD\"}" \
    "$base/api/v1/sessions" | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')
  export TOKEN
  SHOP_ID=$(curl -fsS "$base/api/v1/shops" \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["id"])')
  ITEM_ID=$(curl -fsS "$base/api/v1/shops/$SHOP_ID/menu" \
    | python3 -c 'import json, sys; print(next(i["item_id"] for i in json.load(sys.stdin) if i["available"]))')
  export SHOP_ID ITEM_ID
}

# check_order BASE: places one order by hand, so a broken order path fails loudly here rather
# than as a suspiciously fast wrk run.
check_order() {
  local base=$1 body code
  body=$(printf '{"shop_id":"%s","items":[{"item_id":"%s","quantity":1}],"delivery":{"lat":52.51,"lon":13.40}}' \
    "$SHOP_ID" "$ITEM_ID")
  code=$(curl -sS -o "$WORK/order.json" -w '%{http_code}' -X POST \
    -H 'Content-Type: application/json' -H "Authorization: Bearer $TOKEN" -d "$body" \
    "$base/api/v1/orders")
  if [[ $code != 201 ]]; then
    cat "$WORK/order.json" >&2
    die "POST /api/v1/orders answered $code, expected 201"
  fi
}

# time_to_ready LOGFILE URL_PATH COMMAND...: milliseconds from spawning COMMAND (pinned to
# SERVER_CPU) to its first 2xx on URL_PATH, polling as fast as curl can, stored in READY_MS_RUN;
# the server listens on $PORT. Leaves the server running as SERVER_PID.
READY_MS_RUN=""
time_to_ready() {
  local logfile=$1 path=$2
  shift 2
  local url="http://127.0.0.1:$PORT$path" t0 t1
  t0=$(now_us)
  start_server "$logfile" "$@"
  until curl -fs -o /dev/null --max-time 2 "$url"; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      cat "$logfile" >&2 || true
      die "server exited before $url answered"
    fi
  done
  t1=$(now_us)
  READY_MS_RUN=$(awk -v d="$((t1 - t0))" 'BEGIN { printf "%.1f", d / 1000 }')
}

rss_mib() {
  awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"
}

# anon_mib PID: the process's own memory (RssAnon), without the pages of its binary and
# libraries that every process started from the same file shares.
anon_mib() {
  awk '/^RssAnon:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"
}

median() {
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

