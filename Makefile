# mambakit — one static library of the core, one binary, tests with sanitizers.
#
#   make            build build/mambakit (prints which optional parts were found)
#   make deps       install the Debian packages we need (as root; apt-get update first)
#   make test       deps + build + run every test (ASan/UBSan), "N passed, N failed"
#   make demo       deps + build + classify a shipped example with the default model
#   make bench      CPU scan benchmark (docs/PERFORMANCE.md)
#   CUDA=0|1        override nvcc detection; toggling any option rebuilds cleanly
#   NODEPS=1        skip the apt step (a non-Debian machine, e.g. the GPU host:
#                   tests/bench/cuda/device_env.sh)

SHELL := /bin/bash
CC ?= cc
NVCC ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
BUILD := build

# ---------------------------------------------------------------- detection
have_pc = $(shell pkg-config --exists $(1) 2>/dev/null && echo 1 || echo 0)
HAVE_OPENBLAS := $(call have_pc,openblas)
HAVE_SNDFILE  := $(call have_pc,sndfile)
HAVE_PNG      := $(call have_pc,libpng)
HAVE_ZLIB     := $(call have_pc,zlib)
HAVE_FFTW     := $(call have_pc,fftw3f)
HAVE_SRC      := $(call have_pc,samplerate)
# STB_DIR: where stb_image.h lives (a prefix unpacked from .debs on a machine without libstb-dev)
STB_DIR ?= /usr/include/stb
HAVE_STB      := $(shell test -f $(STB_DIR)/stb_image.h && echo 1 || echo 0)
ifeq ($(NVCC),)
CUDA ?= 0
else
CUDA ?= 1
endif

PKGS := openblas
ifeq ($(HAVE_SNDFILE),1)
PKGS += sndfile
endif
ifeq ($(HAVE_PNG),1)
PKGS += libpng
endif
ifeq ($(HAVE_ZLIB),1)
PKGS += zlib
endif
ifeq ($(HAVE_FFTW),1)
PKGS += fftw3f
endif
ifeq ($(HAVE_SRC),1)
PKGS += samplerate
endif

PC_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PC_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

DEFS := -DMK_HAVE_SNDFILE=$(HAVE_SNDFILE) -DMK_HAVE_PNG=$(HAVE_PNG) -DMK_HAVE_ZLIB=$(HAVE_ZLIB) \
        -DMK_HAVE_FFTW=$(HAVE_FFTW) -DMK_HAVE_SAMPLERATE=$(HAVE_SRC) -DMK_HAVE_STB=$(HAVE_STB) \
        -DMK_HAVE_CUDA=$(CUDA)

# x86-64-v2 runs on any x86-64 from the last ~15 years; hot loops add an AVX2
# clone through target_clones (core/simd.h), picked at run time.
ARCH ?= -march=x86-64-v2 -mtune=generic
FPFLAGS := -fno-math-errno -fno-trapping-math
WARN := -Wall -Wextra -Wno-unused-parameter -Wno-sign-compare
CFLAGS_BASE := -std=c11 $(FPFLAGS) -D_GNU_SOURCE -fopenmp $(ARCH) $(WARN) $(DEFS) -I. $(PC_CFLAGS) -I$(STB_DIR)
CFLAGS ?= -O2 -g
SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
# OpenBLAS's OpenMP build shares our OpenMP thread pool; Debian's default pthread
# build keeps a second pool whose idle threads fight ours for the cores (vision
# training 1.6x slower on 2 cores, docs/PERFORMANCE.md). Link the OpenMP build
# when it is installed (make deps installs it); core/linear.c copes with either.
OPENBLAS_OMP_DIR ?= /usr/lib/$(shell $(CC) -dumpmachine 2>/dev/null)/openblas-openmp
ifneq ($(wildcard $(OPENBLAS_OMP_DIR)/libopenblas.so.0),)
BLAS_LIBS := -L$(OPENBLAS_OMP_DIR) -Wl,-rpath,$(OPENBLAS_OMP_DIR) -l:libopenblas.so.0
PC_LIBS := $(filter-out -lopenblas,$(PC_LIBS))
endif
LDLIBS := $(BLAS_LIBS) $(PC_LIBS) -lm -fopenmp

ifeq ($(CUDA),1)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
NVFLAGS ?= -O3 -std=c++17 -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90 \
           -Xcompiler -fPIC -I. $(DEFS) -lineinfo
# NVEXTRA: definitions for a trial build, e.g. NVEXTRA=-DMK_SCAN_FWD_DT_PAIR=1 (core/cuda/scan.cu)
NVFLAGS += $(NVEXTRA)
LDLIBS += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcudart -lstdc++
endif

