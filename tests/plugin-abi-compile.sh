#!/bin/sh
# Plugin ABI 2's promise at compile time: a table of the wrong kind, a
# callback of the wrong type and ABI 1's macro do not compile; a good
# plugin does, with ops_size the size of its own table. Run by make check
# with the compiler and include flags of the build.
set -u
cc=${RB_TEST_CC:?RB_TEST_CC is set by make check}
flags=${RB_TEST_INCLUDES:?RB_TEST_INCLUDES is set by make check}
work=$(mktemp -d "${TMPDIR:-/tmp}/rb-abi-XXXXXX") || exit 99
trap 'rm -rf "$work"' EXIT
fails=0

# expect_error NAME PATTERN: the snippet on stdin must not compile, and the
# compiler must say PATTERN.
expect_error() {
    cat > "$work/$1.c"
    if $cc $flags -std=c11 -Werror=incompatible-pointer-types -c "$work/$1.c" -o "$work/$1.o" \
        > "$work/$1.log" 2>&1; then
        echo "FAIL: $1 compiled"
        fails=$((fails + 1))
    elif ! grep -Eq -- "$2" "$work/$1.log"; then
        echo "FAIL: $1 did not say '$2':"
        cat "$work/$1.log"
        fails=$((fails + 1))
    else
        echo "ok: $1 is refused ($2)"
    fi
}

expect_error arch_callback_in_attack "no member named .build|.build. does not refer to any field" <<'C'
#include <robusta/plugin.h>
static rb_status build(rb_graph *g, rb_node *in, const rb_params *p, rb_node **out)
{ (void)g; (void)in; (void)p; *out = NULL; return RB_OK; }
RB_ATTACK_PLUGIN("wrong", "1.0", "an arch callback in an attack table", NULL, .build = build);
C

expect_error wrong_callback_type "incompatible-(function-)?pointer-types" <<'C'
#include <robusta/plugin.h>
static rb_status step(void *self, const rb_params *p) { (void)self; (void)p; return RB_OK; }
RB_ATTACK_PLUGIN("wrong", "1.0", "a step of the wrong type", NULL, .step = step, .project = NULL);
C

expect_error abi1_macro "RB_PLUGIN_DEFINE is gone since plugin ABI 2" <<'C'
#include <robusta/plugin.h>
static const rb_attack_ops ops = {0};
RB_PLUGIN_DEFINE(RB_PLUGIN_ATTACK, "old", "1.0", "ABI 1's macro", NULL, &ops);
C

cat > "$work/good.c" <<'C'
#include <robusta/plugin.h>
static rb_status build(rb_graph *g, rb_node *in, const rb_params *p, rb_node **out)
{ (void)g; (void)in; (void)p; *out = NULL; return RB_OK; }
RB_ARCH_PLUGIN("good", "1.0", "a good arch", NULL, .build = build);
_Static_assert(sizeof(rb_arch_ops) != sizeof(rb_attack_ops), "the sizes tell the kinds apart");
int good_ok(void);
int good_ok(void)
{
    return rb_plugin_descriptor.ops_size == sizeof(rb_arch_ops) && rb_plugin_descriptor.kind == RB_PLUGIN_ARCH &&
           rb_plugin_descriptor.ops.header->kind == RB_PLUGIN_ARCH && rb_plugin_descriptor.ops.arch->build != NULL;
}
int main(void) { return good_ok() ? 0 : 1; }
C
if $cc $flags -std=c11 -Wall -Wextra -Werror "$work/good.c" -o "$work/good" > "$work/good.log" 2>&1 &&
    "$work/good"; then
    echo "ok: a good plugin compiles and records its own table's kind and size"
else
    echo "FAIL: a good plugin:"
    cat "$work/good.log"
    fails=$((fails + 1))
fi
exit $((fails > 0))
