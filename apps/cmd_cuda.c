/* cmd_cuda.c — `mambakit bench cuda`: the CUDA selective scan at the Mamba
 * paper's shape (time, GB/s, percent of the DRAM floor), backbone training
 * throughput on the GPU against the CPU, and the shipped vision classifier's
 * training step (CPU, backbone-only GPU, whole step on the GPU). Without a GPU
 * it says so and measures the CPU side only. Figures: docs/CUDA.md. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/cli.h"
#include "core/backend.h"
#include "core/mamba.h"
#include "core/ops.h"
#include "core/optim.h"
#include "core/params.h"
#include "core/util.h"
#include "vision/model.h"

static void usage(void) {
    printf("usage: mambakit bench cuda [options]\n"
           "  CUDA selective scan (B=8 E=1536 N=16, L = 512, 2048, 8192) and backbone training\n"
           "  throughput, GPU vs CPU (forward + MSE + backward + AdamW per step).\n"
           "options:\n"
           "  --scan-only          only the scan benchmark\n"
           "  --train-only         only the training benchmark\n"
           "  --reps N             timed repetitions per scan measurement (default 10)\n"
           "  --batch N            training batch (default 32)\n"
           "  --len N              training tokens per sample (default 197: 14x14 patches + cls)\n"
           "  --d-model N          backbone width (default 192, Vim-tiny)\n"
           "  --layers N           backbone depth (default 12)\n"
           "  --dirs N             scan directions per layer (default 2: forward + reverse)\n"
           "  --steps N            timed GPU training steps (default 20)\n"
           "  --cpu-steps N        timed CPU training steps, 0 skips the CPU (default 2)\n"
           "  --vision-batch N     batch of the vision classifier rows (default 128; 0 skips them)\n"
           "  --json               one JSON object instead of tables\n");
}

typedef struct {
    mk_params p;
    mamba_backbone m;
    mamba_acts a;
} bb_model;

static int model_make(bb_model *md, int D, int NL, int G) {
    mamba_cfg c;
    mamba_cfg_default(&c, D, NL);
    c.n_dir = G;
    mk_params_init(&md->p);
    if (mamba_backbone_declare(&md->m, &md->p, "bb.", &c)) return -1;
    mk_params_alloc(&md->p);
    mk_rng r;
    mk_rng_seed(&r, 1);
    mamba_backbone_init(&md->m, &r);
    mamba_acts_init(&md->a);
    return 0;
}
static void model_free(bb_model *md) {
    mamba_backbone_free(&md->m);
    mamba_acts_free(&md->a);
    mk_params_free(&md->p);
}

/* seconds per training step: mode 0 CPU, 1 GPU ops behind the CPU API, 2 GPU resident */
static double time_steps(int mode, int steps, int B, int L, int D, int NL, int G, float *loss_out) {
    bb_model md;
    if (model_make(&md, D, NL, G)) return -1;
    size_t TD = (size_t)B * L * D;
    float *x = mk_malloc(sizeof(float) * TD), *tgt = mk_malloc(sizeof(float) * TD), *out = mk_malloc(sizeof(float) * TD),
          *dout = mk_malloc(sizeof(float) * TD);
    mk_rng r;
    mk_rng_seed(&r, 2);
    for (size_t i = 0; i < TD; i++) x[i] = 2.f * mk_rng_uniform(&r) - 1.f, tgt[i] = 0.5f * sinf(3.f * x[i]);
    int *o0 = mk_malloc(sizeof(int) * L), *o1 = mk_malloc(sizeof(int) * L);
    mk_order_identity(o0, L);
    mk_order_reverse(o1, L);
    const int *ord[MK_MAX_DIR];
    for (int g = 0; g < G; g++) ord[g] = g % 2 ? o1 : o0;
    mk_adamw_cfg oc = mk_adamw_defaults(1e-3f, 1000);
    double t = -1;
    if (mode > 0 && mamba_backbone_set_device(&md.m, MK_DEV_CUDA)) goto done;
    float loss = NAN;
    for (int s = -1; s < steps; s++) { /* step -1 warms up */
        if (s == 0) t = mk_time();
        if (mode == 2) {
            loss = mamba_backbone_cuda_train_step(&md.m, &md.a, x, tgt, B, L, ord, &oc, &r);
            if (isnan(loss)) {
                t = -1;
                goto done;
            }
        } else {
            mk_params_zero_grad(&md.p);
            mamba_backbone_forward(&md.m, &md.a, out, x, B, L, ord, 1, &r);
            loss = mse_forward_backward(dout, out, tgt, TD, 1.f);
            mamba_backbone_backward(&md.m, &md.a, NULL, dout);
            mk_adamw_step(&md.p, &oc);
        }
        if (mode == 0 && s == -1 && steps > 0) fprintf(stderr, "mambakit: bench cuda: CPU warm-up step done\n");
    }
    t = (mk_time() - t) / (steps > 0 ? steps : 1);
    if (loss_out) *loss_out = loss;
done:
    free(x), free(tgt), free(out), free(dout), free(o0), free(o1);
    model_free(&md);
    return t;
}

