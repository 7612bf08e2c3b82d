#!/usr/bin/env bash
# The kernel lab's host simulation (tests/bench/cuda/scan_lab.cu --sim): lab v7's copy and step
# phases (scan_lane.cuh) and lab v8's (the backward, scan_lane_bwd.cuh), run on the host in the
# kernels' order, against the CPU scan and its backward. Needs the CUDA build of the lab (nvcc),
# not a GPU.
lab="$(cd "$(dirname "$0")/.." && pwd)/build/lab/scan_lab"
if [ ! -x "$lab" ]; then
  echo "SKIP scan_lab_sim: skipped: no build/lab/scan_lab (a build without CUDA)"
  exit 0
fi
"$lab" --sim
