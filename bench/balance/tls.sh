# Part 3 of bench/balance/run (sourced: uses its helpers and settings): brigade balance and
# nginx terminating TLS with one certificate in front of the same three upstreams.

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$WORK/tls-key.pem" -out "$WORK/tls-cert.pem" 2>/dev/null

UP1=$(free_port); UP2=$(free_port); UP3=$(free_port)
render "$HERE/upstreams.nginx.conf" "$WORK/upstreams.conf" UP1="$UP1" UP2="$UP2" UP3="$UP3"
start tls-upstreams nginx -c "$WORK/upstreams.conf" -e "$WORK/upstreams.error.log"
TLS_UPSTREAMS_PID=$LAST_PID
wait_http "http://127.0.0.1:$UP1/"
wait_http "http://127.0.0.1:$UP3/"

declare -A T_RPS T_P50 T_P99 T_NEW_RPS T_NEW_P99 T_RSS
# measure_tls NAME URL PID : both measurements of one TLS balancer.
measure_tls() {
  local name=$1 url=$2 pid=$3 rps p50 p99
  read -r rps p50 p99 < <(measure "$url")
  T_RPS[$name]=$rps; T_P50[$name]=$p50; T_P99[$name]=$p99
  read -r rps p50 p99 < <(measure "$url" -H "Connection: close")
  T_NEW_RPS[$name]=$rps; T_NEW_P99[$name]=$p99
  T_RSS[$name]=$(rss_kib "$pid")
}

log "TLS: brigade balance (peak_ewma)"
PORT=$(free_port); ADMIN=$(free_port)
render "$HERE/brigade.toml" "$WORK/brigade-tls.toml" PORT="$PORT" ADMIN="$ADMIN" UP1="$UP1" UP2="$UP2" UP3="$UP3" ALGORITHM=peak_ewma CHECK_PATH=/ CORE=fast
printf '\n[tls]\ncert = "%s"\nkey = "%s"\nhsts_max_age_secs = 0\n' "$WORK/tls-cert.pem" "$WORK/tls-key.pem" >>"$WORK/brigade-tls.toml"
start brigade-tls env BRIGADE_LOG__FILTER=warn "$BRIGADE" balance --config "$WORK/brigade-tls.toml" --log-format json
pid=$LAST_PID
wait_http "http://127.0.0.1:$ADMIN/health/ready"
measure_tls brigade "https://127.0.0.1:$PORT/" "$pid"
stop "$pid"

log "TLS: nginx"
PORT=$(free_port)
render "$HERE/balancer.nginx.conf" "$WORK/balancer-tls.conf" PORT="$PORT" UP1="$UP1" UP2="$UP2" UP3="$UP3"
sed -i "s|listen 127.0.0.1:$PORT;|listen 127.0.0.1:$PORT ssl; ssl_certificate $WORK/tls-cert.pem; ssl_certificate_key $WORK/tls-key.pem; ssl_protocols TLSv1.2 TLSv1.3; ssl_session_tickets off;|" "$WORK/balancer-tls.conf"
grep -q "ssl_certificate" "$WORK/balancer-tls.conf" || die "the nginx TLS listener was not configured"
start nginx-tls nginx -c "$WORK/balancer-tls.conf" -e "$WORK/balancer-tls.error.log"
pid=$LAST_PID
for _ in $(seq 1 100); do
  curl -fsSk -o /dev/null "https://127.0.0.1:$PORT/" 2>/dev/null && break
  sleep 0.05
done
measure_tls nginx "https://127.0.0.1:$PORT/" "$pid"
stop "$pid"
stop "$TLS_UPSTREAMS_PID"

echo
echo "## TLS termination: brigade balance vs nginx (one ECDSA P-256 certificate, wrk -t1 -c$CONNECTIONS -d$DURATION, one worker each)"
echo
echo "| balancer | keep-alive requests/s | p50 ms | p99 ms | new TLS connection per request: requests/s | p99 ms | RSS MiB |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for name in brigade nginx; do
  awk -v n="$name" -v r="${T_RPS[$name]}" -v a="${T_P50[$name]}" -v b="${T_P99[$name]}" \
      -v h="${T_NEW_RPS[$name]}" -v hp="${T_NEW_P99[$name]}" -v m="${T_RSS[$name]}" 'BEGIN {
    printf "| %s | %.0f | %.3f | %.3f | %.0f | %.3f | %.1f |\n", n, r, a, b, h, hp, m / 1024
  }'
done
echo
awk -v r="${T_RPS[brigade]}" -v rn="${T_RPS[nginx]}" -v h="${T_NEW_RPS[brigade]}" -v hn="${T_NEW_RPS[nginx]}" 'BEGIN {
  printf "brigade over TLS: %.2f× nginx on keep-alive connections, %.2f× nginx with a handshake per request\n", r / rn, h / hn
}'
