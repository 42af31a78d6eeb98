#!/bin/sh
# `make fuzz`: builds every harness in tests/fuzz/ with clang's libFuzzer,
# ASan and UBSan (the library's sources compiled the same way, so coverage
# reaches the parsers), then runs each in turn for FUZZ_SECONDS seconds
# and/or FUZZ_RUNS inputs, starting from its committed seed corpus.
# New corpus entries go to BUILD/fuzz/corpus/NAME (the source tree is
# never written); crashes to BUILD/fuzz/crash-NAME-*. Exits non-zero when
# any harness found a crash, naming the inputs.
#
# The Makefile passes, in the environment: srcdir, FUZZ_TARGETS, FUZZ_CC,
# FUZZ_SECONDS, FUZZ_RUNS, FUZZ_FLAGS, FUZZ_LIB_SOURCES, FUZZ_CPPFLAGS,
# FUZZ_CFLAGS (the libraries' -I flags), FUZZ_LIBS.
set -eu

: "${FUZZ_CC:=clang}" "${FUZZ_SECONDS:=60}" "${FUZZ_RUNS:=}" "${FUZZ_FLAGS:=}"
out=fuzz
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
# one OpenMP runtime in the process: oneDNN is built against libgomp
omp="-fopenmp=libgomp"
# (no plugins are loaded: the directory only has to be a string)
cflags="-std=c11 -g -O1 $san $FUZZ_CPPFLAGS -DRB_PLUGIN_DIR=\"/nonexistent\" $FUZZ_CFLAGS"

if ! command -v "$FUZZ_CC" >/dev/null 2>&1; then
  echo "make fuzz: $FUZZ_CC not found: install clang (scripts/install-deps --fuzz)" >&2
  exit 1
fi
probe=$(mktemp -d)
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' >"$probe/p.c"
if ! "$FUZZ_CC" -fsanitize=fuzzer,address,undefined "$probe/p.c" -o "$probe/p" >"$probe/log" 2>&1; then
  cat "$probe/log" >&2
  rm -rf "$probe"
  echo "make fuzz: $FUZZ_CC cannot link libFuzzer: install libclang-rt-14-dev (scripts/install-deps --fuzz)" >&2
  exit 1
fi
rm -rf "$probe"

mkdir -p "$out/obj" "$out/corpus"
# The library, instrumented for coverage (rebuilt only where the source is newer).
objs=
for src in $FUZZ_LIB_SOURCES; do
  case $src in *.c) ;; *) continue ;; esac
  obj="$out/obj/$(echo "$src" | tr / _ | sed 's/\.c$/.o/')"
  if [ ! -f "$obj" ] || [ "$srcdir/$src" -nt "$obj" ]; then
    echo "  FUZZCC   $src"
    "$FUZZ_CC" $cflags $omp -fsanitize=fuzzer-no-link -c "$srcdir/$src" -o "$obj"
  fi
  objs="$objs $obj"
done

for t in $FUZZ_TARGETS; do
  echo "  FUZZLD   $out/fuzz_$t"
  "$FUZZ_CC" $cflags $omp -fsanitize=fuzzer -I"$srcdir/tests/fuzz" "$srcdir/tests/fuzz/fuzz_$t.c" $objs \
    $FUZZ_LIBS -o "$out/fuzz_$t"
done

failed=
for t in $FUZZ_TARGETS; do
  mkdir -p "$out/corpus/$t"
  limits="-max_total_time=$FUZZ_SECONDS"
  [ -n "$FUZZ_RUNS" ] && limits="$limits -runs=$FUZZ_RUNS"
  echo "make fuzz: $t ($limits)"
  # shellcheck disable=SC2086 # FUZZ_FLAGS and limits are lists of options
  if ! "$out/fuzz_$t" $limits -print_final_stats=1 -artifact_prefix="$out/crash-$t-" $FUZZ_FLAGS \
      "$out/corpus/$t" "$srcdir/tests/fuzz/corpus/$t" 2>"$out/$t.log"; then
    failed="$failed $t"
  fi
  # the last status line and the final statistics
  grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE)' "$out/$t.log" | tail -n 1
  grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$out/$t.log" || true
done
if [ -n "$failed" ]; then
  echo "make fuzz: crashes in:$failed; inputs:" >&2
  ls "$out"/crash-* >&2 2>/dev/null || true
  echo "(logs in $out/NAME.log; add each input to tests/fuzz/corpus/NAME/ once fixed)" >&2
  exit 1
fi
echo "make fuzz: no crash in $FUZZ_TARGETS"
