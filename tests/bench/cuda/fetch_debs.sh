#!/usr/bin/env bash
# fetch_debs.sh — run on the Debian development machine, before a GPU session.
# The GPU host (Ubuntu 24.04, no network) lacks libsndfile, FFTW, libsamplerate,
# stb and the Fashion-MNIST package. This downloads the Debian packages into
# .debs/ (git-ignored, ~42 MB) so that a device call can carry them:
#   run(command="source tests/bench/cuda/device_env.sh && make -j16 CUDA=1 NODEPS=1 test",
#       carry=[".debs"])
# device_env.sh unpacks them into .debs/root and points the build there.
set -eu
cd "$(dirname "$0")/../../.."
mkdir -p .debs
cd .debs
# headers + pkg-config files, the runtime libraries they link, and what libsndfile needs;
# OpenBLAS's OpenMP build, because the host has only the pthread one, whose thread pool
# fights ours (docs/PERFORMANCE.md, "Two thread pools")
PKGS="libsndfile1-dev libsndfile1 libflac12 libmp3lame0 libmpg123-0 libogg0 libopus0 libvorbis0a libvorbisenc2
      libfftw3-dev libfftw3-single3 libsamplerate0-dev libsamplerate0 libstb-dev dataset-fashion-mnist
      libopenblas0-openmp"
rm -f ./*.deb
apt-get download $PKGS 2>&1 | grep -v "unsandboxed" || true
n=$(ls ./*.deb 2>/dev/null | wc -l)
want=$(echo $PKGS | wc -w)
[ "$n" = "$want" ] || { echo "fetch_debs: got $n of $want packages (apt-get update first?)" >&2; exit 1; }
# two FSDD recordings (../shared/data does not travel to the GPU host) for device_session.sh's
# enhance check: --device cuda against --device cpu; the first found an alignment bug on
# 2026-11-27 (docs/CUDA.md), the second worked. Kept off the data search path (.debs/data, not
# .debs/root/usr/share/datasets): tests that find FSDD there expect all of it.
for d in ${MAMBAKIT_DATA:+"$MAMBAKIT_DATA"} ../../shared/data ../../../shared/data /usr/share/datasets; do
    if [ -f "$d/fsdd/recordings/0_george_0.wav" ]; then
        mkdir -p data/fsdd/recordings
        cp "$d/fsdd/recordings/0_george_0.wav" "$d/fsdd/recordings/3_theo_7.wav" data/fsdd/recordings/ || true
        chmod u+w data/fsdd/recordings/*.wav 2>/dev/null || true
        break
    fi
done
# a fifth of FSDD (recordings 0-4 of every digit and speaker, ~2 MB; the whole set, 27 MB, does
# not fit beside the packages in a 64 MiB carry) for device_session.sh's train enhance rate
# A/B (--data-dir .debs/enh_data: 200 training and 100 test utterances, generated noise)
for d in ${MAMBAKIT_DATA:+"$MAMBAKIT_DATA"} ../../shared/data ../../../shared/data /usr/share/datasets; do
    if [ -f "$d/fsdd/recordings/0_george_0.wav" ]; then
        mkdir -p enh_data/fsdd/recordings
        cp "$d"/fsdd/recordings/[0-9]_*_[0-4].wav enh_data/fsdd/recordings/ || true
        chmod u+w enh_data/fsdd/recordings/*.wav 2>/dev/null || true
        break
    fi
done
# a fifth of DALES Objects for device_session.sh's points train rate A/B (--data-dir .debs/pts):
# the 40 smallest objects of each class (200 objects, ~2.3 MB; the whole set's 14 MB does not
# fit beside the packages in the carry), renumbered contiguously as the loader requires
for d in ${MAMBAKIT_DATA:+"$MAMBAKIT_DATA"} ../../shared/data ../../../shared/data /usr/share/datasets; do
    if [ -f "$d/dales_objects/index.csv" ]; then
        rm -rf pts && mkdir -p pts/dales_objects
        head -1 "$d/dales_objects/index.csv" > pts/dales_objects/index.csv
        : > pts/dales_objects/points_xyz_f32le.bin
        tail -n +2 "$d/dales_objects/index.csv" | sort -t, -k2,2n -k5,5n |
            awk -F, '{ if (++c[$2] <= 40) print }' | sort -t, -k1,1n |
            while IFS=, read -r id lab name first num; do
                tail -c +$((first * 12 + 1)) "$d/dales_objects/points_xyz_f32le.bin" | head -c $((num * 12)) \
                    >> pts/dales_objects/points_xyz_f32le.bin
                echo "$id,$lab,$name,$((($(stat -c %s pts/dales_objects/points_xyz_f32le.bin) / 12) - num)),$num" \
                    >> pts/dales_objects/index.csv
            done
        break
    fi
done
# ETTh1 (2.5 MB) for device_session.sh's train forecast rate A/B (.debs/ts/ETTh1.csv)
for d in ${MAMBAKIT_DATA:+"$MAMBAKIT_DATA"} ../../shared/data ../../../shared/data /usr/share/datasets; do
    if [ -f "$d/ETT/ETTh1.csv" ]; then
        mkdir -p ts && cp "$d/ETT/ETTh1.csv" ts/ && chmod u+w ts/ETTh1.csv
        break
    fi
done
# Musk1 (0.3 MB) for device_session.sh's mil train CV rows (.debs/mil/musk1.csv)
for d in ${MAMBAKIT_DATA:+"$MAMBAKIT_DATA"} ../../shared/data ../../../shared/data /usr/share/datasets; do
    if [ -f "$d/mil/musk1.csv" ]; then
        mkdir -p mil && cp "$d/mil/musk1.csv" mil/ && chmod u+w mil/musk1.csv
        break
    fi
done
du -sh . | sed 's/\t.*/ in .debs/'
