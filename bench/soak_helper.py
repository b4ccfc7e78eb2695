#!/usr/bin/env python3
"""bench/soak's side load and sampler (see bench/soak).

  soak_helper.py run SOCKET GENERATED_DIR PID DB SECONDS INTERVAL OUT.json
      runs, for SECONDS: a connection churner (open, Health.Check, close,
      about 20 a second), a live consumer (long polls, Ack after each
      batch), a slow consumer (10 events, then 2 s of "work"), and a sampler
      that every INTERVAL seconds records moatd's RSS (now, and the lowest
      and highest of a reading every second since the last sample), open fds, threads,
      the WAL size, each consumer's lag (events behind) and the live
      consumer's delivery delay (receipt time minus each event's
      created_at, p99 and max since the last sample). Every call error is counted
      (none is expected). Writes the samples and counts to OUT.json.
  soak_helper.py report OUT.json MIXED.json TABLE.txt CHART.svg WINDOW_MIN MAX_RSS_SLOPE MAX_FD_SLOPE
      merges the mixed load's per-second latency into per-sample p99, prints
      and writes the table, draws the SVG, and exits 1 if RSS or fds grew
      faster than the limits (least-squares slope over the last WINDOW_MIN
      minutes; for RSS, of each interval's lowest reading: every Argon2id
      hash holds a 19 MiB buffer while it runs, so a point reading swings by
      tens of MiB with the hashes in flight, while a leak raises the floor)
      or any call failed.
"""
import json
import os
import socket
import struct
import sys
import threading
import time


def read_exact(sock, count):
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("closed by moatd")
        data += chunk
    return data


class Connection:
    def __init__(self, path, envelope):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.envelope = envelope
        self.next_id = 1

    def call(self, method, message, response_type, timeout_ms=10000):
        request = self.envelope.Request(id=self.next_id, method=method, timeout_ms=timeout_ms,
                                        payload=message.SerializeToString())
        self.next_id += 1
        body = request.SerializeToString()
        self.sock.sendall(struct.pack(">I", len(body)) + body)
        (length,) = struct.unpack(">I", read_exact(self.sock, 4))
        response = self.envelope.Response()
        response.ParseFromString(read_exact(self.sock, length))
        if response.status.code != 0:
            raise RuntimeError(f"{method}: {response.status.code} {response.status.reason}")
        result = response_type()
        result.ParseFromString(response.payload)
        return result

    def close(self):
        self.sock.close()