/* The shipped vision model's shape (docs/VISION.md): 28x28 grey, conv stem of 32 channels,
 * 4x4 windows at stride 2 -> 49 tokens + the class token, width 80, 6 layers, bidir. Seconds
 * per training step (label-smoothed cross-entropy, clip 1, AdamW) on random images: mode 0 the
 * CPU, 1 the backbone on the GPU with the rest on the host, 2 the whole step on the GPU. */
static double time_vision(int mode, int steps, int B, float *loss_out) {
    vision_cfg vc;
    memset(&vc, 0, sizeof vc);
    vc.img_h = vc.img_w = 28, vc.img_c = 1, vc.stem = 32, vc.patch = 2, vc.kernel = 4, vc.n_class = 10;
    vc.order = VISION_ORDER_BIDIR, vc.head = VISION_HEAD_CLS, vc.mean[0] = 0.286f, vc.std[0] = 0.353f;
    mamba_cfg_default(&vc.mc, 80, 6);
    vc.mc.drop_path = 0.1f;
    vision_model m;
    if (vision_model_create(&m, &vc)) return -1;
    mk_rng r;
    mk_rng_seed(&r, 3);
    vision_model_init(&m, &r);
    mk_params_alloc_optim(&m.p);
    const size_t HW = 28 * 28;
    float *img = mk_malloc(sizeof(float) * B * HW), *dlog = mk_malloc(sizeof(float) * B * 10);
    int *y = mk_malloc(sizeof(int) * B);
    for (size_t i = 0; i < B * HW; i++) img[i] = 3.f * mk_rng_uniform(&r) - 1.f;
    for (int b = 0; b < B; b++) y[b] = mk_rng_int(&r, 10);
    vision_acts a;
    vision_acts_init(&a);
    mk_cls_frontend fe;
    mk_adamw_cfg oc = mk_adamw_defaults(1e-3f, 1000);
    oc.clip = 1.f;
    double t = -1;
    float loss = NAN;
    mamba_backbone *bb = &m.bb;
    if (mode > 0 && mamba_backbones_use_device(&bb, 1, MK_DEV_CUDA) != MK_DEV_CUDA) goto done;
    if (mode == 2 && vision_model_frontend(&m, 0.1f, &fe)) goto done;
    for (int s = -1; s < steps; s++) { /* step -1 warms up */
        if (s == 0) t = mk_time();
        int hit;
        if (mode == 2) {
            if (mk_cuda_cls_train_step(&m.bb, &a.ma, &fe, img, y, NULL, B, m.orders, &oc, &r, &loss, &hit)) {
                t = -1;
                goto done;
            }
        } else {
            mk_params_zero_grad(&m.p);
            vision_forward(&m, &a, img, B, 1, &r);
            loss = vision_xent_smooth(dlog, &hit, a.logits, y, B, 10, 0.1f);
            vision_backward(&m, &a, dlog);
            mk_adamw_step(&m.p, &oc);
        }
    }
    t = (mk_time() - t) / (steps > 0 ? steps : 1);
    if (loss_out) *loss_out = loss;
done:
    free(img), free(dlog), free(y);
    vision_acts_free(&a);
    vision_model_free(&m);
    return t;
}

