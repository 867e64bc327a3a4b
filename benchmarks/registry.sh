#!/usr/bin/env bash
# Registry daemon benchmarks, each against a baseline measured in the same run:
#   1. download of a >= 500 MB blob over loopback, the daemon against nginx serving the same
#      file (sendfile), alternating rounds, with the daemon's resident memory sampled;
#   2. upload (hubctl push) of the same blob, against a plain local copy;
#   3. metadata latency p50/p99 with 10,000 variants, and 200 concurrent clients.
# Needs nginx (installed from Debian if missing) and a release build.
#
#   bash benchmarks/registry.sh [--size-mb 600] [--rounds 5] [--variants 10000] [--clients 200]
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb=600; rounds=5; variants=10000; clients=200
while [ $# -gt 0 ]; do
    case "$1" in
        --size-mb) size_mb=$2; shift 2 ;; --rounds) rounds=$2; shift 2 ;;
        --variants) variants=$2; shift 2 ;; --clients) clients=$2; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
command -v nginx >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null; }
swift build -c release --product hubctl >/dev/null
swift build -c release --product HubBenchmarks >/dev/null
bin=$(swift build -c release --show-bin-path)
work=$(mktemp -d /tmp/hub-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

start_daemon() { # data-dir -> sets daemon_pid, daemon_port
    "$bin/hubctl" serve --port 0 --data-dir "$1" 2>"$work/serve.log" &
    daemon_pid=$!; pids+=("$daemon_pid")
    for _ in $(seq 100); do
        daemon_port=$(grep -o 'on http://127.0.0.1:[0-9]*' "$work/serve.log" | head -1 | sed 's/.*://') && [ -n "$daemon_port" ] && return
        sleep 0.1
    done
    echo "daemon did not start" >&2; cat "$work/serve.log" >&2; exit 1
}
rss_mb() { awk -v k="$2" '$1 == k":" { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }
median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

echo "== blob transfer: ${size_mb} MiB over loopback, ${rounds} rounds =="
mkdir -p "$work/content" "$work/www"
head -c "$((size_mb << 20))" /dev/urandom > "$work/content/weights.bin"
start_daemon "$work/hub"
t0=$(date +%s.%N); cp "$work/content/weights.bin" "$work/copy.bin"; sync "$work/copy.bin"; t1=$(date +%s.%N)
"$bin/hubctl" push "$work/content" bench/big --data-dir "$work/hub" --endpoint "http://127.0.0.1:$daemon_port" -m bench >/dev/null 2>&1
t2=$(date +%s.%N)
awk -v a="$t0" -v b="$t1" -v c="$t2" -v s="$size_mb" 'BEGIN { printf "upload (hubctl push, hashing + chunks + verify): %.0f MiB/s; local copy + sync: %.0f MiB/s; ratio %.2f\n", s/(c-b), s/(b-a), (b-a)/(c-b) }'
ln "$work/content/weights.bin" "$work/www/weights.bin"
chmod 755 "$work" "$work/www"; chmod 644 "$work/www/weights.bin"
nginx_port=$((daemon_port + 1))
cat > "$work/nginx.conf" <<CONF
user root;
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
daemon off;
events { worker_connections 256; }
http {
    access_log off;
    sendfile on;
    client_body_temp_path $work/nginx-body; proxy_temp_path $work/nginx-proxy; fastcgi_temp_path $work/nginx-fcgi;
    uwsgi_temp_path $work/nginx-uwsgi; scgi_temp_path $work/nginx-scgi;
    server { listen 127.0.0.1:$nginx_port; root $work/www; }
}
CONF
nginx -c "$work/nginx.conf" -e "$work/nginx-error.log" & pids+=($!)
sleep 0.5
daemon_url="http://127.0.0.1:$daemon_port/bench/big/resolve/main/weights.bin"
nginx_url="http://127.0.0.1:$nginx_port/weights.bin"
curl -sf -o /dev/null "$daemon_url"; curl -sf -o /dev/null "$nginx_url"   # warm the page cache
rss_before=$(rss_mb "$daemon_pid" VmRSS)
: > "$work/daemon.txt"; : > "$work/nginx.txt"; : > "$work/ratio.txt"
for round in $(seq "$rounds"); do
    n=$(curl -sf -o /dev/null -w '%{speed_download}' "$nginx_url")
    d=$(curl -sf -o /dev/null -w '%{speed_download}' "$daemon_url")
    echo "$n" >> "$work/nginx.txt"; echo "$d" >> "$work/daemon.txt"
    awk -v d="$d" -v n="$n" 'BEGIN { print d / n }' >> "$work/ratio.txt"
    awk -v r="$round" -v d="$d" -v n="$n" -v m="$(rss_mb "$daemon_pid" VmRSS)" 'BEGIN { printf "  round %d: daemon %.0f MiB/s, nginx %.0f MiB/s, ratio %.2f, daemon RSS %d MiB\n", r, d/1048576, n/1048576, d/n, m }'
done
awk -v d="$(median < "$work/daemon.txt")" -v n="$(median < "$work/nginx.txt")" -v r="$(median < "$work/ratio.txt")" \
    'BEGIN { printf "download median: daemon %.0f MiB/s, nginx %.0f MiB/s, median per-round ratio %.2f (goal >= 0.80)\n", d/1048576, n/1048576, r }'
echo "daemon RSS: ${rss_before} MiB before the downloads, $(rss_mb "$daemon_pid" VmRSS) MiB after, peak $(rss_mb "$daemon_pid" VmHWM) MiB (blob: ${size_mb} MiB)"
kill "$daemon_pid"

echo "== metadata: ${variants} variants, ${clients} concurrent clients =="
"$bin/HubBenchmarks" populate --data-dir "$work/meta" --variants "$variants"
start_daemon "$work/meta"
python3 benchmarks/registry_load.py --port "$daemon_port" --variants "$variants" --clients "$clients"
echo "daemon RSS after the load: $(rss_mb "$daemon_pid" VmRSS) MiB (peak $(rss_mb "$daemon_pid" VmHWM) MiB)"
