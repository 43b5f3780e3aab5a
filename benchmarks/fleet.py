#!/usr/bin/env python
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fleet benchmark: how a converge and a drift run scale with fleet size, through one bastion.

For each fleet size it brings up a lab of its own (namespace hosts behind a bastion; it never
touches the main lab), then measures:

- ping floor: wall time of ``ansible -m ping`` over the fleet through the bastion;
- converge: wall time of a real run of the benchmark playbook on fresh hosts;
- drift: wall time of a ``--check --diff`` run on the now compliant fleet;
- posture read: wall time of ``ansible -m edgewarden.hardening.device_facts`` over the fleet
  (the audit playbook's one device call, which the benchmark playbook ran before the baseline
  until 2026-11-27 evening; the shipped site and drift playbooks do not run it), its second run
  (the devices keep the code from the first); drift_s + posture_s is that older measure;
- module executions (round trips) per host, from the drift_report callback's counts;
- bytes over the wire per host: the byte counters of each device's link on the bastion side
  (the veth in the bastion's namespace), read before and after each run;
- peak RSS of the module's Python process on the device: the interpreter is a wrapper
  (installed by this script) that records the children's ru_maxrss after every module run.

Usage: benchmarks/fleet.py [--sizes 1,10,30] [--forks 10] [--playbook benchmarks/converge.yml]
Prints a table and writes benchmarks/results.json. Run as root (the lab needs it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAB = os.path.join(ROOT, "tests", "lab", "lab")
BENCH_DIR = os.environ.get("EW_BENCH_DIR", "/var/tmp/edgewarden-bench")
IMAGES = os.environ.get("EW_LAB_IMAGES", "/var/tmp/edgewarden-lab/images")
LAB_NAME, LAB_PORT = "bm", "2391"
RSS_LOG = "/run/edgewarden-bench-rss.log"
# runs the real interpreter and logs the peak RSS (KiB) of the module process it ran
WRAPPER = """#!/usr/bin/python3
import resource, subprocess, sys
rc = subprocess.call(["/usr/bin/python3"] + sys.argv[1:])
with open("%s", "a") as log:
    log.write("%%d\\n" %% resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(rc)
""" % RSS_LOG
WRAPPER_PATH = "/run/edgewarden-bench-python"

TARGETS = {"drift_vs_ping": 3.0, "bytes_per_host": 150 * 1024, "rss_kib": 40 * 1024}


def env_for(size):
    env = dict(os.environ)
    env.update({
        "EW_LAB_DIR": os.path.join(BENCH_DIR, "lab"), "EW_LAB_NAME": LAB_NAME, "EW_LAB_BASTION_PORT": LAB_PORT,
        "EW_LAB_IMAGES": IMAGES, "EW_LAB_DEBIAN": str(size), "EW_LAB_EMBEDDED": "0", "EW_LAB_KERNEL": "0",
        "HOME": os.path.join(BENCH_DIR, "home"),
    })
    env["ANSIBLE_INVENTORY"] = os.path.join(env["EW_LAB_DIR"], "inventory.yml")
    return env


def run(cmd, env, check=True):
    return subprocess.run(cmd, env=env, check=check, capture_output=True, text=True)


def timed(cmd, env):
    start = time.monotonic()
    result = run(cmd, env, check=False)
    elapsed = time.monotonic() - start
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-3000:] + result.stderr[-3000:])
        raise SystemExit("failed: %s" % " ".join(cmd))
    return elapsed


def hosts(size):
    return ["debian%d" % i for i in range(1, size + 1)]


def link_bytes(size):
    """rx+tx bytes of each device's link, counted on the bastion side."""
    counts = {}
    for host in hosts(size):
        out = subprocess.run(["ip", "netns", "exec", "%s-bastion" % LAB_NAME, "cat",
                              "/sys/class/net/v-%s/statistics/rx_bytes" % host,
                              "/sys/class/net/v-%s/statistics/tx_bytes" % host],
                             check=True, capture_output=True, text=True).stdout.split()
        counts[host] = int(out[0]) + int(out[1])
    return counts


def delta(before, after):
    return dict((h, after[h] - before[h]) for h in before)


def install_wrapper(env, forks):
    local = os.path.join(BENCH_DIR, "python-wrapper")
    with open(local, "w") as handle:
        handle.write(WRAPPER)
    run(["ansible", "devices", "-f", forks, "-m", "ansible.builtin.copy",
         "-a", "src=%s dest=%s mode=0755" % (local, WRAPPER_PATH)], env)


def read_rss(env, forks):
    out = run(["ansible", "devices", "-f", forks, "-o", "-m", "ansible.builtin.command",
               "-a", "cat %s" % RSS_LOG], env, check=False).stdout
    peaks = []
    for line in out.splitlines():
        values = [int(v) for v in line.split("(stdout)")[-1].replace("\\n", " ").split() if v.isdigit()]
        if values:
            peaks.append(max(values))
    run(["ansible", "devices", "-f", forks, "-m", "ansible.builtin.file", "-a", "path=%s state=absent" % RSS_LOG], env)
    return max(peaks) if peaks else None


