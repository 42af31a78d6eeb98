/* Helpers for attack plugins (robusta/plugin.h). The PGD loop that drives
 * step-based attacks comes with the engine. */
#include "config.h"

#include <robusta/plugin.h>

rb_status rb_attack_batch_view(const rb_attack_batch *b, const char *who, bool need_grad,
                               rb_attack_view *view)
{
    const rb_tensor *tensors[3] = {b->x_adv, b->x_clean, b->grad};
    const char *names[3] = {"x_adv", "x_clean", "grad"};

    for (int i = 0; i < (need_grad ? 3 : 2); i++) {
        const rb_tensor *t = tensors[i];
        if (t == NULL)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT, "%s: the batch has no %s tensor", who,
                                names[i]);
        if (rb_tensor_dtype(t) != RB_DTYPE_F32 || rb_tensor_ndim(t) < 1)
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "%s: %s must be f32 with a batch dimension (it is %s, %d-d)", who,
                                names[i], rb_dtype_str(rb_tensor_dtype(t)), rb_tensor_ndim(t));
        if (rb_tensor_numel(t) != rb_tensor_numel(b->x_adv) ||
            rb_tensor_dim(t, 0) != rb_tensor_dim(b->x_adv, 0))
            return rb_error_set(RB_ERR_INVALID_ARGUMENT,
                                "%s: %s has %lld values in %lld rows, x_adv %lld in %lld", who,
                                names[i], (long long)rb_tensor_numel(t),
                                (long long)rb_tensor_dim(t, 0),
                                (long long)rb_tensor_numel(b->x_adv),
                                (long long)rb_tensor_dim(b->x_adv, 0));
    }
    view->rows = rb_tensor_dim(b->x_adv, 0);
    view->cols = view->rows > 0 ? rb_tensor_numel(b->x_adv) / view->rows : 0;
    view->x = rb_tensor_data(b->x_adv);
    view->x0 = rb_tensor_cdata(b->x_clean);
    view->grad = need_grad ? rb_tensor_cdata(b->grad) : NULL;
    return RB_OK;
}
