/* status.c: error reporting and size arithmetic for the core. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "esmm_core.h"

const char *const esmm_act_names[ESMM_ACT_COUNT] = {
	"none", "relu", "lrelu", "sigmoid", "tanh", "elu", "gelu", "swish"
};

esmm_code
esmm_fail(esmm_status *st, esmm_code code, const char *fmt,...)
{
	if (st != NULL)
	{
		va_list		ap;

		st->code = code;
		va_start(ap, fmt);
		vsnprintf(st->msg, sizeof(st->msg), fmt, ap);
		va_end(ap);
	}
	return code;
}

void
esmm_status_clear(esmm_status *st)
{
	st->code = ESMM_OK;
	st->msg[0] = '\0';
}

int
esmm_size_mul(size_t a, size_t b, size_t *out)
{
	if (a != 0 && b > (size_t) -1 / a)
		return 0;
	*out = a * b;
	return 1;
}

int
esmm_size_add(size_t a, size_t b, size_t *out)
{
	if (b > (size_t) -1 - a)
		return 0;
	*out = a + b;
	return 1;
}

uint32_t
esmm_feature_width(const esmm_feature *f)
{
	if (f->kind == ESMM_FEAT_NUMERIC)
		return f->null_indicator ? 2 : 1;
	return f->dim;
}
