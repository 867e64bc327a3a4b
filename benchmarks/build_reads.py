#!/usr/bin/env python3
"""Probes a daemon's read latency (model info, one keep-alive connection) every --interval
seconds until --seconds pass or until the build --build is final; prints p50/p95/p99 as JSON.

    python3 benchmarks/build_reads.py --port 8080 --repo smollm2/base --seconds 20
    python3 benchmarks/build_reads.py --port 8080 --repo smollm2/base --build b0123… --token …
"""
import argparse
import http.client
import json
import time


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--repo", required=True)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--build")
    parser.add_argument("--token")
    args = parser.parse_args()
    connection = http.client.HTTPConnection("127.0.0.1", args.port, timeout=60)
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    timings, start, last_check, state = [], time.time(), 0.0, None
    while True:
        now = time.time()
        if args.build is None and now - start >= args.seconds:
            break
        if args.build and now - last_check >= 2:
            last_check = now
            connection.request("GET", f"/api/builds/{args.build}", headers=headers)
            state = json.loads(connection.getresponse().read())["state"]
            if state in ("succeeded", "failed", "cancelled"):
                break
        began = time.perf_counter()
        connection.request("GET", f"/api/models/{args.repo}")
        response = connection.getresponse()
        response.read()
        timings.append((time.perf_counter() - began) * 1000)
        if response.status != 200:
            raise SystemExit(f"HTTP {response.status}")
        time.sleep(args.interval)
    print(json.dumps({"requests": len(timings), "p50_ms": percentile(timings, 50), "p95_ms": percentile(timings, 95),
                      "p99_ms": percentile(timings, 99), "max_ms": max(timings), "seconds": time.time() - start,
                      "build_state": state}))


if __name__ == "__main__":
    main()
