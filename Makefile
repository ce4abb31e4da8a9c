# esmm: PGXS build of the extension, plus the server-free unit tests.
#   make && make install      build and install into the PostgreSQL of $(PG_CONFIG)
#   make unit                 C unit tests of src/core (no server)
#   make unit-sanitize        the same under ASan and UBSan
# The two commands that do everything (packages, cluster, tests) are in
# README.md: test/run_demo.sh and test/run_tests.sh.

EXTENSION = esmm
MODULE_big = esmm
CORE_SRCS = $(sort $(wildcard src/core/*.c))
PG_SRCS = $(sort $(wildcard src/pg/*.c))
OBJS = $(CORE_SRCS:.c=.o) $(PG_SRCS:.c=.o)
DATA = sql/esmm--0.1.0.sql
REGRESS = $(sort $(basename $(notdir $(wildcard sql/regress_*.sql))))
REGRESS_OPTS = --inputdir=. --load-extension=esmm

# OpenBLAS built for OpenMP: it then shares libgomp's thread pool with our
# own parallel regions, whose threads we create with every signal blocked
# (esmm_threads_prepare in src/pg/esmm_pg.c).  The pthread build starts its own threads at
# load time, with the backend's signal mask, so it is not used.
OPENBLAS_LIB = /usr/lib/x86_64-linux-gnu/openblas-openmp
OPENBLAS_INC = /usr/include/x86_64-linux-gnu/openblas-openmp
PG_CPPFLAGS = -I$(OPENBLAS_INC) -Isrc/core
PG_CFLAGS = -fopenmp -Wno-declaration-after-statement
# The core's kernels are loops over floats: -O3 vectorizes them (PGXS's
# -O2 leaves most of them scalar); -fno-math-errno lets sqrtf inline and
# -fno-trapping-math lets a select over a product become a blend, since
# nothing reads errno or the floating-point exception flags;
# -fno-tree-loop-distribute-patterns keeps a copy of a row's few floats an
# inline loop rather than a memcpy call (esmm_copy_floats).  No
# -ffast-math: NaN checks and the order of sums must mean what the code says.
CORE_OPT = -O3 -fno-math-errno -fno-trapping-math -fno-tree-loop-distribute-patterns
$(CORE_SRCS:.c=.o): CFLAGS += $(CORE_OPT)
SHLIB_LINK = -fopenmp -L$(OPENBLAS_LIB) -Wl,-rpath,$(OPENBLAS_LIB) -lopenblas -lm
EXTRA_CLEAN = test/unit/esmm_unit test/unit/esmm_unit_san test/fuzz/replay_san test/fuzz/replay_corpus results regression.diffs regression.out

PG_CONFIG ?= pg_config
# No LLVM bitcode: JIT inlining buys nothing for functions that call BLAS,
# and clang would need the OpenMP flags too.
override with_llvm = no
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# Every object depends on every header: PGXS tracks none unless PostgreSQL
# was configured with --enable-depend, and an object built against an
# older struct layout would crash the backend.
$(OBJS): $(wildcard src/core/*.h src/pg/*.h)

UNIT_SRCS = $(sort $(wildcard test/unit/*.c))
UNIT_CFLAGS = -std=c99 -D_POSIX_C_SOURCE=200809L -g -Wall -Wextra -Werror=implicit-function-declaration \
	-fopenmp -I$(OPENBLAS_INC) -Isrc/core
UNIT_LIBS = -L$(OPENBLAS_LIB) -Wl,-rpath,$(OPENBLAS_LIB) -lopenblas -lm

test/unit/esmm_unit: $(CORE_SRCS) $(UNIT_SRCS) $(wildcard src/core/*.h test/unit/*.h) test/crc32c_ref.h
	$(CC) $(UNIT_CFLAGS) $(CORE_OPT) -o $@ $(CORE_SRCS) $(UNIT_SRCS) $(UNIT_LIBS)

test/unit/esmm_unit_san: $(CORE_SRCS) $(UNIT_SRCS) $(wildcard src/core/*.h test/unit/*.h) test/crc32c_ref.h
	$(CC) $(UNIT_CFLAGS) -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
		-fno-sanitize-recover=undefined -o $@ $(CORE_SRCS) $(UNIT_SRCS) $(UNIT_LIBS)

# fuzz_decode's target without libFuzzer, under the same sanitizers: replays
# the kept inputs and the seed corpus in the test suite.
test/fuzz/replay_san: $(CORE_SRCS) test/fuzz/fuzz_decode.c test/fuzz/replay.c $(wildcard src/core/*.h) test/crc32c_ref.h
	$(CC) $(UNIT_CFLAGS) -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
		-fno-sanitize-recover=undefined -o $@ test/fuzz/replay.c test/fuzz/fuzz_decode.c $(CORE_SRCS) $(UNIT_LIBS)

.PHONY: unit unit-sanitize
unit: test/unit/esmm_unit
	OMP_NUM_THREADS=2 ./test/unit/esmm_unit

unit-sanitize: test/unit/esmm_unit_san test/fuzz/replay_san test/fuzz/make_corpus
	OMP_NUM_THREADS=2 ASAN_OPTIONS=detect_leaks=1 ./test/unit/esmm_unit_san
	rm -rf test/fuzz/replay_corpus && mkdir -p test/fuzz/replay_corpus
	./test/fuzz/make_corpus test/fuzz/replay_corpus >/dev/null
	OMP_NUM_THREADS=2 ASAN_OPTIONS=detect_leaks=1 ./test/fuzz/replay_san test/fuzz/regressions/* test/fuzz/replay_corpus/*

# libFuzzer on the model decoder (clang, Debian's libclang-rt), not in the
# test suite: make fuzz FUZZ_SECONDS=600.  Crashes land in test/fuzz/crashes;
# keep any as a regression file in test/fuzz/regressions.
FUZZ_SECONDS ?= 60
FUZZ_CFLAGS = -std=c99 -D_POSIX_C_SOURCE=200809L -g -O1 -fopenmp -I$(OPENBLAS_INC) -Isrc/core
test/fuzz/fuzz_decode: $(CORE_SRCS) test/fuzz/fuzz_decode.c $(wildcard src/core/*.h) test/crc32c_ref.h
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer,address,undefined -o $@ test/fuzz/fuzz_decode.c $(CORE_SRCS) $(UNIT_LIBS)

test/fuzz/make_corpus: $(CORE_SRCS) test/fuzz/make_corpus.c $(wildcard src/core/*.h) test/crc32c_ref.h
	$(CC) $(FUZZ_CFLAGS) -o $@ test/fuzz/make_corpus.c $(CORE_SRCS) $(UNIT_LIBS)

.PHONY: bench
# The performance benchmark (SPEC §8): its own cluster, the PyTorch peer
# side by side, ratios printed.  Not part of the test suite.
bench:
	bash bench/run.sh

.PHONY: fuzz
fuzz: test/fuzz/fuzz_decode test/fuzz/make_corpus
	mkdir -p test/fuzz/corpus test/fuzz/crashes
	./test/fuzz/make_corpus test/fuzz/corpus
	./test/fuzz/fuzz_decode -max_total_time=$(FUZZ_SECONDS) -max_len=65536 \
		-artifact_prefix=test/fuzz/crashes/ test/fuzz/corpus test/fuzz/regressions

# The pg_regress suite with the backends under valgrind memcheck, on its own
# cluster (.tmp/pg-54339, port 54339); slow, not in the test suite.  A subset:
# make check-valgrind ESMM_VALGRIND_TESTS="regress_errors regress_train".
.PHONY: check-valgrind
check-valgrind:
	bash test/valgrind.sh
