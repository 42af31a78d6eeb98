/* AutoAttack's versions (Croce & Hein, ICML 2020; autoattack's
 * AutoAttack.set_version) as ensembles of robusta's attack plugins, each
 * with the reference's settings for the Linf and L2 threat models:
 *   standard: apgd-ce (100 steps, 1 restart), apgd-t (100 steps, 9 target
 *             classes), fab-t (100 steps, 9 targets), square (5,000 queries,
 *             p_init 0.8);
 *   rand:     apgd-ce and apgd-dlr (100 steps, 1 restart), for randomized
 *             defenses, whose gradients the reference averages over 20
 *             draws (EOT); a robusta model evaluates deterministically, so
 *             those 20 gradients are one and each runs once;
 *   plus:     apgd-ce and apgd-dlr (5 restarts each), fab (untargeted,
 *             5 restarts), square, apgd-t, fab-t (1 restart each).
 * Targets are at most the model's classes - 1; the targeted DLR loss needs
 * 4 classes. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <robusta/autoattack.h>
#include <robusta/suggest.h>

#define MAX_STAGES 6

struct rb_autoattack {
    rb_attack_stage stages[MAX_STAGES];
    rb_params *params[MAX_STAGES];
    size_t count;
    char version[16];
};

static rb_status add_stage(rb_autoattack *aa, const rb_registry *reg, const char *name, const char *const *settings,
                           int restarts, uint64_t seed)
{
    const rb_plugin *p;
    rb_params *params;
    rb_status s = rb_registry_find(reg, RB_PLUGIN_ATTACK, name, &p);
    if (s != RB_OK)
        return rb_error_prefix("AutoAttack needs the attack plugin %s: ", name);
    if ((s = rb_params_create(&params, p->params)) != RB_OK)
        return s;
    for (size_t i = 0; settings[i] != NULL; i += 2)
        if ((s = rb_params_set(params, settings[i], settings[i + 1])) != RB_OK) {
            rb_params_destroy(params);
            return rb_error_prefix("AutoAttack's %s --%s %s: ", name, settings[i], settings[i + 1]);
        }
    aa->params[aa->count] = params;
    aa->stages[aa->count].plugin = p;
    aa->stages[aa->count].params = params;
    aa->stages[aa->count].options = rb_attack_options_default();
    aa->stages[aa->count].options.restarts = restarts;
    aa->stages[aa->count].options.seed = seed;
    aa->count++;
    return RB_OK;
}

rb_status rb_autoattack_create(rb_autoattack **out, const rb_registry *registry, const char *version,
                               const char *norm, double eps, int64_t classes, uint64_t seed)
{
    rb_autoattack *aa;
    char eps_text[40], targets[24];
    rb_status s = RB_OK;
    if (out == NULL || registry == NULL || version == NULL || norm == NULL)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "rb_autoattack_create: registry, version and norm are required");
    *out = NULL;
    if (strcmp(norm, "linf") != 0 && strcmp(norm, "l2") != 0)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "AutoAttack: unknown norm '%s'; use linf or l2", norm);
    if (!(eps >= 0) || eps > 1e6)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT, "AutoAttack: eps must be a number >= 0, not %g", eps);
    if (strcmp(version, "standard") != 0 && strcmp(version, "rand") != 0 && strcmp(version, "plus") != 0) {
        static const char *const versions[] = {"standard", "rand", "plus"};
        const char *near = rb_suggest(version, versions, 3);
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "AutoAttack: unknown version '%s'%s%s%s; use standard, plus or rand",
                            version, near ? " (did you mean " : "", near ? near : "", near ? "?)" : "");
    }
    if (classes < 4)
        return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                            "AutoAttack needs a classifier of at least 4 classes (its DLR losses read the 3rd and "
                            "4th largest logits); this model has %lld",
                            (long long)classes);
    if ((aa = calloc(1, sizeof *aa)) == NULL)
        return rb_error_set(RB_ERR_OUT_OF_MEMORY, "AutoAttack: out of memory");
    snprintf(aa->version, sizeof aa->version, "%s", version);
    snprintf(eps_text, sizeof eps_text, "%.17g", eps);
    snprintf(targets, sizeof targets, "%lld", (long long)(classes - 1 < 9 ? classes - 1 : 9));
    if (strcmp(version, "standard") == 0) {
        const char *const apgd[] = {"norm", norm, "eps", eps_text, "steps", "100", NULL};
        const char *const apgd_t[] = {"norm", norm, "eps", eps_text, "steps", "100", "target-classes", targets, NULL};
        const char *const fab_t[] = {"norm", norm, "eps", eps_text, "steps", "100", "target-classes", targets, NULL};
        const char *const square[] = {"norm", norm, "eps", eps_text, "queries", "5000", "p-init", "0.8", NULL};
        if ((s = add_stage(aa, registry, "apgd-ce", apgd, 1, seed)) == RB_OK &&
            (s = add_stage(aa, registry, "apgd-t", apgd_t, 1, seed)) == RB_OK &&
            (s = add_stage(aa, registry, "fab-t", fab_t, 1, seed)) == RB_OK)
            s = add_stage(aa, registry, "square", square, 1, seed);
    } else if (strcmp(version, "plus") == 0) {
        const char *const apgd[] = {"norm", norm, "eps", eps_text, "steps", "100", NULL};
        const char *const fab[] = {"norm", norm, "eps", eps_text, "steps", "100", NULL};
        const char *const square[] = {"norm", norm, "eps", eps_text, "queries", "5000", "p-init", "0.8", NULL};
        const char *const apgd_t[] = {"norm", norm, "eps", eps_text, "steps", "100", "target-classes", targets, NULL};
        const char *const fab_t[] = {"norm", norm, "eps", eps_text, "steps", "100", "target-classes", targets, NULL};
        if ((s = add_stage(aa, registry, "apgd-ce", apgd, 5, seed)) == RB_OK &&
            (s = add_stage(aa, registry, "apgd-dlr", apgd, 5, seed)) == RB_OK &&
            (s = add_stage(aa, registry, "fab", fab, 5, seed)) == RB_OK &&
            (s = add_stage(aa, registry, "square", square, 1, seed)) == RB_OK &&
            (s = add_stage(aa, registry, "apgd-t", apgd_t, 1, seed)) == RB_OK)
            s = add_stage(aa, registry, "fab-t", fab_t, 1, seed);
    } else {
        const char *const apgd[] = {"norm", norm, "eps", eps_text, "steps", "100", NULL};
        if ((s = add_stage(aa, registry, "apgd-ce", apgd, 1, seed)) == RB_OK)
            s = add_stage(aa, registry, "apgd-dlr", apgd, 1, seed);
    }
    if (s != RB_OK) {
        rb_autoattack_destroy(aa);
        return s;
    }
    *out = aa;
    return RB_OK;
}

void rb_autoattack_destroy(rb_autoattack *aa)
{
    if (aa == NULL)
        return;
    for (size_t i = 0; i < aa->count; i++)
        rb_params_destroy(aa->params[i]);
    free(aa);
}

const rb_attack_stage *rb_autoattack_stages(const rb_autoattack *aa, size_t *count)
{
    if (count != NULL)
        *count = aa != NULL ? aa->count : 0;
    return aa != NULL ? aa->stages : NULL;
}

const char *rb_autoattack_version(const rb_autoattack *aa)
{
    return aa != NULL ? aa->version : NULL;
}

const char *rb_autoattack_norm_of(const char *attack, const char *norm)
{
    if (norm != NULL)
        return strcmp(norm, "l2") == 0 ? "l2" : strcmp(norm, "linf") == 0 ? "linf" : NULL;
    if (attack == NULL)
        return NULL;
    return strcmp(attack, "pgd-l2") == 0 ? "l2" : strcmp(attack, "pgd-linf") == 0 ? "linf" : NULL;
}
