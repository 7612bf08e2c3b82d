#!/usr/bin/env python3
"""vision_torch.py — PyTorch twin of the backbone training step that
`mambakit bench cuda --train-only` times (benchmark harness only); with --vision,
of the shipped vision classifier's whole training step (its 'vision' rows).

Same model as core/mamba.c: pre-norm residual layers, RMSNorm, in_proj to
(x, z), per direction (forward + reverse order) a causal depthwise conv, SiLU,
x_proj -> (dt_in, B, C), dt_proj, the selective scan with softplus(dt + bias),
D skip and silu(z) gate, mean merge, out_proj; final RMSNorm. MSE loss to a
fixed target, AdamW. Default shape = Vim-tiny width (d_model 192, 12 layers,
197 tokens, batch 32). Scans: `loop` (Python loop over tokens, PyTorch eager)
and `chunked` (chunk-parallel cumsum formulation, eager and torch.compile).

usage: python3 vision_torch.py [--ours FILE] [--batch 32] [--len 197] [--layers 12] [--steps 5]
  --ours: JSON of `mambakit bench cuda --train-only --json` to print the speed-up.
"""
import argparse
import json
import math
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    print("SKIP vision_torch: skipped: PyTorch is not installed")
    sys.exit(0)
from scan_torch import chunk_states  # beside this file (sys.path[0] is its directory)


def scan_loop(u, dt, A, Bm, Cm):
    Bsz, L, E = u.shape
    h = u.new_zeros(Bsz, E, A.shape[1])
    ys = []
    for t in range(L):
        h = torch.exp(dt[:, t, :, None] * A) * h + (dt[:, t, :, None] * u[:, t, :, None]) * Bm[:, t, None, :]
        ys.append((h * Cm[:, t, None, :]).sum(-1))
    return torch.stack(ys, 1)


def scan_chunked(u, dt, A, Bm, Cm, T=32):
    Bsz, L, E = u.shape
    N = A.shape[1]
    pad = (-L) % T
    if pad:
        u, dt = F.pad(u, (0, 0, 0, pad)), F.pad(dt, (0, 0, 0, pad))
        Bm, Cm = F.pad(Bm, (0, 0, 0, pad)), F.pad(Cm, (0, 0, 0, pad))
    Lp = L + pad
    nc = Lp // T
    cum = (dt[..., None] * A).view(Bsz, nc, T, E, N).cumsum(2)
    dBu = ((dt * u)[..., None] * Bm[:, :, None, :]).view(Bsz, nc, T, E, N)
    hl = torch.exp(cum) * torch.cumsum(dBu * torch.exp(-cum), 2)
    hout = chunk_states(torch.exp(cum[:, :, -1]), hl[:, :, -1])  # scan_torch.py's log-depth scan
    h = hl + torch.exp(cum) * torch.cat([torch.zeros_like(hout[:, :1]), hout[:, :-1]], 1)[:, :, None]
    return (h.view(Bsz, Lp, E, N) * Cm[:, :, None, :]).sum(-1)[:, :L]


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.w, self.eps = nn.Parameter(torch.ones(d)), eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.w


class Dir(nn.Module):
    def __init__(self, E, N, R, K):
        super().__init__()
        self.conv = nn.Conv1d(E, E, K, groups=E, padding=K - 1)
        self.x_proj = nn.Linear(E, R + 2 * N, bias=False)
        self.dt_proj = nn.Linear(R, E)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, N + 1, dtype=torch.float32)).repeat(E, 1))
        self.D = nn.Parameter(torch.ones(E))
        self.R, self.N = R, N
        # mamba_ssm / core/mamba.c init: dt_proj.weight U(+-R^-0.5), dt bias = softplus^-1(dt),
        # dt = exp(U(log 1e-3, log 1e-1)) (without it dt ~ 0.7 and the chunked scan's exp(-cum) overflows)
        with torch.no_grad():
            nn.init.uniform_(self.dt_proj.weight, -R ** -0.5, R ** -0.5)
            dt = torch.exp(torch.rand(E) * (math.log(1e-1) - math.log(1e-3)) + math.log(1e-3)).clamp(min=1e-4)
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))

    def forward(self, x, z, scan):
        L = x.shape[1]
        xc = F.silu(self.conv(x.transpose(1, 2))[..., :L].transpose(1, 2))
        dtin, Bm, Cm = self.x_proj(xc).split([self.R, self.N, self.N], -1)
        dt = F.softplus(self.dt_proj(dtin))
        y = scan(xc, dt, -torch.exp(self.A_log), Bm, Cm) + self.D * xc
        return y * F.silu(z)


class Layer(nn.Module):
    def __init__(self, D, N=16, K=4, G=2):
        super().__init__()
        E, R = 2 * D, math.ceil(D / 16)
        self.norm = RMSNorm(D)
        self.in_proj = nn.Linear(D, 2 * E, bias=False)
        self.dirs = nn.ModuleList([Dir(E, N, R, K) for _ in range(G)])
        self.out_proj = nn.Linear(E, D, bias=False)

    def forward(self, h, scan):
        x, z = self.in_proj(self.norm(h)).chunk(2, -1)
        y = 0
        for g, d in enumerate(self.dirs):
            if g % 2:  # reverse order, then back
                y = y + d(x.flip(1), z.flip(1), scan).flip(1)
            else:
                y = y + d(x, z, scan)
        return h + self.out_proj(y / len(self.dirs))