int cmd_bench_cuda(int argc, char **argv) {
    int scan = 1, train = 1, json = 0;
    long reps = 10, B = 32, L = 197, D = 192, NL = 12, G = 2, steps = 20, cpu_steps = 2, VB = 128;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        long *dst = NULL, lo = 1, hi = 1 << 20;
        if (cli_is_help(a)) {
            usage();
            return 0;
        } else if (!strcmp(a, "--scan-only")) train = 0;
        else if (!strcmp(a, "--train-only")) scan = 0;
        else if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--reps")) dst = &reps, hi = 64;
        else if (!strcmp(a, "--batch")) dst = &B, hi = 4096;
        else if (!strcmp(a, "--len")) dst = &L, hi = 1 << 16;
        else if (!strcmp(a, "--d-model")) dst = &D, hi = 8192;
        else if (!strcmp(a, "--layers")) dst = &NL, hi = 256;
        else if (!strcmp(a, "--dirs")) dst = &G, hi = MK_MAX_DIR;
        else if (!strcmp(a, "--steps")) dst = &steps, hi = 100000;
        else if (!strcmp(a, "--cpu-steps")) dst = &cpu_steps, lo = 0, hi = 100000;
        else if (!strcmp(a, "--vision-batch")) dst = &VB, lo = 0, hi = 4096;
        else {
            fprintf(stderr, "mambakit: bench cuda: unknown option '%s' (see --help)\n", a);
            return 2;
        }
        if (dst) {
            if (i + 1 >= argc) {
                fprintf(stderr, "mambakit: bench cuda: %s needs a value\n", a);
                return 2;
            }
            if (cli_int(a, argv[++i], lo, hi, dst)) return 2;
        }
    }
    int gpu = mk_cuda_available();
    if (!gpu) fprintf(stderr, "mambakit: bench cuda: no CUDA device (%s); measuring the CPU only\n", mk_cuda_device_name());
    if (json) printf("{\"device\": \"%s\", \"gpu\": %s", gpu ? mk_cuda_device_name() : "cpu", gpu ? "true" : "false");
    else printf("device: %s\n", gpu ? mk_cuda_device_name() : "CPU only (no CUDA device)");

    if (scan && gpu) {
        const int SB = 8, SE = 1536, SN = 16, Ls[3] = {512, 2048, 8192};
        if (json) printf(", \"scan\": [");
        else
            printf("\nselective scan, B=%d E=%d N=%d (CUDA events, L2 flushed, median of %ld; fwd/bwd fp32, "
                   "fwd16/bwd16 bf16 inputs with fp32 state)\n"
                   "%-5s %-5s %10s %9s %10s %8s\n",
                   SB, SE, SN, reps, "L", "pass", "time_us", "GB/s", "floor_us", "%floor");
        for (int li = 0; li < 3; li++) {
            double res[6];
            int Lx = Ls[li];
            if (mk_cuda_bench_scan(SB, Lx, SE, SN, (int)reps, res)) return cli_fail();
            double BLE = (double)SB * Lx * SE, BLN = (double)SB * Lx * SN, EN = (double)SE * SN;
            /* bytes that must move (fp32): inputs read once, outputs written once */
            double fb = 4.0 * (4 * BLE + 2 * BLN + 2 * EN + 2 * SE), bb = 4.0 * (7 * BLE + 4 * BLN + 2 * EN + 4 * SE);
            /* bf16: the activations (and bwd's incoming dout) at 2 bytes; parameters and gradients fp32 */
            double fb16 = 2.0 * (4 * BLE + 2 * BLN) + 4.0 * (2 * EN + 2 * SE),
                   bb16 = 2.0 * (4 * BLE + 2 * BLN) + 4.0 * (3 * BLE + 2 * BLN + 2 * EN + 4 * SE);
            /* fwd_reg: the register-only forward kernel, the staged one's predecessor */
            double tb[5] = {res[0], res[1], res[3], res[4], res[5]}, by[5] = {fb, bb, fb16, bb16, fb};
            static const char *const pass[5] = {"fwd", "bwd", "fwd16", "bwd16", "fwd_reg"};
            for (int k = 0; k < 5; k++) {
                double floor_us = by[k] / res[2] * 1e6;
                if (json)
                    printf("%s{\"L\": %d, \"pass\": \"%s\", \"time_us\": %.1f, \"GBps\": %.0f, \"floor_us\": %.1f, "
                           "\"pct_floor\": %.1f}",
                           li || k ? ", " : "", Lx, pass[k], tb[k], by[k] / tb[k] / 1e3, floor_us,
                           100 * floor_us / tb[k]);
                else
                    printf("%-5d %-5s %10.1f %9.0f %10.1f %7.1f%%\n", Lx, pass[k], tb[k], by[k] / tb[k] / 1e3,
                           floor_us, 100 * floor_us / tb[k]);
            }
            if (li == 2 && !json) printf("measured copy bandwidth %.0f GB/s (read + write)\n", res[2] / 1e9);
        }
        if (json) printf("]");
    }
    if (train) {
        if (!json)
            printf("\nbackbone training step (forward + MSE + backward + AdamW), d_model %ld, %ld layers, %ld dirs, "
                   "batch %ld x %ld tokens\n%-34s %10s %10s %10s\n",
                   D, NL, G, B, L, "path", "ms/step", "samples/s", "loss");
        const char *names[3] = {"cpu", "gpu (CPU API, per-call copies)", "gpu resident step"};
        const char *keys[3] = {"cpu", "gpu_dispatch", "gpu_resident"};
        if (json) printf(", \"train\": {\"B\": %ld, \"L\": %ld, \"d_model\": %ld, \"layers\": %ld, \"dirs\": %ld", B, L, D, NL, G);
        for (int mode = 0; mode < 3; mode++) {
            if (mode > 0 && !gpu) break;
            int n = mode == 0 ? (int)cpu_steps : (int)steps;
            if (n == 0) continue;
            float loss = NAN;
            double t = time_steps(mode, n, (int)B, (int)L, (int)D, (int)NL, (int)G, &loss);
            if (t < 0) return cli_fail();
            if (json) printf(", \"%s_ms\": %.2f, \"%s_samples_s\": %.1f", keys[mode], t * 1e3, keys[mode], B / t);
            else printf("%-34s %10.2f %10.1f %10.4f\n", names[mode], t * 1e3, B / t, loss);
        }
        if (json) printf("}");
        if (VB > 0) {
            if (!json)
                printf("\nvision classifier training step (the shipped model's shape: 28x28, stem 32, 49 + 1 tokens, "
                       "d_model 80, 6 layers, bidir), batch %ld\n%-34s %10s %10s %10s\n",
                       VB, "path", "ms/step", "samples/s", "loss");
            const char *vn[3] = {"cpu", "gpu backbone, rest on the host", "gpu whole step (resident)"};
            const char *vk[3] = {"cpu", "gpu_backbone", "gpu_resident"};
            if (json) printf(", \"vision\": {\"B\": %ld", VB);
            for (int mode = 0; mode < 3; mode++) {
                if (mode > 0 && !gpu) break;
                int n = mode == 0 ? (int)cpu_steps : (int)steps;
                if (n == 0) continue;
                float loss = NAN;
                double t = time_vision(mode, n, (int)VB, &loss);
                if (t < 0) return cli_fail();
                if (json) printf(", \"%s_ms\": %.2f, \"%s_samples_s\": %.1f", vk[mode], t * 1e3, vk[mode], VB / t);
                else printf("%-34s %10.2f %10.1f %10.4f\n", vn[mode], t * 1e3, VB / t, loss);
            }
            if (json) printf("}");
        }
    }
    if (json) printf("}\n");
    return 0;
}