def run(path, generated, pid, db, seconds, interval, out):
    sys.path.insert(0, generated)
    from moat.rpc.v1 import envelope_pb2
    from moat.v1 import events_pb2, health_pb2

    stop = time.monotonic() + seconds
    counts = {"churn": 0, "live_events": 0, "slow_events": 0, "errors": 0}
    errors = []
    # The live consumer's delivery delay (now minus the event's created_at)
    # of every event since the last sample, in ms.
    delays = []
    lock = threading.Lock()

    def failed(where, error):
        with lock:
            counts["errors"] += 1
            if len(errors) < 20:
                errors.append(f"{where}: {error}")

    def churn():
        while time.monotonic() < stop:
            try:
                connection = Connection(path, envelope_pb2)
                connection.call("/moat.v1.Health/Check", health_pb2.CheckRequest(), health_pb2.CheckResponse)
                connection.close()
                with lock:
                    counts["churn"] += 1
            except Exception as error:  # noqa: BLE001 - every failure is counted and reported
                failed("churn", error)
            time.sleep(0.05)

    def consumer(name, batch, pause, key):
        connection = None
        while time.monotonic() < stop:
            try:
                if connection is None:
                    connection = Connection(path, envelope_pb2)
                polled = connection.call(
                    "/moat.v1.Events/Poll", events_pb2.PollRequest(consumer=name, max_events=batch, wait_ms=1000),
                    events_pb2.PollResponse)
                if polled.last_sequence_scanned > polled.cursor:
                    connection.call("/moat.v1.Events/Ack",
                                    events_pb2.AckRequest(consumer=name, sequence=polled.last_sequence_scanned),
                                    events_pb2.AckResponse)
                received = time.time() * 1000
                with lock:
                    counts[key] += len(polled.events)
                    if not pause:
                        delays.extend(received - event.created_at_unix_ms for event in polled.events)
                if pause:
                    time.sleep(pause)
            except Exception as error:  # noqa: BLE001
                failed(name, error)
                connection = None
                time.sleep(0.5)

    samples = []
    started = time.monotonic()
    rss_range = []  # readings since the last sample

    def status_field(name):
        """One numeric field of /proc/PID/status (VmRSS in KiB, Threads)."""
        status = open(f"/proc/{pid}/status").read()
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith(name + ":")))

    def probe():
        while time.monotonic() < stop:
            try:
                reading = status_field("VmRSS")
            except OSError:
                return
            with lock:
                rss_range.append(reading)
            time.sleep(1)

    def sample():
        rss = status_field("VmRSS")
        threads = status_field("Threads")
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        wal = os.path.getsize(db + "-wal") if os.path.exists(db + "-wal") else 0
        lag = {}
        try:
            connection = Connection(path, envelope_pb2)
            listed = connection.call("/moat.v1.Events/ListConsumers", events_pb2.ListConsumersRequest(),
                                     events_pb2.ListConsumersResponse)
            connection.close()
            lag = {c.name: c.lag for c in listed.consumers}
        except Exception as error:  # noqa: BLE001
            failed("sampler", error)
        with lock:
            snapshot = dict(counts)
            window = sorted(delays)
            delays.clear()
            readings = rss_range + [rss]
            rss_range.clear()
        delay = {"p99_ms": window[min(len(window) - 1, int(len(window) * 0.99))] if window else None,
                 "max_ms": window[-1] if window else None, "events": len(window)}
        samples.append({"t": round(time.monotonic() - started, 1), "rss_kib": rss, "rss_min_kib": min(readings),
                        "rss_max_kib": max(readings), "fds": fds, "threads": threads,
                        "wal_bytes": wal, "lag": lag, "delivery": delay, "counts": snapshot})

    threads = [threading.Thread(target=churn, daemon=True),
               threading.Thread(target=consumer, args=("soak-live", 1000, 0, "live_events"), daemon=True),
               threading.Thread(target=consumer, args=("soak-slow", 10, 2.0, "slow_events"), daemon=True),
               threading.Thread(target=probe, daemon=True)]
    for thread in threads:
        thread.start()
    sample()
    next_sample = started + interval
    while time.monotonic() < stop:
        time.sleep(max(0, min(next_sample, stop) - time.monotonic()))
        if time.monotonic() >= next_sample:
            sample()
            next_sample += interval
    for thread in threads:
        thread.join(timeout=15)
    sample()
    json.dump({"interval": interval, "samples": samples, "counts": counts, "errors": errors}, open(out, "w"), indent=1)


def slope(points):
    """Least-squares slope of (x, y) points; 0 for fewer than 3."""
    if len(points) < 3:
        return 0.0
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    return 0.0 if var == 0 else sum((x - mx) * (y - my) for x, y in points) / var


def floor_kib(sample):
    """The lowest RSS reading of a sample's interval (the point reading for old samples)."""
    return sample.get("rss_min_kib", sample["rss_kib"])


def svg(samples, path):
    series = [("RSS, lowest of each interval (MiB)", [floor_kib(s) / 1024 for s in samples]),
              ("RSS, highest of each interval (MiB)", [s.get("rss_max_kib", s["rss_kib"]) / 1024 for s in samples]),
              ("open fds", [s["fds"] for s in samples]),
              ("threads", [s["threads"] for s in samples]),
              ("WAL (MiB)", [s["wal_bytes"] / 1048576 for s in samples]),
              ("slow consumer lag (events)", [s["lag"].get("soak-slow", 0) for s in samples]),
              ("live consumer delivery delay, p99 (ms)",
               [(s.get("delivery") or {}).get("p99_ms") or 0 for s in samples]),
              ("p99 of the mixed load (ms)", [s.get("p99_ms") or 0 for s in samples])]
    width, panel, left = 760, 120, 70
    height = panel * len(series) + 40
    minutes = [s["t"] / 60 for s in samples]
    span = max(minutes[-1], 1e-9)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
           f'font-size="11"><rect width="100%" height="100%" fill="white"/>',
           f'<text x="{left}" y="16" font-size="13">moat soak: {len(samples)} samples over {span:.1f} min</text>']
    for index, (name, values) in enumerate(series):
        top = 30 + index * panel
        high = max(max(values), 1e-9) * 1.1
        plot_w, plot_h = width - left - 20, panel - 35
        out.append(f'<text x="{left}" y="{top + 10}">{name} (max {max(values):.1f})</text>')
        out.append(f'<rect x="{left}" y="{top + 15}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#ccc"/>')
        out.append(f'<text x="{left - 5}" y="{top + 20}" text-anchor="end">{high:.0f}</text>')
        out.append(f'<text x="{left - 5}" y="{top + 15 + plot_h}" text-anchor="end">0</text>')
        points = " ".join(f"{left + plot_w * m / span:.1f},{top + 15 + plot_h * (1 - v / high):.1f}"
                          for m, v in zip(minutes, values))
        out.append(f'<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{points}"/>')
    out.append(f'<text x="{width - 20}" y="{height - 5}" text-anchor="end">minutes</text></svg>')
    open(path, "w").write("\n".join(out))


