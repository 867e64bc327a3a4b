#!/usr/bin/env python3
"""Load generator for the registry daemon's metadata API (standard library only).

Measures, against a daemon populated by `HubBenchmarks populate`:
  1. latency p50/p99 of single requests on one keep-alive connection, per endpoint;
  2. N concurrent clients (threads, one connection each) released together, counting errors.

    python3 benchmarks/registry_load.py --port 8080 --variants 10000 --clients 200
"""
import argparse
import http.client
import json
import random
import statistics
import threading
import time


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def paths(rng, variants):
    name = f"bench/variant-{rng.randrange(variants):05d}"
    return {
        "model info": f"/api/models/{name}",
        "card (lineage, metrics)": f"/api/models/{name}/card",
        "tree": f"/api/models/{name}/tree/main",
        "search (10 of 10k)": f"/api/models?search=variant-{rng.randrange(variants // 10):04d}&limit=10",
        "resolve config.json": f"/{name}/resolve/main/config.json",
    }


def latency(port, variants, requests):
    rng = random.Random(1)
    connection = http.client.HTTPConnection("127.0.0.1", port)
    timings = {}
    for _ in range(requests):
        for label, path in paths(rng, variants).items():
            start = time.perf_counter()
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
            elapsed = time.perf_counter() - start
            if response.status != 200:
                raise SystemExit(f"{path}: HTTP {response.status}")
            timings.setdefault(label, []).append(elapsed * 1000)
    return timings


def concurrent(port, variants, clients, per_client):
    barrier = threading.Barrier(clients)
    errors, timings, lock = [], [], threading.Lock()

    def client(index):
        rng = random.Random(index)
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            connection.connect()
        except Exception as error:  # noqa: BLE001 - every failure counts as an error
            with lock:
                errors.append(f"connect: {error}")
            barrier.abort()
            return
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            return
        for _ in range(per_client):
            path = rng.choice(list(paths(rng, variants).values()))
            start = time.perf_counter()
            try:
                connection.request("GET", path)
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
            except Exception as error:  # noqa: BLE001
                ok, response = False, error
            with lock:
                timings.append((time.perf_counter() - start) * 1000)
                if not ok:
                    errors.append(f"{path}: {getattr(response, 'status', response)}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start, timings, errors


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--variants", type=int, default=10000)
    parser.add_argument("--requests", type=int, default=400, help="rounds of the endpoint mix for latency")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--per-client", type=int, default=25)
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()

    figures = {"latency_ms": {}}
    print(f"metadata latency, one keep-alive connection, {args.requests} requests per endpoint, {args.variants} variants:")
    for label, values in latency(args.port, args.variants, args.requests).items():
        p50, p99 = percentile(values, 50), percentile(values, 99)
        figures["latency_ms"][label] = {"p50": p50, "p99": p99}
        print(f"  {label:26s} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms")

    seconds, timings, errors = concurrent(args.port, args.variants, args.clients, args.per_client)
    total = args.clients * args.per_client
    figures["concurrent"] = {"clients": args.clients, "requests": total, "errors": len(errors), "seconds": seconds,
                             "p50_ms": percentile(timings, 50) if timings else None,
                             "p99_ms": percentile(timings, 99) if timings else None}
    print(f"{args.clients} concurrent clients x {args.per_client} requests: {total} requests in {seconds:.2f} s "
          f"({total / seconds:.0f} req/s), errors {len(errors)}, "
          f"p50 {figures['concurrent']['p50_ms']:.1f} ms, p99 {figures['concurrent']['p99_ms']:.1f} ms")
    for error in errors[:10]:
        print("  error:", error)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(figures, handle, indent=2)
    raise SystemExit(1 if errors else 0)


if __name__ == "__main__":
    main()
