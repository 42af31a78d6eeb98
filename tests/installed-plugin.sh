#!/bin/sh
# Proves that an installed robusta is enough to build and load a plugin out
# of tree: builds examples/plugin/fgsm.c and mi_fgsm.c with the installed
# headers (pkg-config), lists them with the installed robusta through
# RB_PLUGIN_PATH, runs their callbacks and the runtime from a program linked
# with the installed library, and attacks with the installed command.
# Usage: installed-plugin.sh SRCDIR BINDIR LIBDIR   (make installcheck runs it)
set -eu
srcdir=$1 bindir=$2 libdir=$3
cc=${CC:-cc}
fail() { echo "FAIL: installed plugin: $*" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/robusta-installcheck-XXXXXX")
trap 'rm -rf "$work"' EXIT
chmod 700 "$work"

# The installed plugins are the point here: search the install folder even
# when make check's environment says not to.
unset RB_PLUGIN_NO_INSTALL_DIR
# Scan verdicts are cached in a file; keep this run's out of the user's home.
RB_PLUGIN_CACHE=$work/plugin-scan
export RB_PLUGIN_CACHE

PKG_CONFIG_PATH="$libdir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export PKG_CONFIG_PATH
cflags=$(pkg-config --cflags robusta) || fail "pkg-config does not find robusta.pc in $libdir/pkgconfig"
libs=$(pkg-config --libs robusta)
plugindir=$(pkg-config --variable=plugindir robusta)
[ -d "$plugindir" ] || fail "plugindir $plugindir (from robusta.pc) does not exist"
[ -f "$plugindir/pgd_l2.so" ] || fail "pgd_l2.so is not installed in $plugindir"

# The documented one-liner for third parties, warnings as errors, for both
# examples; plugins in a folder of their own (robusta scans every file in it).
mkdir -m 700 "$work/plugins" "$work/data"
for example in fgsm mi_fgsm; do
  $cc -shared -fPIC -Wall -Wextra -Werror $cflags "$srcdir/examples/plugin/$example.c" -o "$work/plugins/$example.so" ||
    fail "$example.c does not build against the installed headers"
  chmod 755 "$work/plugins/$example.so"
done
[ "$(wc -l <"$srcdir/examples/plugin/mi_fgsm.c")" -le 60 ] || fail "mi_fgsm.c is longer than its promised 60 lines"

RB_PLUGIN_PATH=$work/plugins "$bindir/robusta" plugins --json fgsm >"$work/list.json" ||
  fail "the installed robusta does not list fgsm"
grep -q '"name": "fgsm"' "$work/list.json" || fail "fgsm missing from: $(cat "$work/list.json")"
grep -q '"kind": "attack"' "$work/list.json" || fail "fgsm is not listed as an attack"
RB_PLUGIN_PATH=$work/plugins "$bindir/robusta" plugins >"$work/list.txt" 2>"$work/warnings.txt" ||
  fail "the installed robusta cannot list its plugins"
if grep -q '^refused:' "$work/list.txt" || [ -s "$work/warnings.txt" ]; then
  fail "something was refused: $(cat "$work/list.txt" "$work/warnings.txt")"
fi
grep -q '^attack  pgd-l2 ' "$work/list.txt" || fail "the installed pgd-l2 is not listed"
grep -q '^attack  mi-fgsm ' "$work/list.txt" || fail "mi-fgsm is not listed: $(cat "$work/list.txt")"

# Hand-computed steps of both, and both through the installed runtime on a
# small model, which the program saves for the command below.
$cc -Wall -Wextra -Werror $cflags "$srcdir/tests/installed_plugin_run.c" -o "$work/run" $libs -lm \
  -Wl,-rpath,"$libdir" || fail "a program does not build against the installed library"
RB_PLUGIN_PATH=$work/plugins "$work/run" "$work/data" || fail "fgsm or mi-fgsm did not run correctly"

# The installed command runs mi-fgsm: it stays in the ball, equals FGSM with
# one step and mu 0 (bit for bit, in the files), and a random start, which it
# does not have, is refused with one line.
attack() {
  RB_PLUGIN_PATH=$work/plugins "$bindir/robusta" attack --ckpt "$work/data/m.rbt" --input "$work/data/x.npy" \
    --labels "$work/data/y.npy" --threads 1 "$@"
}
attack --attack mi-fgsm --steps 5 --output "$work/data/mi.npy" >"$work/mi.txt" ||
  fail "robusta attack --attack mi-fgsm failed"
grep -q '^attack mi-fgsm (eps 0.03137254901960784, mu 1, step-size 0; 5 steps' "$work/mi.txt" ||
  fail "unexpected report: $(cat "$work/mi.txt")"
linf=$(sed -n 's/^max perturbation: L2 [0-9.]*, Linf \([0-9.]*\)$/\1/p' "$work/mi.txt")
awk -v l="$linf" 'BEGIN { exit !(l != "" && l > 0 && l <= 0.031373) }' ||
  fail "mi-fgsm left the ball of 8/255 (Linf '$linf')"
attack --attack fgsm --steps 1 --output "$work/data/fgsm.npy" >/dev/null || fail "robusta attack --attack fgsm failed"
attack --attack mi-fgsm --mu 0 --steps 1 --output "$work/data/mi1.npy" >/dev/null || fail "mi-fgsm --steps 1 failed"
cmp -s "$work/data/fgsm.npy" "$work/data/mi1.npy" || fail "mi-fgsm --mu 0 --steps 1 differs from fgsm"
if attack --attack mi-fgsm --random-start --output "$work/data/no.npy" >"$work/out.txt" 2>"$work/err.txt"; then
  fail "mi-fgsm accepted --random-start"
fi
[ "$(wc -l <"$work/err.txt")" -eq 1 ] && grep -q 'has no random start: drop --random-start$' "$work/err.txt" ||
  fail "mi-fgsm --random-start: $(cat "$work/err.txt")"
[ ! -e "$work/data/no.npy" ] || fail "a refused attack wrote its output"
echo "PASS: installed-plugin (fgsm and mi-fgsm built with pkg-config, listed and run from $bindir)"