def report(out, mixed_path, table_path, chart_path, window_min, max_rss_slope, max_fd_slope):
    data = json.load(open(out))
    samples = data["samples"]
    mixed = json.load(open(mixed_path))
    timeline = [p for p in mixed.get("timeline", []) if not p.get("warmup")]
    interval = data["interval"]
    # The mixed load starts with the helper; its timeline is seconds since its own start.
    for index, sample in enumerate(samples):
        low = samples[index - 1]["t"] if index else 0
        inside = [p for p in timeline if low < p["t"] <= sample["t"] and p["calls"] > 0]
        sample["p99_ms"] = max((p["p99Ms"] for p in inside), default=None)
        sample["calls_per_s"] = sum(p["calls"] for p in inside) / max(sample["t"] - low, 1e-9) if inside else None
    lines = [f"{'min':>5} {'RSS MiB':>8} {'low':>6} {'high':>6} {'fds':>5} {'thr':>4} {'WAL MiB':>8} {'lag live':>8} {'lag slow':>8} "
             f"{'ev p99 ms':>9} {'calls/s':>8} {'p99 ms':>7}"]
    for s in samples:
        lines.append(
            f"{s['t'] / 60:5.1f} {s['rss_kib'] / 1024:8.1f} {floor_kib(s) / 1024:6.1f} "
            f"{s.get('rss_max_kib', s['rss_kib']) / 1024:6.1f} {s['fds']:5d} {s['threads']:4d} "
            f"{s['wal_bytes'] / 1048576:8.2f} {s['lag'].get('soak-live', 0):8d} {s['lag'].get('soak-slow', 0):8d} "
            f"{((s.get('delivery') or {}).get('p99_ms') or 0):9.0f} "
            f"{(s['calls_per_s'] or 0):8.0f} {(s['p99_ms'] or 0):7.2f}")
    end = samples[-1]["t"]
    # Skip the first two intervals (caches and pools filling) when the run is short.
    start = max(end - window_min * 60, min(2 * interval, end / 3))
    window = [s for s in samples if s["t"] >= start]
    rss_slope = slope([(s["t"] / 60, floor_kib(s) / 1024) for s in window])
    point_slope = slope([(s["t"] / 60, s["rss_kib"] / 1024) for s in window])
    fd_slope = slope([(s["t"] / 60, s["fds"]) for s in window])
    result = mixed["result"]
    lines.append("")
    lines.append(f"window {window[0]['t'] / 60:.1f}-{end / 60:.1f} min: RSS slope {rss_slope:+.2f} MiB/min "
                 f"of each interval's lowest reading (limit {max_rss_slope}; of the point readings "
                 f"{point_slope:+.2f}), fd slope {fd_slope:+.2f}/min (limit {max_fd_slope})")
    lines.append(f"mixed load: {result['calls']:,} calls, {result['errors']} errors, p99 {result['latencyMs']['p99']:.2f} ms; "
                 f"per op: " + ", ".join(f"{k} {v['calls']:,} (p99 {v['latencyMs']['p99']:.2f} ms, {v['errors']} err)"
                                           for k, v in sorted((mixed.get("ops") or {}).items())))
    counts = data["counts"]
    lines.append(f"side load: {counts['churn']:,} connections opened and closed, {counts['live_events']:,} events "
                 f"to the live consumer, {counts['slow_events']:,} to the slow one, {counts['errors']} errors")
    for error in data["errors"]:
        lines.append(f"  error: {error}")
    failures = []
    if rss_slope > max_rss_slope:
        failures.append("RSS grows")
    if fd_slope > max_fd_slope:
        failures.append("fds grow")
    if result["errors"] or counts["errors"]:
        failures.append("calls failed")
    lines.append("PASS" if not failures else "FAIL: " + ", ".join(failures))
    text = "\n".join(lines)
    open(table_path, "w").write(text + "\n")
    print(text)
    svg(samples, chart_path)
    return 1 if failures else 0


if __name__ == "__main__":
    if sys.argv[1] == "run":
        run(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], float(sys.argv[6]), float(sys.argv[7]),
            sys.argv[8])
    elif sys.argv[1] == "report":
        sys.exit(report(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], float(sys.argv[6]), float(sys.argv[7]),
                        float(sys.argv[8])))
    else:
        sys.exit(__doc__)
