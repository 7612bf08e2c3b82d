/* test_ckpt.c — checkpoint files (core/ckpt.h): a save/load round trip of
 * values, config, task, optimiser moments and step; then damaged files, each
 * of which must be rejected with a one-line message that starts with the file
 * name (truncations at every structural boundary, bad magic, wrong version,
 * unknown flags, corrupted counts, tensor table entries with huge dims, wrong
 * numel or offsets, unterminated strings, trailing bytes, wrong task, a model
 * declared with another shape or name, non-finite values), and a random
 * byte-flip fuzz of the header and tables (run under ASan: no crash, no
 * out-of-bounds read). Files go to a fresh directory under $TMPDIR or /tmp. */
#include <dirent.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "core/ckpt.h"
#include "core/mamba.h"
#include "core/params.h"
#include "tests/ref.h"
#include "tests/test.h"

static mk_rng rng;
static char dir[512];

/* The model: three tensors, one of them 3-d. */
typedef struct {
    const char *name;
    int decay, ndim, s[3];
} decl;
static const decl base_decl[3] = {{"enc.weight", 1, 2, {3, 4, 0}}, {"enc.bias", 0, 1, {4, 0, 0}}, {"head.w", 1, 3, {2, 3, 5}}};

static void declare(mk_params *p, const decl *d, int n) {
    mk_params_init(p);
    for (int i = 0; i < n; i++) {
        if (d[i].ndim == 1) mk_params_add(p, d[i].name, d[i].decay, 1, d[i].s[0]);
        else if (d[i].ndim == 2) mk_params_add(p, d[i].name, d[i].decay, 2, d[i].s[0], d[i].s[1]);
        else mk_params_add(p, d[i].name, d[i].decay, 3, d[i].s[0], d[i].s[1], d[i].s[2]);
    }
    mk_params_alloc(p);
}

#define HDR 64
#define CFGREC 128
#define TENREC 100
#define NCFG 3
#define TAB (HDR + NCFG * CFGREC)
#define DATA (TAB + 3 * TENREC)

static void put32(unsigned char *b, uint32_t v) {
    for (int i = 0; i < 4; i++) b[i] = (unsigned char)(v >> (8 * i));
}
static void put64(unsigned char *b, uint64_t v) {
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
}
static uint64_t get64(const unsigned char *b) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)b[i] << (8 * i);
    return v;
}

static unsigned char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    MK_ASSERT(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n + 64);
    MK_ASSERT(fread(b, 1, *n, f) == *n);
    fclose(f);
    return b;
}
static void write_all(const char *path, const unsigned char *b, size_t n) {
    FILE *f = fopen(path, "wb");
    MK_ASSERT(f);
    if (n) MK_ASSERT(fwrite(b, 1, n, f) == n);
    fclose(f);
}

/* Loading `path` into a table declared as d must fail with a message that
 * starts with the path. Also checks mk_ckpt_read_config when header_level. */
static int expect_reject(const char *what, const char *path, const char *task, const decl *d, int nd, int want_optim) {
    mk_params p;
    declare(&p, d, nd);
    mk_config cfg;
    mk_error("%s", "");
    int rc = mk_ckpt_load(path, task, &cfg, &p, want_optim);
    const char *msg = mk_last_error();
    int ok = rc != 0 && !strncmp(msg, path, strlen(path)) && msg[strlen(path)] == ':' && !strchr(msg, '\n');
    char nm[128];
    snprintf(nm, sizeof nm, "ckpt_reject_%s", what);
    test_report(ok, nm, "rc %d, message \"%s\"", rc, msg);
    mk_params_free(&p);
    return ok;
}

/* Patch a copy of the good file and expect rejection. */
static void reject_patched(const char *what, const unsigned char *good, size_t n, size_t off, const void *bytes, size_t nb,
                           const char *task) {
    char path[600];
    snprintf(path, sizeof path, "%s/bad_%s.mkm", dir, what);
    unsigned char *b = malloc(n + 1);
    memcpy(b, good, n);
    memcpy(b + off, bytes, nb);
    write_all(path, b, n);
    expect_reject(what, path, task, base_decl, 3, 0);
    unlink(path);
    free(b);
}
static void reject_u32(const char *what, const unsigned char *good, size_t n, size_t off, uint32_t v) {
    unsigned char b[4];
    put32(b, v);
    reject_patched(what, good, n, off, b, 4, "copy");
}
static void reject_u64(const char *what, const unsigned char *good, size_t n, size_t off, uint64_t v) {
    unsigned char b[8];
    put64(b, v);
    reject_patched(what, good, n, off, b, 8, "copy");
}

