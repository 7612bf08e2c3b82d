# device_env.sh — source on the GPU host (bash) to build the full mambakit there.
# Unpacks the Debian packages carried in .debs/ (tests/bench/cuda/fetch_debs.sh)
# into .debs/root, rewrites their pkg-config files to that prefix, and exports
# what the Makefile and the dynamic loader need. Then:
#   make -j16 CUDA=1 NODEPS=1 test        # every test, CUDA ones included
#   make -j16 CUDA=1 NODEPS=1             # build/mambakit with --device cuda
# Libraries the host already has (OpenBLAS, libpng, zlib, CUDA) are used from it.
_mk_root="$PWD/.debs/root"
if ls .debs/*.deb >/dev/null 2>&1; then
    if [ ! -f "$_mk_root/.unpacked" ]; then
        rm -rf "$_mk_root" && mkdir -p "$_mk_root"
        for d in .debs/*.deb; do dpkg -x "$d" "$_mk_root"; done
        # .pc files say prefix=/usr; point them at the unpacked tree. Requires.private
        # names codec packages whose .pc we do not carry (only needed for static links).
        for pc in "$_mk_root"/usr/lib/x86_64-linux-gnu/pkgconfig/*.pc; do
            sed -i -e "s|^prefix=/usr\$|prefix=$_mk_root/usr|" -e '/^Requires.private:/d' "$pc"
        done
        # the unversioned .so links of the -dev packages point at the runtime libs unpacked beside them
        touch "$_mk_root/.unpacked"
    fi
    export PKG_CONFIG_PATH="$_mk_root/usr/lib/x86_64-linux-gnu/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
    export LD_LIBRARY_PATH="$_mk_root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export LIBRARY_PATH="$_mk_root/usr/lib/x86_64-linux-gnu${LIBRARY_PATH:+:$LIBRARY_PATH}"
    export STB_DIR="$_mk_root/usr/include/stb"
    # Fashion-MNIST from the carried dataset package: the data search path's last entry
    [ -d "$_mk_root/usr/share/datasets" ] && export MAMBAKIT_DATA="$_mk_root/usr/share/datasets"
    # OpenBLAS's OpenMP build: the Makefile links it (with a run path) instead of the host's pthread one
    [ -f "$_mk_root/usr/lib/x86_64-linux-gnu/openblas-openmp/libopenblas.so.0" ] &&
        export OPENBLAS_OMP_DIR="$_mk_root/usr/lib/x86_64-linux-gnu/openblas-openmp"
    echo "device_env: packages from .debs unpacked in $_mk_root"
else
    echo "device_env: no .debs/*.deb here (run tests/bench/cuda/fetch_debs.sh and carry .debs); using the host's libraries" >&2
fi
unset _mk_root
