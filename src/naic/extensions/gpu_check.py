"""GPU check for a node with a real GPU: the NVML sampler and a torch cell, as a session uses them.

    python -m naic.extensions.gpu_check [--seconds 6] [--interval 0.5]

Run it on a GPU node (or inside a GPU session) with naic-hub installed. It checks what no
test on a GPU-less CI machine can: that `NVMLSource` finds the GPUs `CUDA_VISIBLE_DEVICES`
gives this process, that the background `GPUSampler` sees utilisation rise while a torch
matrix multiply runs and fall after it, that the activity report the session sends the hub
(naic.extensions.reporter) calls GPU 0 busy for that window, and that torch sees the same
devices. It prints a table of readings and one verdict line per check; the exit status is 0
only when all pass. Without torch the sampler checks still run (its check reports "torch not
installed").
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from naic.extensions.reporter import summarize
from naic.extensions.sources.gpu import GPUSampler, NVMLSource


def busy_torch(seconds: float) -> tuple[bool, str]:
    """Keep GPU 0 busy with matrix multiplies for `seconds`; (ok, what happened)."""
    try:
        import torch  # optional and heavy: only here
    except ImportError:
        return False, "torch not installed"
    if not torch.cuda.is_available():
        return False, "torch sees no CUDA device"
    a = torch.randn(8192, 8192, device="cuda")
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        b = a @ a
        torch.cuda.synchronize()
        n += 1
    checksum = float(b[0, 0])
    return (
        True,
        f"{n} matmuls of 8192² on {torch.cuda.get_device_name(0)} (last [0,0]={checksum:.3g})",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="naic.extensions.gpu_check")
    parser.add_argument("--seconds", type=float, default=6.0, help="how long to keep GPU 0 busy")
    parser.add_argument("--interval", type=float, default=0.5, help="sampling interval")
    args = parser.parse_args(argv)

    print(f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '(unset)')}")
    source = NVMLSource()
    first = source.sample()
    results: list[tuple[str, bool, str]] = []
    results.append(("NVML sees the session's GPUs", bool(first), f"{len(first)} GPU(s)"))
    for g in first:
        print(f"  GPU {g.index}: {g.name}, {g.memory_total_mb:.0f} MiB")

    sampler = GPUSampler(source, interval_s=args.interval)
    sampler.start()
    time.sleep(2 * args.interval)
    start = time.time()
    ok, what = busy_torch(args.seconds)
    end = time.time()
    time.sleep(4 * args.interval)
    sampler.stop()

    print(f"{'t (s)':>6}  {'GPU':>3}  {'util %':>6}  {'mem MiB':>8}")
    for reading in sampler.readings():
        for g in reading.gpus:
            util = "n/a" if g.utilization_pct is None else f"{g.utilization_pct:.0f}"
            print(f"{reading.at - start:6.1f}  {g.index:3}  {util:>6}  {g.memory_used_mb:8.0f}")

    results.append(("torch computes on the GPU", ok, what))
    if ok:
        during = [
            g.utilization_pct
            for r in sampler.readings()
            if start + args.interval <= r.at <= end
            for g in r.gpus
            if g.index == 0 and g.utilization_pct is not None
        ]
        peak = max(during, default=0)
        results.append(
            ("the sampler sees GPU 0 busy during the cell", peak >= 50, f"peak {peak:.0f} %")
        )
        torch_count = __import__("torch").cuda.device_count()
        results.append(
            ("torch and NVML agree on the devices", torch_count == len(first), f"{torch_count}")
        )
        window = [r for r in sampler.readings() if start <= r.at <= end]
        report = summarize(window)
        print(f"activity report for the cell's window: {report}")
        busy = bool(report) and (report[0] is None or report[0] > 1.0)
        results.append(("the activity report calls GPU 0 busy", busy, f"{report[:1]}"))

    for name, passed, detail in results:
        print(f"{'PASS' if passed else 'FAIL'}  {name}: {detail}")
    return 0 if all(p for _, p, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
