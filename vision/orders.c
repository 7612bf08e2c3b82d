/* orders.c — image scan orders as token permutations (see vision/model.h).
 *
 * Every order lists the P = gh*gw patches in some traversal and puts the
 * class token (stored at index P) in the middle: position P/2 of the scan.
 *   row    : row-major (one direction, a causal baseline)
 *   bidir  : row-major and its reverse                  ref: Vim, Zhu et al. 2024
 *   cross  : row-major, column-major and both reverses  ref: VMamba SS2D, Liu et al. 2024
 *   atrous : the four stride-2 sub-lattices visited one after the other,
 *            row-wise and column-wise, and both reverses
 *            ref: EfficientVMamba ES2D (atrous selective scan), Pei et al. 2024 */
#include <string.h>

#include "core/util.h"
#include "vision/model.h"

static const char *names[VISION_ORDER_COUNT] = {"row", "bidir", "cross", "atrous"};

const char *vision_order_name(int order) { return order >= 0 && order < VISION_ORDER_COUNT ? names[order] : "?"; }
int vision_order_parse(const char *s) {
    for (int i = 0; i < VISION_ORDER_COUNT; i++)
        if (!strcmp(s, names[i])) return i;
    return -1;
}
int vision_order_dirs(int order) {
    static const int g[VISION_ORDER_COUNT] = {1, 2, 4, 4};
    return order >= 0 && order < VISION_ORDER_COUNT ? g[order] : 0;
}

/* patches in a traversal (length P) -> full order (length P+1), class token in the middle */
static void with_cls(int *o, const int *patches, int P) {
    int mid = P / 2, t = 0;
    for (int i = 0; i < P; i++) {
        if (i == mid) o[t++] = P;
        o[t++] = patches[i];
    }
    if (P == 0) o[t++] = 0;
}
static void reverse_of(int *o, const int *src, int L) {
    for (int t = 0; t < L; t++) o[t] = src[L - 1 - t];
}
/* sub-lattices (dy,dx) in the given visiting sequence, each traversed
 * row-major (colmajor = 0) or column-major (colmajor = 1) */
static void lattice_walk(int *pt, int gh, int gw, int colmajor) {
    static const int seq_r[4][2] = {{0, 0}, {0, 1}, {1, 0}, {1, 1}};
    static const int seq_c[4][2] = {{0, 0}, {1, 0}, {0, 1}, {1, 1}};
    int n = 0;
    for (int s = 0; s < 4; s++) {
        int dy = colmajor ? seq_c[s][0] : seq_r[s][0], dx = colmajor ? seq_c[s][1] : seq_r[s][1];
        if (!colmajor) {
            for (int y = dy; y < gh; y += 2)
                for (int x = dx; x < gw; x += 2) pt[n++] = y * gw + x;
        } else {
            for (int x = dx; x < gw; x += 2)
                for (int y = dy; y < gh; y += 2) pt[n++] = y * gw + x;
        }
    }
    MK_ASSERT(n == gh * gw);
}

int vision_orders_build(int order, int gh, int gw, int *o) {
    const int P = gh * gw, L = P + 1;
    int *pt = mk_malloc(sizeof(int) * (P ? P : 1));
    int G = vision_order_dirs(order);
    MK_ASSERT(G > 0);
    for (int i = 0; i < P; i++) pt[i] = i;
    with_cls(o, pt, P); /* row-major is direction 0 of row, bidir, cross */
    switch (order) {
    case VISION_ORDER_ROW: break;
    case VISION_ORDER_BIDIR: reverse_of(o + L, o, L); break;
    case VISION_ORDER_CROSS:
        for (int x = 0, n = 0; x < gw; x++)
            for (int y = 0; y < gh; y++) pt[n++] = y * gw + x;
        with_cls(o + L, pt, P);
        reverse_of(o + 2 * L, o, L);
        reverse_of(o + 3 * L, o + L, L);
        break;
    case VISION_ORDER_ATROUS:
        lattice_walk(pt, gh, gw, 0);
        with_cls(o, pt, P);
        lattice_walk(pt, gh, gw, 1);
        with_cls(o + L, pt, P);
        reverse_of(o + 2 * L, o, L);
        reverse_of(o + 3 * L, o + L, L);
        break;
    }
    free(pt);
    for (int g = 0; g < G; g++) MK_ASSERT(mk_order_is_perm(o + (size_t)g * L, L));
    return G;
}
