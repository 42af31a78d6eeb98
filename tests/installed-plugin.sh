#!/bin/sh
# Proves that an installed robusta is enough to build and load a plugin out
# of tree: builds examples/plugin/fgsm.c with the installed headers
# (pkg-config), lists it with the installed robusta through RB_PLUGIN_PATH,
# and runs its callbacks from a program linked with the installed library.
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

# The documented one-liner for third parties, warnings as errors.
$cc -shared -fPIC -Wall -Wextra -Werror $cflags "$srcdir/examples/plugin/fgsm.c" -o "$work/fgsm.so" ||
  fail "fgsm.c does not build against the installed headers"
chmod 755 "$work/fgsm.so"

RB_PLUGIN_PATH=$work "$bindir/robusta" plugins --json fgsm >"$work/list.json" ||
  fail "the installed robusta does not list fgsm"
grep -q '"name": "fgsm"' "$work/list.json" || fail "fgsm missing from: $(cat "$work/list.json")"
grep -q '"kind": "attack"' "$work/list.json" || fail "fgsm is not listed as an attack"
RB_PLUGIN_PATH=$work "$bindir/robusta" plugins >"$work/list.txt" 2>"$work/warnings.txt" ||
  fail "the installed robusta cannot list its plugins"
if grep -q '^refused:' "$work/list.txt" || [ -s "$work/warnings.txt" ]; then
  fail "something was refused: $(cat "$work/list.txt" "$work/warnings.txt")"
fi
grep -q '^attack  pgd-l2 ' "$work/list.txt" || fail "the installed pgd-l2 is not listed"

$cc -Wall -Wextra -Werror $cflags "$srcdir/tests/installed_plugin_run.c" -o "$work/run" $libs -lm \
  -Wl,-rpath,"$libdir" || fail "a program does not build against the installed library"
RB_PLUGIN_PATH=$work "$work/run" || fail "fgsm did not run correctly"
echo "PASS: installed-plugin (fgsm built with pkg-config, listed and run from $bindir)"