static int count_files(const char *d) {
    DIR *dp = opendir(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dp)))
        if (e->d_name[0] != '.') n++;
    closedir(dp);
    return n;
}

/* A real model: Mamba backbone (prefix "bb.") + a head tensor in one table,
 * saved with its config, rebuilt from the config alone, loaded: the forward
 * output is bit-identical. */
/* mamba_cfg_from_config refuses what would size a bad model, naming the key; absent optional
 * keys keep the defaults (files from before they were stored). */
static void test_mamba_cfg_config(void) {
    mamba_cfg c, r;
    mamba_cfg_default(&c, 16, 2);
    static const struct { const char *key, *val; } bad[] = {
        {"d_model", "0"}, {"d_model", "100000000"}, {"n_layer", "-1"}, {"d_state", "100000"}, {"d_conv", "9"},
        {"expand", "0"},  {"dt_rank", "x"},         {"n_dir", "99"},   {"norm", "batchnorm"}, {"drop_path", "2"},
        {"shuffle_p", "nan"}};
    int refused = 0;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mk_config k;
        mk_config_init(&k, "t");
        mamba_cfg_to_config(&c, &k);
        mk_config_set(&k, bad[i].key, "%s", bad[i].val);
        refused += mamba_cfg_from_config(&r, &k) == -1 && strstr(mk_last_error(), bad[i].key) != NULL;
    }
    mk_config old;
    mk_config_init(&old, "t");
    static const struct { const char *key; long v; } req[] = {{"d_model", 16}, {"n_layer", 2}, {"d_state", 16},
                                                              {"d_conv", 4},   {"expand", 2},  {"dt_rank", 1}};
    for (int i = 0; i < 6; i++) mk_config_set_int(&old, req[i].key, req[i].v);
    int ok_old = mamba_cfg_from_config(&r, &old) == 0 && !memcmp(&r, &c, sizeof c);
    mk_config missing;
    mk_config_init(&missing, "t");
    mk_config_set(&missing, "d_model", "16");
    int miss = mamba_cfg_from_config(&r, &missing) == -1 && strstr(mk_last_error(), "n_layer") != NULL;
    test_report(refused == (int)(sizeof bad / sizeof bad[0]) && ok_old && miss, "ckpt_mamba_cfg_checks",
                "%d/%zu bad keys refused by name, old file without optional keys %s, missing key %s", refused,
                sizeof bad / sizeof bad[0], ok_old ? "reads as default" : "WRONG", miss ? "named" : "NOT named");
}