# ---------------------------------------------------------------- sources
CORE_C   := $(wildcard core/*.c)
CORE_CU  := $(wildcard core/*.cu core/cuda/*.cu)
DOMAIN_C := $(wildcard vision/*.c audio/*.c timeseries/*.c pathology/*.c datasets/*.c)
APP_C    := $(wildcard apps/*.c)
TEST_C   := $(wildcard tests/test_*.c)
TEST_SH  := $(wildcard tests/test_*.sh)
TEST_LIB_C := $(filter-out $(TEST_C),$(wildcard tests/*.c))

ifeq ($(CUDA),1)
CU_OBJ := $(CORE_CU:%.cu=$(BUILD)/cu/%.o)
endif

OBJ_CORE   := $(CORE_C:%.c=$(BUILD)/rel/%.o)
OBJ_DOMAIN := $(DOMAIN_C:%.c=$(BUILD)/rel/%.o)
OBJ_APP    := $(APP_C:%.c=$(BUILD)/rel/%.o)
SOBJ_CORE   := $(CORE_C:%.c=$(BUILD)/san/%.o)
SOBJ_DOMAIN := $(DOMAIN_C:%.c=$(BUILD)/san/%.o)
SOBJ_APP    := $(APP_C:%.c=$(BUILD)/san/%.o)
SOBJ_TESTLIB := $(TEST_LIB_C:%.c=$(BUILD)/san/%.o)
TEST_BIN := $(TEST_C:tests/%.c=$(BUILD)/tests/%)
# the scan's and the core ops' tests again against the release library: the sanitizer
# builds compile MK_CLONES away (core/simd.h), so only these run the AVX2 / AVX-512 clones
REL_TEST_BIN := $(BUILD)/tests/rel/test_scan $(BUILD)/tests/rel/test_ops

LIB  := $(BUILD)/libmambakit.a
SLIB := $(BUILD)/san/libmambakit.a
BIN  := $(BUILD)/mambakit
SBIN := $(BUILD)/san/mambakit

# Any change of options rewrites this stamp, and everything depends on it.
CONFIG_STAMP := $(BUILD)/config.stamp
# CLONE_FP lets the release build's AVX2 / AVX-512 clones (MK_CLONES, core/simd.h) fuse a*b+c
# into one FMA instruction, which ISO C mode forbids by default. Everything else is compiled for
# x86-64-v2, which has no FMA, so only the clones change. `make CLONE_FP=` builds without it
# (an A/B; the stamp rebuilds).
CLONE_FP ?= -ffp-contract=fast
CONFIG_TEXT := $(CC) $(CFLAGS) $(CFLAGS_BASE) $(CLONE_FP) CUDA=$(CUDA) $(NVFLAGS) $(LDLIBS)
$(shell mkdir -p $(BUILD); echo '$(CONFIG_TEXT)' | cmp -s - $(CONFIG_STAMP) || echo '$(CONFIG_TEXT)' > $(CONFIG_STAMP))

.PHONY: all deps test demo bench bench-ts bench-audio bench-mil bench-vision bench-cuda clean report tests
all: report $(BIN)

yn = $(if $(filter 1,$(1)),✓,✗)
report:
	@echo "mambakit build: $(call yn,$(HAVE_OPENBLAS)) OpenBLAS$(if $(BLAS_LIBS), (OpenMP build),)  $(call yn,$(HAVE_SNDFILE)) libsndfile  $(call yn,$(HAVE_PNG)) libpng  $(call yn,$(HAVE_STB)) stb  $(call yn,$(HAVE_ZLIB)) zlib  $(call yn,$(HAVE_FFTW)) FFTW  $(call yn,$(HAVE_SRC)) libsamplerate  $(call yn,$(CUDA)) CUDA$(if $(NVCC), ($(NVCC)),)"
ifneq ($(HAVE_OPENBLAS),1)
	@echo "OpenBLAS is required: run 'make deps' (as root) first" && false
endif

$(BUILD)/rel/%.o: %.c $(CONFIG_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(CFLAGS_BASE) $(CLONE_FP) -MMD -MP -c $< -o $@

$(BUILD)/san/%.o: %.c $(CONFIG_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN) $(CFLAGS_BASE) -MMD -MP -c $< -o $@

$(BUILD)/cu/%.o: %.cu $(CONFIG_STAMP) $(wildcard core/*.h core/cuda/*.h core/cuda/*.cuh)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) -c $< -o $@

$(LIB): $(OBJ_CORE) $(CU_OBJ)
	@rm -f $@; ar rcs $@ $^

$(SLIB): $(SOBJ_CORE) $(CU_OBJ)
	@mkdir -p $(dir $@); rm -f $@; ar rcs $@ $^

$(BIN): $(OBJ_APP) $(OBJ_DOMAIN) $(LIB)
	$(CC) $(CFLAGS) $(CFLAGS_BASE) -o $@ $(OBJ_APP) $(OBJ_DOMAIN) $(LIB) $(LDLIBS)

$(SBIN): $(SOBJ_APP) $(SOBJ_DOMAIN) $(SLIB)
	$(CC) $(CFLAGS) $(SAN) $(CFLAGS_BASE) -o $@ $(SOBJ_APP) $(SOBJ_DOMAIN) $(SLIB) $(LDLIBS)

$(BUILD)/tests/%: tests/%.c $(SOBJ_DOMAIN) $(SOBJ_TESTLIB) $(SLIB) $(CONFIG_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN) $(CFLAGS_BASE) -MMD -MP -o $@ $< $(SOBJ_DOMAIN) $(SOBJ_TESTLIB) $(SLIB) $(LDLIBS)

$(BUILD)/tests/rel/%: tests/%.c $(OBJ_DOMAIN) $(LIB) $(CONFIG_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(CFLAGS_BASE) -DMK_TEST_TAG='"rel."' -MMD -MP -o $@ $< $(OBJ_DOMAIN) $(LIB) $(LDLIBS)

# The scan kernel lab (tests/bench/cuda/scan_lab.cu): built with CUDA so CI compiles it; run on a GPU.
ifeq ($(CUDA),1)
LAB := $(BUILD)/lab/scan_lab
$(BUILD)/lab/scan_lab.o: tests/bench/cuda/scan_lab.cu $(CONFIG_STAMP) $(wildcard core/*.h core/cuda/*.h core/cuda/*.cuh tests/bench/cuda/*.cuh)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) -c $< -o $@
$(LAB): $(BUILD)/lab/scan_lab.o $(LIB)
	$(CC) $(CFLAGS) $(CFLAGS_BASE) -o $@ $< $(LIB) $(LDLIBS)
endif

# The CUDA backend's orchestration without a GPU: core/backend.c and tests/test_cuda.c built
# against a host emulation of the kernel API (tests/emu/cuda_emu.c; the CPU ops stand in for
# the kernels), so the resident steps are compared with the CPU path on any machine.
EMU_DEFS := -UMK_HAVE_CUDA -DMK_HAVE_CUDA=1 -DMKC_EMULATED=1
EMU_BIN := $(BUILD)/tests/test_cuda_emu
EMU_OBJ := $(BUILD)/emu/tests/test_cuda.o $(BUILD)/emu/core/backend.o $(BUILD)/emu/tests/emu/cuda_emu.o
$(BUILD)/emu/%.o: %.c $(CONFIG_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN) $(CFLAGS_BASE) $(EMU_DEFS) -MMD -MP -c $< -o $@
$(EMU_BIN): $(EMU_OBJ) $(filter-out $(BUILD)/san/core/backend.o,$(SOBJ_CORE)) $(SOBJ_DOMAIN) $(SOBJ_TESTLIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN) $(CFLAGS_BASE) -o $@ $^ $(LDLIBS)

# ... and the whole command line on it (tests/test_cuda_emu_cli.sh: --device cuda runs give the
# CPU's files bit for bit, checkpoints and resumes included)
EMU_CLI := $(BUILD)/tests/mambakit_emu
$(EMU_CLI): $(BUILD)/emu/core/backend.o $(BUILD)/emu/tests/emu/cuda_emu.o \
            $(filter-out $(BUILD)/san/core/backend.o,$(SOBJ_CORE)) $(SOBJ_APP) $(SOBJ_DOMAIN)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN) $(CFLAGS_BASE) -o $@ $^ $(LDLIBS)

tests: report $(BIN) $(SBIN) $(TEST_BIN) $(REL_TEST_BIN) $(EMU_BIN) $(EMU_CLI) $(LAB)

# ---------------------------------------------------------------- set-up
DEB_PKGS := build-essential pkg-config libopenblas-dev libopenblas0-openmp libsndfile1-dev libpng-dev zlib1g-dev \
            libstb-dev libfftw3-dev libsamplerate0-dev dataset-fashion-mnist espeak-ng
deps:
	@if [ -n "$(NODEPS)" ]; then echo "deps: skipped (NODEPS set; using what this machine has)"; exit 0; fi; \
	missing=""; for p in $(DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "make deps: need root to install:$$missing" >&2; exit 1; fi; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "deps: all Debian packages present"; fi

# The recursive make re-runs detection after deps may have installed things.
test: deps
	@$(MAKE) --no-print-directory tests
	@MK=$(abspath $(SBIN)) MK_REL=$(abspath $(BIN)) MK_EMU=$(abspath $(EMU_CLI)) bash tests/run.sh $(TEST_BIN) $(REL_TEST_BIN) $(EMU_BIN) $(TEST_SH)

demo: deps
	@$(MAKE) --no-print-directory all
	@bash apps/demo.sh

bench: deps
	@$(MAKE) --no-print-directory all
	$(BIN) bench scan

bench-ts bench-audio bench-mil bench-vision bench-cuda: deps
	@$(MAKE) --no-print-directory all
	$(BIN) bench $(patsubst bench-%,%,$@)

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