class Backbone(nn.Module):
    def __init__(self, D, NL, G):
        super().__init__()
        self.layers = nn.ModuleList([Layer(D, G=G) for _ in range(NL)])
        self.norm_f = RMSNorm(D)
        with torch.no_grad():  # GPT-2 style residual rescale, as core/mamba.c
            for l in self.layers:
                l.out_proj.weight.mul_(1 / math.sqrt(NL))

    def forward(self, x, scan):
        for l in self.layers:
            x = l(x, scan)
        return self.norm_f(x)


class Classifier(nn.Module):
    """The shipped vision model's shape (docs/VISION.md): conv stem 1 -> 32 (4x4, stride 2,
    pad 1) + GELU, patch conv 32 -> D (4x4, stride 2, pad 1) = 7x7 tokens, the class token in
    the middle of the sequence, learned positional embedding, the backbone (forward + reverse
    scans), linear head on the class token."""

    def __init__(self, D=80, NL=6, G=2, stem=32, classes=10):
        super().__init__()
        self.stem = nn.Conv2d(1, stem, 4, 2, 1)
        self.patch = nn.Conv2d(stem, D, 4, 2, 1)
        self.pos = nn.Parameter(torch.randn(1, 50, D) * 0.02)
        self.cls = nn.Parameter(torch.randn(1, 1, D) * 0.02)
        self.backbone = Backbone(D, NL, G)
        self.head = nn.Linear(D, classes)

    def forward(self, img, scan):
        x = self.patch(F.gelu(self.stem(img))).flatten(2).transpose(1, 2)  # (B, 49, D)
        h = x.shape[1] // 2
        x = torch.cat([x[:, :h], self.cls.expand(x.shape[0], -1, -1), x[:, h:]], 1) + self.pos
        return self.head(self.backbone(x, scan)[:, h])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--len", type=int, default=197)
    ap.add_argument("--d-model", type=int, default=192)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--dirs", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--vision", action="store_true",
                    help="the shipped vision classifier's shape instead (28x28 grey, stem, 6 layers of width 80, "
                         "batch 128, label-smoothed cross-entropy); compares with the 'vision' rows of --ours")
    a = ap.parse_args()
    if a.vision:
        a.batch, a.len, a.d_model, a.layers = (a.batch if a.batch != 32 else 128), 50, 80, 6
    if not torch.cuda.is_available():
        print("SKIP vision_torch: skipped: no CUDA device")
        return
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = torch.device("cuda")
    ours = {}
    if a.ours:
        try:
            ours = json.load(open(a.ours)).get("vision" if a.vision else "train", {})
        except Exception as e:
            print("# could not read", a.ours, e)
    print(f"# torch {torch.__version__}, {torch.cuda.get_device_name(0)}; d_model {a.d_model}, {a.layers} layers, "
          f"{a.dirs} dirs, batch {a.batch} x {a.len} tokens, fp32")
    if a.vision:
        x = torch.rand(a.batch, 1, 28, 28, device=dev) * 3 - 1
        tgt = torch.randint(0, 10, (a.batch,), device=dev)
        lossf = lambda out, t: F.cross_entropy(out, t, label_smoothing=0.1)
        make = lambda: Classifier(a.d_model, a.layers, a.dirs)
    else:
        x = torch.rand(a.batch, a.len, a.d_model, device=dev) * 2 - 1
        tgt = 0.5 * torch.sin(3 * x)
        lossf = F.mse_loss
        make = lambda: Backbone(a.d_model, a.layers, a.dirs)
    print(f"{'impl':<22} {'ms/step':>9} {'samples/s':>10} {'ours_resident':>14} {'speed-up':>9}")
    impls = [("eager_loop_scan", scan_loop, False), ("eager_chunked_scan", scan_chunked, False)]
    if not a.no_compile:
        impls.append(("compiled_chunked_scan", scan_chunked, True))
    for name, scan, comp in impls:
        torch.manual_seed(0)
        model = make().to(dev)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)

        def step():
            opt.zero_grad(set_to_none=True)
            loss = lossf(model(x, scan), tgt)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            return loss

        fn = step
        try:
            if comp:
                fwd = torch.compile(model)
                def fn():
                    opt.zero_grad(set_to_none=True)
                    loss = lossf(fwd(x, scan), tgt)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                    opt.step()
                    return loss
            fn()
            torch.cuda.synchronize()
            t = time.time()
            for _ in range(a.steps):
                loss = fn()
            torch.cuda.synchronize()
            dt = (time.time() - t) / a.steps
        except Exception as e:
            print(f"{name:<22} failed: {type(e).__name__}: {str(e)[:120]}")
            continue
        o = ours.get("gpu_resident_ms")
        su = f"{dt * 1e3 / o:9.1f}" if o else "        -"
        print(f"{name:<22} {dt * 1e3:9.1f} {a.batch / dt:10.1f} {o or float('nan'):14.2f} {su}   loss {loss.item():.4f}")
        sys.stdout.flush()
        del model, opt
        torch.cuda.empty_cache()
    print("# speed-up = torch ms/step / our resident GPU ms/step (same shapes, fp32, same GPU)")


if __name__ == "__main__":
    main()