def measure(size, playbook, forks):
    env = env_for(size)
    os.makedirs(env["HOME"], exist_ok=True)
    run([LAB, "down"], env, check=False)
    run([LAB, "up"], env)
    forks = str(forks)
    report_dir = os.path.join(BENCH_DIR, "reports-%d" % size)
    try:
        ping = timed(["ansible", "devices", "-f", forks, "-m", "ansible.builtin.ping"], env)
        cb = dict(env, ANSIBLE_CALLBACKS_ENABLED="edgewarden.hardening.drift_report", EDGEWARDEN_REPORT_DIR=report_dir)
        before = link_bytes(size)
        converge = timed(["ansible-playbook", "-f", forks, playbook], cb)
        after_converge = link_bytes(size)
        drift = timed(["ansible-playbook", "-f", forks, "--check", "--diff", playbook], cb)
        after_drift = link_bytes(size)
        posture_cmd = ["ansible", "devices", "-f", forks, "-m", "edgewarden.hardening.device_facts"]
        run(posture_cmd, env)
        posture = timed(posture_cmd, env)
        with open(os.path.join(report_dir, "drift.json")) as handle:
            report = json.load(handle)
        # peak RSS from one more drift run, every module execution through the RSS-logging
        # interpreter: a second Python per call, so it is kept out of the timed runs
        install_wrapper(env, forks)
        run(["ansible-playbook", "-f", forks, "--check", playbook, "-e", "ansible_python_interpreter=%s" % WRAPPER_PATH],
            env)
        rss = read_rss(env, forks)
    finally:
        run([LAB, "down"], env, check=False)
    drift_bytes = delta(after_converge, after_drift)
    round_trips = [h["remote_tasks"] for h in report["hosts"].values()]
    return {
        "hosts": size, "forks": int(forks),
        "ping_s": round(ping, 2), "converge_s": round(converge, 2), "drift_s": round(drift, 2),
        "drift_vs_ping": round(drift / ping, 2), "posture_s": round(posture, 2),
        "drift_and_posture_vs_ping": round((drift + posture) / ping, 2),
        "round_trips_per_host": max(round_trips) if round_trips else None,
        "drift_bytes_per_host": int(sum(drift_bytes.values()) / float(size)),
        "converge_bytes_per_host": int(sum(delta(before, after_converge).values()) / float(size)),
        "peak_rss_kib": rss,
        "drift_found": report["summary"]["controls_changed"],
    }


def table(rows):
    cols = ["hosts", "forks", "ping_s", "converge_s", "drift_s", "drift_vs_ping", "posture_s",
            "drift_and_posture_vs_ping", "round_trips_per_host",
            "drift_bytes_per_host", "converge_bytes_per_host", "peak_rss_kib", "drift_found"]
    widths = [max(len(c), max(len(str(r[c])) for r in rows)) for c in cols]
    lines = ["  ".join(c.rjust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(str(r[c]).rjust(w) for c, w in zip(cols, widths)) for r in rows]
    return "\n".join(lines)


def verdicts(rows):
    out = []
    for r in rows:
        checks = [
            ("drift <= %.0fx ping floor" % TARGETS["drift_vs_ping"], r["drift_vs_ping"] <= TARGETS["drift_vs_ping"]),
            ("<= 150 KB per host per drift run", r["drift_bytes_per_host"] <= TARGETS["bytes_per_host"]),
            ("<= 40 MB peak RSS", r["peak_rss_kib"] is not None and r["peak_rss_kib"] <= TARGETS["rss_kib"]),
            ("compliant fleet shows no drift", r["drift_found"] == 0),
        ]
        out.append("%3d hosts: " % r["hosts"] + ", ".join("%s %s" % (name, "ok" if ok else "MISSED") for name, ok in checks)
                   + " (drift plus a posture read: %.2fx ping)" % r["drift_and_posture_vs_ping"])
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        # linear growth: the drift run's time per host does not rise with the fleet
        growth = (last["drift_s"] / last["hosts"]) / (first["drift_s"] / first["hosts"])
        out.append("drift time per host, %d vs %d hosts: x%.2f (linear or better: <= 1.0) %s"
                   % (last["hosts"], first["hosts"], growth, "ok" if growth <= 1.0 else "MISSED"))
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--sizes", default="1,10,30")
    parser.add_argument("--forks", type=int, default=10)
    parser.add_argument("--playbook", default=os.path.join(ROOT, "benchmarks", "converge.yml"))
    args = parser.parse_args()
    rows = []
    for size in [int(s) for s in args.sizes.split(",")]:
        rows.append(measure(size, args.playbook, min(args.forks, size)))
        print(table(rows[-1:]), flush=True)
    print()
    print(table(rows))
    print(verdicts(rows))
    with open(os.path.join(ROOT, "benchmarks", "results.json"), "w") as handle:
        json.dump({"targets": TARGETS, "rows": rows}, handle, indent=2)
        handle.write("\n")


if __name__ == "__main__":
    main()
