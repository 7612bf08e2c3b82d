#!/usr/bin/env python3
"""scan_torch.py — the selective scan in PyTorch on the same GPU, as a
benchmark harness for docs/CUDA.md (not part of the library).

Two formulations of core/scan.h's math (softplus dt, D skip, silu(z) gate):
  eager     a Python loop over time steps (state (B, E, N) carried)
  chunked   chunk-parallel: cumulative sums of dt*A inside chunks of T steps,
            then the carried state by a log-depth scan over the chunks (B, L,
            E, N intermediates; no Python loop over chunks, so the graph
            torch.compile traces does not grow with L); eager and compiled
Forward and forward+backward (autograd) times, CUDA events, median of reps.
With --ours FILE (the JSON of `mambakit bench cuda --scan-only --json`)
it prints our kernels' times and the speed-up beside each row.

usage: python3 scan_torch.py [--ours FILE] [--lens 512,2048,8192] [--no-compile]
"""
import argparse
import json
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    print("SKIP scan_torch: skipped: PyTorch is not installed")
    sys.exit(0)


def scan_eager(u, delta, A, Bm, Cm, D, z, bias):
    # u, delta, z (B, L, E); Bm, Cm (B, L, N); A (E, N); D, bias (E)
    Bsz, L, E = u.shape
    dt = F.softplus(delta + bias)
    h = u.new_zeros(Bsz, E, A.shape[1])
    ys = []
    for t in range(L):
        h = torch.exp(dt[:, t, :, None] * A) * h + (dt[:, t, :, None] * u[:, t, :, None]) * Bm[:, t, None, :]
        ys.append((h * Cm[:, t, None, :]).sum(-1))
    y = torch.stack(ys, 1) + D * u
    return y * F.silu(z)


def chunk_states(dec, last):
    """The state after each chunk from a zero start, given each chunk's decay dec and its
    zero-start end state last, both (B, nc, E, N): the inclusive scan of the affine maps
    h -> dec[c] h + last[c] over c, in ceil(log2 nc) doubling steps (Hillis-Steele). Until
    2026-11-28 this was a Python loop over the chunks, which torch.compile unrolled (128
    steps at L = 8192): its compile did not finish inside the harness's budget. Checked
    against the sequential loop in float64 (numpy mirror): 2e-16 at nc = 3, 7, 8."""
    nc = dec.shape[1]
    a, b, d = dec, last, 1
    while d < nc:
        b = torch.cat([b[:, :d], b[:, d:] + a[:, d:] * b[:, :-d]], 1)
        a = torch.cat([a[:, :d], a[:, d:] * a[:, :-d]], 1)
        d *= 2
    return b


def scan_chunked(u, delta, A, Bm, Cm, D, z, bias, T=64):
    Bsz, L, E = u.shape
    N = A.shape[1]
    nc = L // T
    dt = F.softplus(delta + bias)
    dA = (dt[..., None] * A).view(Bsz, nc, T, E, N)
    dBu = (dt * u)[..., None] * Bm[:, :, None, :]
    dBu = dBu.view(Bsz, nc, T, E, N)
    cum = dA.cumsum(2)                       # log of the decay from the chunk start
    hl = torch.exp(cum) * torch.cumsum(dBu * torch.exp(-cum), 2)  # zero-start states
    dec = torch.exp(cum[:, :, -1])           # (B, nc, E, N)
    hout = chunk_states(dec, hl[:, :, -1])   # state after each chunk
    H = torch.cat([torch.zeros_like(hout[:, :1]), hout[:, :-1]], 1)  # state entering each chunk
    h = hl + torch.exp(cum) * H[:, :, None]
    y = (h.view(Bsz, L, E, N) * Cm[:, :, None, :]).sum(-1) + D * u
    return y * F.silu(z)


