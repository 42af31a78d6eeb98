/* Attack plugins as the plugin tests load them: through the registry from
 * RB_PLUGIN_PATH, as users load them, with a parameter set of their own. */
#ifndef RB_ATTACKUTIL_H
#define RB_ATTACKUTIL_H

#include <check.h>

#include <robusta/robusta.h>

typedef struct test_attack {
    const rb_attack_ops *ops;
    rb_params *params;
} test_attack;

/* The installed-or-built plugins (rb_registry_load_default). */
static inline rb_registry *test_attack_registry(void)
{
    rb_registry *reg;
    ck_assert_int_eq(rb_registry_create(&reg), RB_OK);
    ck_assert_int_eq(rb_registry_load_default(reg), RB_OK);
    return reg;
}

static inline test_attack test_attack_open(const rb_registry *reg, const char *name)
{
    const rb_plugin *p;
    test_attack a;
    ck_assert_msg(rb_registry_find(reg, RB_PLUGIN_ATTACK, name, &p) == RB_OK, "%s", rb_last_error());
    a.ops = p->ops.attack;
    ck_assert_int_eq(rb_params_create(&a.params, p->params), RB_OK);
    return a;
}

static inline void test_attack_set(test_attack *a, const char *name, const char *value)
{
    ck_assert_msg(rb_params_set(a->params, name, value) == RB_OK, "%s", rb_last_error());
}

#endif /* RB_ATTACKUTIL_H */