static void test_model_roundtrip(void) {
    char path[600];
    snprintf(path, sizeof path, "%s/mamba.mkm", dir);
    mamba_cfg c;
    mamba_cfg_default(&c, 8, 2);
    c.d_state = 4, c.n_dir = 2, c.norm = MK_NORM_LN;
    c.d_conv = 3, c.dt_rank = 2, c.drop_path = 0.25f, c.shuffle_p = 0.5f; /* every stored key off its default */
    mk_params p;
    mamba_backbone m;
    mk_params_init(&p);
    mamba_backbone_declare(&m, &p, "bb.", &c);
    int head = mk_params_add(&p, "head.weight", 1, 2, 3, 8);
    mk_params_alloc(&p);
    mamba_backbone_init(&m, &rng);
    ref_fill(mk_param(&p, head), 24, 0, 1, &rng);
    mk_config cfg;
    mk_config_init(&cfg, "copy");
    mamba_cfg_to_config(&c, &cfg);
    int rc = mk_ckpt_save(path, &cfg, &p, 0);

    mk_config rd;
    mamba_cfg c2;
    rc |= mk_ckpt_read_config(path, "copy", &rd);
    rc |= mamba_cfg_from_config(&c2, &rd);
    rc |= memcmp(&c, &c2, sizeof c) != 0;
    mk_params q;
    mamba_backbone m2;
    mk_params_init(&q);
    mamba_backbone_declare(&m2, &q, "bb.", &c2);
    mk_params_add(&q, "head.weight", 1, 2, 3, 8);
    mk_params_alloc(&q);
    rc |= mk_ckpt_load(path, "copy", NULL, &q, 0);
    const int B = 2, L = 6;
    float x[2 * 6 * 8], o1[2 * 6 * 8], o2[2 * 6 * 8];
    ref_fill(x, sizeof x / sizeof x[0], 0, 1, &rng);
    int rev[6], *ords[2] = {NULL, rev};
    mk_order_reverse(rev, L);
    mamba_acts a1, a2;
    mamba_acts_init(&a1), mamba_acts_init(&a2);
    mamba_backbone_forward(&m, &a1, o1, x, B, L, (const int *const *)ords, 0, NULL);
    mamba_backbone_forward(&m2, &a2, o2, x, B, L, (const int *const *)ords, 0, NULL);
    test_report(rc == 0 && !memcmp(o1, o2, sizeof o1) && !memcmp(p.data, q.data, sizeof(float) * p.total),
                "ckpt_model_roundtrip", "backbone (%d tensors) + head rebuilt from the saved config: rc %d, forward bit-identical",
                p.n, rc);
    mamba_acts_free(&a1), mamba_acts_free(&a2);
    mamba_backbone_free(&m), mamba_backbone_free(&m2);
    mk_params_free(&p), mk_params_free(&q);
    unlink(path);
}

