/* bench_main.c — `mambakit bench cuda` without the rest of the binary, for
 * machines that lack the domain front ends' libraries (run_device.sh). */
#include "apps/cli.h"
int main(int argc, char **argv) { return cmd_bench_cuda(argc, argv); }