def timeit(fn, reps):
    ev = [torch.cuda.Event(enable_timing=True) for _ in range(2)]
    fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        ev[0].record()
        fn()
        ev[1].record()
        torch.cuda.synchronize()
        ts.append(ev[0].elapsed_time(ev[1]) * 1e3)
    ts.sort()
    return ts[len(ts) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", help="JSON from `mambakit bench cuda --scan-only --json`")
    ap.add_argument("--lens", default="512,2048,8192")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--budget", type=float, default=240, help="seconds; later rows are skipped past it")
    a = ap.parse_args()
    if not torch.cuda.is_available():
        print("SKIP scan_torch: skipped: no CUDA device")
        return
    t_start = time.time()
    ours = {}
    if a.ours:
        try:
            js = json.load(open(a.ours))
            for r in js.get("scan", []):
                ours[(r["L"], r["pass"])] = r["time_us"]
        except Exception as e:  # keep going without our numbers
            print("# could not read", a.ours, e)
    dev = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = False
    Bsz, E, N = 8, 1536, 16
    print(f"# torch {torch.__version__}, device {torch.cuda.get_device_name(0)}; B={Bsz} E={E} N={N} fp32")
    print(f"{'impl':<18} {'L':>5} {'fwd_us':>11} {'fwd+bwd_us':>11} {'ours_fwd':>9} {'ours_bwd':>9} {'x_fwd':>7} {'x_f+b':>7} {'err':>8}")
    compiled = None
    if not a.no_compile:
        try:
            compiled = torch.compile(scan_chunked, dynamic=False)
        except Exception as e:
            print("# torch.compile unavailable:", e)
    g = torch.Generator(device="cpu").manual_seed(0)
    for L in [int(x) for x in a.lens.split(",")]:
        mk = lambda *s, lo=-1.0, hi=1.0: (torch.rand(*s, generator=g) * (hi - lo) + lo).to(dev)
        u, delta, z = mk(Bsz, L, E), mk(Bsz, L, E), mk(Bsz, L, E, lo=-2, hi=2)
        Bm, Cm = mk(Bsz, L, N), mk(Bsz, L, N)
        A = -torch.arange(1, N + 1, device=dev, dtype=torch.float32).repeat(E, 1)
        D, bias = mk(E, lo=0.5, hi=1.5), torch.full((E,), -4.0, device=dev)
        dout = mk(Bsz, L, E)
        ref = None
        impls = [("eager_loop", scan_eager), ("chunked_eager", scan_chunked)]
        if compiled is not None:
            impls.append(("chunked_compile", compiled))
        for name, fn in impls:
            if time.time() - t_start > a.budget:
                print(f"# budget of {a.budget:.0f} s spent: skipping {name} at L={L}")
                continue
            reps = 3 if name == "eager_loop" else 10
            try:
                with torch.no_grad():
                    y = fn(u, delta, A, Bm, Cm, D, z, bias)
                    if ref is None:
                        ref = y
                    err = ((y - ref).abs().max() / ref.abs().max()).item()
                    tf = timeit(lambda: fn(u, delta, A, Bm, Cm, D, z, bias), reps)
                tb = float("nan")
                if not (name == "eager_loop" and L > 2048):
                    ins = [t.detach().requires_grad_(True) for t in (u, delta, Bm, Cm, z)]

                    def fb():
                        y = fn(ins[0], ins[1], A, ins[2], ins[3], D, ins[4], bias)
                        y.backward(dout)
                    tb = timeit(fb, reps)
            except torch.cuda.OutOfMemoryError:
                print(f"{name:<18} {L:>5}  out of memory")
                torch.cuda.empty_cache()
                continue
            of, ob = ours.get((L, "fwd")), ours.get((L, "bwd"))
            sf = f"{tf / of:7.1f}" if of else "      -"
            sb = f"{tb / (of + ob):7.1f}" if of and ob and tb == tb else "      -"
            print(f"{name:<18} {L:>5} {tf:11.1f} {tb:11.1f} {of or float('nan'):9.1f} {ob or float('nan'):9.1f} {sf} {sb} {err:8.1e}")
            sys.stdout.flush()
            torch.cuda.empty_cache()
    print("# x_fwd = torch forward time / ours; x_f+b = torch forward+backward / (our fwd + our bwd)")


if __name__ == "__main__":
    main()