int main(void) {
    mk_rng_seed(&rng, 31337);
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/mk_test_ckpt_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        test_report(0, "ckpt_tmpdir", "cannot create %s", dir);
        return test_exit();
    }
    char path[600], path2[600];
    snprintf(path, sizeof path, "%s/model.mkm", dir);

    /* ---------------------------------------------------------- round trip */
    mk_params p;
    declare(&p, base_decl, 3);
    ref_fill(p.data, p.total, 0, 1, &rng);
    mk_params_alloc_optim(&p);
    ref_fill(p.m, p.total, 0, 0.1f, &rng);
    ref_fill_uniform(p.v, p.total, 1e-6f, 1e-2f, &rng);
    p.step = 123456789012L;
    mk_config cfg;
    mk_config_init(&cfg, "copy");
    mk_config_set_int(&cfg, "d_model", 8);
    mk_config_set_float(&cfg, "lr", 1e-3);
    mk_config_set(&cfg, "note", "%s", "a value with spaces");
    int rc = mk_ckpt_save(path, &cfg, &p, 1);
    test_report(rc == 0 && count_files(dir) == 1, "ckpt_save", "rc %d, %d file(s) in the directory (no temp left)", rc,
                count_files(dir));

    mk_params q;
    declare(&q, base_decl, 3);
    mk_config c2;
    rc = mk_ckpt_load(path, "copy", &c2, &q, 1);
    int same = rc == 0 && !memcmp(p.data, q.data, sizeof(float) * p.total) && q.m && q.v &&
               !memcmp(p.m, q.m, sizeof(float) * p.total) && !memcmp(p.v, q.v, sizeof(float) * p.total) &&
               q.step == p.step;
    test_report(same, "ckpt_roundtrip_values", "rc %d: values, AdamW m and v bit-identical, step %ld", rc, q.step);
    long dm = 0;
    double lr = 0;
    const char *note = mk_config_get(&c2, "note");
    int cok = rc == 0 && !strcmp(c2.task, "copy") && c2.n == 3 && !mk_config_get_int(&c2, "d_model", &dm) && dm == 8 &&
              !mk_config_get_float(&c2, "lr", &lr) && lr == 1e-3 && note && !strcmp(note, "a value with spaces");
    test_report(cok, "ckpt_roundtrip_config", "task '%s', %d fields, d_model %ld, lr %g, note '%s'", c2.task, c2.n, dm, lr,
                note ? note : "(none)");
    mk_config c3;
    rc = mk_ckpt_read_config(path, NULL, &c3);
    test_report(rc == 0 && c3.n == 3 && !strcmp(c3.task, "copy"), "ckpt_read_config", "header + config only: rc %d", rc);
    /* config lookups of missing / non-numeric keys fail with the key named */
    int e1 = mk_config_get_int(&c2, "missing", &dm), e1ok = e1 && strstr(mk_last_error(), "missing") != NULL;
    int e2 = mk_config_get_int(&c2, "note", &dm), e2ok = e2 && strstr(mk_last_error(), "note") != NULL;
    test_report(e1ok && e2ok, "ckpt_config_errors", "missing key and non-integer value rejected by name");
    mk_params_free(&q);

    /* values only, into a table without moments */
    declare(&q, base_decl, 3);
    rc = mk_ckpt_load(path, NULL, NULL, &q, 0);
    test_report(rc == 0 && !memcmp(p.data, q.data, sizeof(float) * p.total) && q.m == NULL, "ckpt_load_values_only",
                "rc %d, moments not allocated", rc);
    mk_params_free(&q);

    /* the table declared from the file itself (mambakit average): names, shapes, offsets and
     * values as saved, no moments; a truncated copy is refused before anything is declared
     * beyond the empty table */
    mk_params_init(&q);
    rc = mk_ckpt_load_table(path, "copy", &c3, &q);
    int tok = rc == 0 && q.n == 3 && q.total == p.total && q.m == NULL &&
              !memcmp(p.data, q.data, sizeof(float) * p.total) && c3.n == 3;
    for (int i = 0; tok && i < 3; i++) {
        tok = !strcmp(q.t[i].name, p.t[i].name) && q.t[i].ndim == p.t[i].ndim && q.t[i].offset == p.t[i].offset;
        for (int k = 0; tok && k < p.t[i].ndim; k++) tok = q.t[i].shape[k] == p.t[i].shape[k];
    }
    test_report(tok, "ckpt_load_table", "rc %d: %d tensors, %zu values, shapes and values as saved", rc, q.n, q.total);
    mk_params_free(&q);
    {
        size_t nb;
        unsigned char *b = read_all(path, &nb);
        snprintf(path2, sizeof path2, "%s/table_trunc.mkm", dir);
        write_all(path2, b, nb - 5);
        free(b);
        mk_params_init(&q);
        rc = mk_ckpt_load_table(path2, NULL, &c3, &q);
        test_report(rc != 0 && q.data == NULL && strstr(mk_last_error(), path2) == mk_last_error(), "ckpt_load_table_truncated",
                    "rc %d, \"%s\"", rc, mk_last_error());
        mk_params_free(&q);
        unlink(path2);
    }

    /* a file without optimiser state cannot resume */
    snprintf(path2, sizeof path2, "%s/noopt.mkm", dir);
    rc = mk_ckpt_save(path2, &cfg, &p, 0);
    size_t n2;
    unsigned char *b2 = read_all(path2, &n2);
    test_report(rc == 0 && n2 == DATA + 4 * p.total, "ckpt_save_no_optim", "%zu bytes (header %d + tables + %zu floats)", n2,
                DATA, p.total);
    free(b2);
    expect_reject("want_optim_but_none", path2, "copy", base_decl, 3, 1);
    unlink(path2);

    /* save into a directory that does not exist: error names the path */
    snprintf(path2, sizeof path2, "%s/no/such/dir/m.mkm", dir);
    rc = mk_ckpt_save(path2, &cfg, &p, 1);
    test_report(rc != 0 && strstr(mk_last_error(), path2) != NULL, "ckpt_save_unwritable", "rc %d, \"%s\"", rc,
                mk_last_error());

    /* ---------------------------------------------------------- damaged files */
    size_t n;
    unsigned char *good = read_all(path, &n);
    MK_ASSERT(n == DATA + 3 * 4 * p.total);

    const size_t cuts[] = {0, 7, 8, 63, 64, 100, TAB - 1, TAB, TAB + 50, DATA - 1, DATA, DATA + 10,
                           DATA + 4 * p.total, n - 4, n - 1};
    int tbad = 0;
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        snprintf(path2, sizeof path2, "%s/trunc_%zu.mkm", dir, cuts[i]);
        write_all(path2, good, cuts[i]);
        mk_params t;
        declare(&t, base_decl, 3);
        rc = mk_ckpt_load(path2, "copy", NULL, &t, 0);
        if (rc == 0 || strncmp(mk_last_error(), path2, strlen(path2))) tbad++;
        mk_config cc;
        if (mk_ckpt_read_config(path2, NULL, &cc) == 0 && cuts[i] < DATA) tbad++;
        mk_params_free(&t);
        unlink(path2);
    }
    test_report(tbad == 0, "ckpt_reject_truncated", "%zu truncation points (0 .. size-1 bytes, every section boundary): %d accepted",
                sizeof cuts / sizeof cuts[0], tbad);

    reject_patched("bad_magic", good, n, 0, "MAMBAKIX", 8, "copy");
    reject_u32("version_2", good, n, 8, 2);
    reject_u32("version_0", good, n, 8, 0);
    reject_u32("unknown_flags", good, n, 12, 6);
    reject_patched("task_unterminated", good, n, 16, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 32, NULL);
    reject_u32("config_count_huge", good, n, 48, 0xFFFFFFFFu);
    reject_u32("config_count_plus1", good, n, 48, NCFG + 1);
    reject_u32("tensor_count_0", good, n, 52, 0);
    reject_u32("tensor_count_huge", good, n, 52, 0xFFFFFFFFu);
    reject_u32("tensor_count_minus1", good, n, 52, 2);
    reject_patched("config_key_unterminated", good, n, HDR, "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk", 32, "copy");
    {
        unsigned char v[96];
        memset(v, 'v', sizeof v);
        reject_patched("config_value_unterminated", good, n, HDR + 32, v, sizeof v, "copy");
        unsigned char nmb[64];
        memset(nmb, 'A', sizeof nmb);
        reject_patched("tensor_name_unterminated", good, n, TAB, nmb, sizeof nmb, "copy");
    }
    /* tensor 0 record at TAB: ndim @64, shape @68, numel @84, offset @92 */
    reject_u32("tensor_ndim_0", good, n, TAB + 64, 0);
    reject_u32("tensor_ndim_9", good, n, TAB + 64, 9);
    reject_u32("tensor_dim_huge", good, n, TAB + 68, 0xFFFFFFFFu);
    reject_u32("tensor_dim_zero", good, n, TAB + 72, 0);
    {
        /* huge but self-consistent shape/numel: must not allocate or read past the end */
        unsigned char rec[24];
        put32(rec, 1u << 30), put32(rec + 4, 1u << 10), put32(rec + 8, 0), put32(rec + 12, 0);
        put64(rec + 16, (uint64_t)1 << 40);
        reject_patched("tensor_shape_numel_huge", good, n, TAB + 68, rec, 24, "copy");
    }
    reject_u64("tensor_numel_wrong", good, n, TAB + 84, 13);
    reject_u64("tensor_offset_wrong", good, n, TAB + TENREC + 92, get64(good + TAB + TENREC + 92) + 1);
    reject_u64("tensor_offset_huge", good, n, TAB + 2 * TENREC + 92, (uint64_t)1 << 62);
    reject_u64("tensor_numel_huge", good, n, TAB + 2 * TENREC + 84, UINT64_MAX);
    {
        unsigned char *b = malloc(n + 4);
        memcpy(b, good, n);
        memset(b + n, 0, 4);
        snprintf(path2, sizeof path2, "%s/trailing.mkm", dir);
        write_all(path2, b, n + 4);
        expect_reject("trailing_bytes", path2, "copy", base_decl, 3, 0);
        write_all(path2, b, n + 1);
        expect_reject("trailing_byte", path2, "copy", base_decl, 3, 0);
        unlink(path2);
        free(b);
    }
    expect_reject("wrong_task", path, "vision", base_decl, 3, 0);
    {
        decl d[3];
        memcpy(d, base_decl, sizeof d);
        d[0].s[0] = 4, d[0].s[1] = 3; /* same numel and total, transposed shape */
        expect_reject("shape_transposed", path, "copy", d, 3, 0);
        memcpy(d, base_decl, sizeof d);
        d[0].ndim = 1, d[0].s[0] = 12; /* same numel, other ndim */
        expect_reject("shape_other_ndim", path, "copy", d, 3, 0);
        memcpy(d, base_decl, sizeof d);
        d[1].name = "enc.b";
        expect_reject("tensor_name_differs", path, "copy", d, 3, 0);
        memcpy(d, base_decl, sizeof d);
        d[2].s[2] = 6;
        expect_reject("shape_larger", path, "copy", d, 3, 0);
        expect_reject("tensor_missing", path, "copy", base_decl, 2, 0);
        decl d4[4];
        memcpy(d4, base_decl, sizeof base_decl);
        d4[3] = (decl){"extra", 0, 1, {2, 0, 0}};
        expect_reject("tensor_extra", path, "copy", d4, 4, 0);
        /* tensors present but in another order */
        decl dr[3] = {base_decl[1], base_decl[0], base_decl[2]};
        expect_reject("tensor_order", path, "copy", dr, 3, 0);
    }
    {
        float nan = NAN, inf = INFINITY;
        reject_patched("value_nan", good, n, DATA + 4 * 5, &nan, 4, "copy");
        reject_patched("value_inf", good, n, DATA + 4 * (p.total - 1), &inf, 4, "copy");
        snprintf(path2, sizeof path2, "%s/moments.mkm", dir);
        unsigned char *b = malloc(n);
        memcpy(b, good, n);
        memcpy(b + DATA + 4 * p.total + 4 * 3, &nan, 4);
        write_all(path2, b, n);
        expect_reject("adam_m_nan_resume", path2, "copy", base_decl, 3, 1);
        memcpy(b, good, n);
        memcpy(b + DATA + 8 * p.total + 4 * 7, &inf, 4);
        write_all(path2, b, n);
        expect_reject("adam_v_inf_resume", path2, "copy", base_decl, 3, 1);
        /* without resuming, the moments are not read: a damaged moment does not matter */
        mk_params t;
        declare(&t, base_decl, 3);
        rc = mk_ckpt_load(path2, "copy", NULL, &t, 0);
        test_report(rc == 0 && t.m == NULL, "ckpt_load_values_ignores_moments", "rc %d", rc);
        mk_params_free(&t);
        unlink(path2);
        free(b);
    }
    snprintf(path2, sizeof path2, "%s/does_not_exist.mkm", dir);
    expect_reject("missing_file", path2, "copy", base_decl, 3, 0);
    expect_reject("directory", dir, "copy", base_decl, 3, 0);

    /* ---------------------------------------------------------- fuzz */
    {
        int crashed_msgs = 0, accepted = 0;
        const int iters = 400;
        snprintf(path2, sizeof path2, "%s/fuzz.mkm", dir);
        unsigned char *b = malloc(n + 16);
        for (int it = 0; it < iters; it++) {
            memcpy(b, good, n);
            size_t len = n;
            int flips = 1 + mk_rng_int(&rng, 4);
            for (int k = 0; k < flips; k++) {
                size_t at = (size_t)mk_rng_int(&rng, DATA); /* header and tables */
                b[at] ^= (unsigned char)(1u << mk_rng_int(&rng, 8));
            }
            if (mk_rng_int(&rng, 4) == 0) len = (size_t)mk_rng_int(&rng, (int)n + 8);
            write_all(path2, b, len);
            mk_params t;
            declare(&t, base_decl, 3);
            rc = mk_ckpt_load(path2, NULL, NULL, &t, 0);
            if (rc == 0) accepted++;
            else if (strncmp(mk_last_error(), path2, strlen(path2))) crashed_msgs++;
            mk_params_free(&t);
        }
        unlink(path2);
        free(b);
        test_report(crashed_msgs == 0, "ckpt_fuzz", "%d corrupted files (bit flips in header/tables, random lengths): %d loaded "
                    "(flips in config text or padding), %d rejected without the file name",
                    iters, accepted, crashed_msgs);
    }
    free(good);
    unlink(path);
    test_model_roundtrip();
    test_mamba_cfg_config();
    int left = count_files(dir);
    test_report(left == 0, "ckpt_tmp_cleanup", "%d stray files left in %s", left, dir);
    rmdir(dir);
    mk_params_free(&p);
    return test_exit();
}
