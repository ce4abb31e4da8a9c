/*
 * test_layers.c: the kernels of layers.c against naive twins, central
 * differences, hand-computed values and long double references.
 *
 * Test data come from a generator of this file's own (xorshift64), so that
 * a broken esmm_rng cannot quietly make the other tests trivial.
 */
#include <float.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "layers.h"

/* Central differences: step on a float parameter, tolerances of a check */
#define FD_EPS 1e-3
#define FD_RTOL 1e-2
#define FD_ATOL_FLOAT 1e-3		/* the loss went through float outputs */
#define FD_ATOL_DOUBLE 1e-6		/* the loss is computed in double */
#define GRAD_FLOOR 1e-8			/* below this, a gradient counts as zero */

/* -------------------------------------------------------------- helpers */

static uint64_t data_rng = UINT64_C(88172645463325252);

static double
tr_uniform(void)
{
	data_rng ^= data_rng << 13;
	data_rng ^= data_rng >> 7;
	data_rng ^= data_rng << 17;
	return (data_rng >> 11) * (1.0 / 9007199254740992.0);
}

static void
fill(float *v, size_t n, double lo, double hi)
{
	for (size_t i = 0; i < n; i++)
		v[i] = (float) (lo + (hi - lo) * tr_uniform());
}

/* Like fill, but |v| >= gap, to stay off the kinks of relu and lrelu. */
static void
fill_off_zero(float *v, size_t n, double lo, double hi, double gap)
{
	for (size_t i = 0; i < n; i++)
		do
			v[i] = (float) (lo + (hi - lo) * tr_uniform());
		while (fabs(v[i]) < gap);
}

static void
fill_value(float *v, size_t n, float value)
{
	for (size_t i = 0; i < n; i++)
		v[i] = value;
}

static double
dot(const float *a, const float *b, size_t n)
{
	double		s = 0.0;

	for (size_t i = 0; i < n; i++)
		s += (double) a[i] * b[i];
	return s;
}

/* max |v|, infinite when v holds a NaN, so that "<= tol" then fails */
static double
max_abs(const float *v, size_t n)
{
	double		m = 0.0;

	for (size_t i = 0; i < n; i++)
	{
		double		a = fabs(v[i]);

		if (isnan(a))
			return INFINITY;
		if (a > m)
			m = a;
	}
	return m;
}

/* max |a-b|, infinite when either holds a NaN */
static double
max_diff(const float *a, const float *b, size_t n)
{
	double		m = 0.0;

	for (size_t i = 0; i < n; i++)
	{
		double		d = fabs((double) a[i] - b[i]);

		if (isnan(d))
			return INFINITY;
		if (d > m)
			m = d;
	}
	return m;
}

static int
all_finite(const float *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isfinite(v[i]))
			return 0;
	return 1;
}

typedef double (*loss_fn) (void *ctx);

/*
 * Compares analytic[i] with the central difference of f in param[i], over
 * all n parameters, and checks that the analytic gradient is not all zero
 * (a backward that writes nothing would otherwise agree with a loss that
 * does not depend on its parameter).  The step is the one the float
 * parameter really took.
 */
static void
grad_check(const char *what, float *param, size_t n, const float *analytic,
		   loss_fn f, void *ctx, double atol)
{
	double		worst = 0.0;
	size_t		worst_i = 0;
	double		worst_num = 0.0;
	int			bad = 0;

	for (size_t i = 0; i < n; i++)
	{
		float		v = param[i];
		float		vp = (float) (v + FD_EPS);
		float		vm = (float) (v - FD_EPS);
		double		lp;
		double		lm;
		double		num;
		double		ratio;

		param[i] = vp;
		lp = f(ctx);
		param[i] = vm;
		lm = f(ctx);
		param[i] = v;
		num = (lp - lm) / ((double) vp - (double) vm);
		if (!isfinite(num) || !isfinite(analytic[i]))
		{
			bad++;
			continue;
		}
		ratio = fabs(num - analytic[i]) /
			(atol + FD_RTOL * fmax(fabs(num), fabs(analytic[i])));
		if (ratio > worst)
		{
			worst = ratio;
			worst_i = i;
			worst_num = num;
		}
	}
	CHECK(bad == 0 && worst <= 1.0,
		  "%s: %d non-finite; worst d[%zu]: analytic %.9g, numeric %.9g",
		  what, bad, worst_i, (double) analytic[worst_i], worst_num);
	CHECK(max_abs(analytic, n) > GRAD_FLOOR,
		  "%s: the analytic gradient is all zero", what);
}

/* --------------------------------------------- 1. sgemm vs naive kernels */

#define AG_B 64
#define AG_IN 33
#define AG_OUT 32

static void
test_dense_agreement(void)
{
	/* B = 1 takes the sgemv path of esmm_dense_forward */
	static const int Bs[] = {1, 3, 17, 64};
	static const int ins[] = {1, 5, 13, 33};
	static const int outs[] = {1, 7, 32};

	/* the largest of each shape: x[B,in], W[in,out], y/dy[B,out] ... */
	static float x[AG_B * AG_IN],
				W[AG_IN * AG_OUT],
				b[AG_OUT],
				dy[AG_B * AG_OUT],
				y1[AG_B * AG_OUT],
				y2[AG_B * AG_OUT],
				dx1[AG_B * AG_IN],
				dx2[AG_B * AG_IN],
				dW1[AG_IN * AG_OUT],
				dW2[AG_IN * AG_OUT],
				Wt[AG_IN * AG_OUT],
				db1[AG_OUT],
				db2[AG_OUT];

	for (size_t ib = 0; ib < sizeof(Bs) / sizeof(Bs[0]); ib++)
		for (size_t ii = 0; ii < sizeof(ins) / sizeof(ins[0]); ii++)
			for (size_t io = 0; io < sizeof(outs) / sizeof(outs[0]); io++)
			{
				int			B = Bs[ib],
							in = ins[ii],
							out = outs[io];
				size_t		nx = (size_t) B * in,
							nw = (size_t) in * out,
							ny = (size_t) B * out;
				double		err,
							scale;

				fill(x, nx, -1, 1);
				fill(W, nw, -1, 1);
				fill(b, out, -1, 1);
				fill(dy, ny, -1, 1);

				/* forward, with and without bias; y starts as NaN */
				fill_value(y1, ny, NAN);
				fill_value(y2, ny, NAN);
				esmm_dense_forward(y1, x, W, b, B, in, out);
				esmm_dense_forward_naive(y2, x, W, b, B, in, out);
				scale = 1.0 + max_abs(y2, ny);
				err = max_diff(y1, y2, ny) / scale;
				fill_value(y1, ny, NAN);
				fill_value(y2, ny, NAN);
				esmm_dense_forward(y1, x, W, NULL, B, in, out);
				esmm_dense_forward_naive(y2, x, W, NULL, B, in, out);
				err = fmax(err, max_diff(y1, y2, ny) / (1.0 + max_abs(y2, ny)));
				CHECK(err <= 1e-4, "dense forward B=%d in=%d out=%d: err %.3g",
					  B, in, out, err);

				/* backward: dW, db start equal and nonzero; dx starts NaN */
				fill(dW1, nw, -1, 1);
				memcpy(dW2, dW1, nw * sizeof(float));
				fill(db1, out, -1, 1);
				memcpy(db2, db1, out * sizeof(float));
				fill_value(dx1, nx, NAN);
				fill_value(dx2, nx, NAN);
				esmm_dense_backward(dx1, dW1, db1, dy, x, W, NULL, B, in, out);
				esmm_dense_backward_naive(dx2, dW2, db2, dy, x, W, B, in, out);
				err = max_diff(dx1, dx2, nx) / (1.0 + max_abs(dx2, nx));
				err = fmax(err, max_diff(dW1, dW2, nw) / (1.0 + max_abs(dW2, nw)));
				err = fmax(err, max_diff(db1, db2, out) / (1.0 + max_abs(db2, out)));
				CHECK(err <= 1e-4, "dense backward B=%d in=%d out=%d: err %.3g",
					  B, in, out, err);

				/* the path with the kernel transposed: dx as the twin's */
				esmm_transpose(Wt, W, in, out);
				for (int i = 0; i < in; i++)
					for (int o = 0; o < out; o++)
						if (Wt[(size_t) o * in + i] != W[(size_t) i * out + o])
							err = INFINITY;
				fill_value(dx1, nx, NAN);
				esmm_dense_backward(dx1, dW1, NULL, dy, x, W, Wt, B, in, out);
				err = fmax(err, max_diff(dx1, dx2, nx) / (1.0 + max_abs(dx2, nx)));
				CHECK(err <= 1e-4, "dense backward with W transposed B=%d in=%d out=%d: err %.3g",
					  B, in, out, err);
			}
}

/* dW and db accumulate across calls; dx is overwritten; NULLs are allowed. */
static void
test_dense_accumulation(void)
{
	enum
	{
		B = 5, IN = 4, OUT = 3
	};
	float		x[B * IN],
				W[IN * OUT],
				dy[B * OUT];
	float		dx[B * IN],
				dx_ref[B * IN];
	float		g_W[IN * OUT],
				g_b[OUT];		/* the gradient from zero, naive path */
	float		dW[IN * OUT],
				db[OUT],
				dW0[IN * OUT],
				db0[OUT];
	float		expect_W[IN * OUT],
				expect_b[OUT];

	fill(x, B * IN, -1, 1);
	fill(W, IN * OUT, -1, 1);
	fill(dy, B * OUT, -1, 1);
	memset(g_W, 0, sizeof(g_W));
	memset(g_b, 0, sizeof(g_b));
	esmm_dense_backward_naive(dx_ref, g_W, g_b, dy, x, W, B, IN, OUT);

	for (int naive = 0; naive < 2; naive++)
	{
		fill(dW0, IN * OUT, -2, 2);
		fill(db0, OUT, -2, 2);
		memcpy(dW, dW0, sizeof(dW));
		memcpy(db, db0, sizeof(db));
		fill_value(dx, B * IN, 7.0f);
		for (int call = 0; call < 2; call++)
		{
			if (naive)
				esmm_dense_backward_naive(dx, dW, db, dy, x, W, B, IN, OUT);
			else
				esmm_dense_backward(dx, dW, db, dy, x, W, NULL, B, IN, OUT);
		}
		for (int i = 0; i < IN * OUT; i++)
			expect_W[i] = dW0[i] + 2.0f * g_W[i];
		for (int i = 0; i < OUT; i++)
			expect_b[i] = db0[i] + 2.0f * g_b[i];
		CHECK(max_diff(dW, expect_W, IN * OUT) <= 1e-5,
			  "dense%s: dW does not accumulate", naive ? " naive" : "");
		CHECK(max_diff(db, expect_b, OUT) <= 1e-5,
			  "dense%s: db does not accumulate", naive ? " naive" : "");
		CHECK(max_diff(dx, dx_ref, B * IN) <= 1e-5,
			  "dense%s: dx is not overwritten", naive ? " naive" : "");

		/* without db and dx, dW alone moves */
		memcpy(dW, dW0, sizeof(dW));
		if (naive)
			esmm_dense_backward_naive(NULL, dW, NULL, dy, x, W, B, IN, OUT);
		else
			esmm_dense_backward(NULL, dW, NULL, dy, x, W, NULL, B, IN, OUT);
		for (int i = 0; i < IN * OUT; i++)
			expect_W[i] = dW0[i] + g_W[i];
		CHECK(max_diff(dW, expect_W, IN * OUT) <= 1e-5,
			  "dense%s: dW with dx = db = NULL", naive ? " naive" : "");
	}
}

/* ------------------------------------------------------ 7. hand values */

static void
test_dense_by_hand(void)
{
	const float x[4] = {1, 2, 3, 4};	/* [2,2] */
	const float W[4] = {0.5f, -1, 2, 0.25f};	/* [2,2] */
	const float b[2] = {0.1f, -0.2f};
	const float dy[4] = {1, 0, 0, 1};
	const float y_want[4] = {4.6f, -0.7f, 9.6f, -2.2f};
	const float dW_want[4] = {1, 3, 2, 4};
	const float db_want[2] = {1, 1};
	const float dx_want[4] = {0.5f, 2, -1, 0.25f};
	const float bias[3] = {1, 2, 3};

	for (int naive = 0; naive < 2; naive++)
	{
		float		y[4],
					dx[4],
					dW[4] = {0},
					db[2] = {0};
		const char *k = naive ? "naive" : "sgemm";

		if (naive)
		{
			esmm_dense_forward_naive(y, x, W, b, 2, 2, 2);
			esmm_dense_backward_naive(dx, dW, db, dy, x, W, 2, 2, 2);
		}
		else
		{
			esmm_dense_forward(y, x, W, b, 2, 2, 2);
			esmm_dense_backward(dx, dW, db, dy, x, W, NULL, 2, 2, 2);
		}
		CHECK(max_diff(y, y_want, 4) <= 1e-6, "%s: 2x2 forward", k);
		CHECK(max_diff(dW, dW_want, 4) <= 1e-6, "%s: 2x2 dW", k);
		CHECK(max_diff(db, db_want, 2) <= 1e-6, "%s: 2x2 db", k);
		CHECK(max_diff(dx, dx_want, 4) <= 1e-6, "%s: 2x2 dx", k);
	}

	/* in = 0: y is the bias alone (sgemm would reject the empty product) */
	{
		float		y[6];
		const float want[6] = {1, 2, 3, 1, 2, 3};

		fill_value(y, 6, NAN);
		esmm_dense_forward(y, x, W, bias, 2, 0, 3);
		CHECK(max_diff(y, want, 6) == 0.0, "dense forward with in = 0");
	}
}

typedef struct
{
	esmm_act	act;
	float		x;
	double		y;				/* act(x) */
	double		d;				/* act'(x) */
} act_point;

static void
test_act_by_hand(void)
{
	static const act_point pts[] = {
		{ESMM_ACT_NONE, -1.5f, -1.5, 1.0},
		{ESMM_ACT_RELU, -1.0f, 0.0, 0.0},
		{ESMM_ACT_RELU, 2.0f, 2.0, 1.0},
		{ESMM_ACT_LRELU, -1.0f, -0.2, 0.2},
		{ESMM_ACT_LRELU, 2.0f, 2.0, 1.0},
		{ESMM_ACT_SIGMOID, 0.0f, 0.5, 0.25},
		{ESMM_ACT_SIGMOID, 2.0f, 0.8807970780, 0.1049935854},
		{ESMM_ACT_SIGMOID, -2.0f, 0.1192029220, 0.1049935854},
		{ESMM_ACT_TANH, 1.0f, 0.7615941560, 0.4199743416},
		{ESMM_ACT_TANH, -0.5f, -0.4621171573, 0.7864477329},
		{ESMM_ACT_ELU, -1.0f, -0.6321205588, 0.3678794412},
		{ESMM_ACT_ELU, 2.0f, 2.0, 1.0},
		{ESMM_ACT_GELU, 1.0f, 0.8413447461, 1.0833154706},
		{ESMM_ACT_GELU, -1.0f, -0.1586552539, -0.0833154706},
		{ESMM_ACT_SWISH, 1.0f, 0.7310585786, 0.9276705119},
		{ESMM_ACT_SWISH, -1.0f, -0.2689414214, 0.0723294881},
	};

	for (size_t i = 0; i < sizeof(pts) / sizeof(pts[0]); i++)
	{
		const act_point *p = &pts[i];
		float		y;
		float		dx;
		float		one = 1.0f;
		char		what[64];

		esmm_act_forward(&y, &p->x, 1, p->act);
		esmm_act_backward(&dx, &one, &p->x, &y, 1, p->act);
		snprintf(what, sizeof(what), "%s(%g)", esmm_act_names[p->act], p->x);
		CHECK_NEAR(y, p->y, 1e-6, what);
		snprintf(what, sizeof(what), "%s'(%g)", esmm_act_names[p->act], p->x);
		CHECK_NEAR(dx, p->d, 1e-6, what);
	}
}

/* Every activation stays finite, with the right limits, at +-1000. */
static void
test_act_extremes(void)
{
	const float x[2] = {-1000.0f, 1000.0f};
	/* act(-1000), act(1000), act'(-1000), act'(1000) */
	static const double want[ESMM_ACT_COUNT][4] = {
		[ESMM_ACT_NONE] = {-1000, 1000, 1, 1},
		[ESMM_ACT_RELU] = {0, 1000, 0, 1},
		[ESMM_ACT_LRELU] = {-200, 1000, 0.2, 1},
		[ESMM_ACT_SIGMOID] = {0, 1, 0, 0},
		[ESMM_ACT_TANH] = {-1, 1, 0, 0},
		[ESMM_ACT_ELU] = {-1, 1000, 0, 1},
		[ESMM_ACT_GELU] = {0, 1000, 0, 1},
		[ESMM_ACT_SWISH] = {0, 1000, 0, 1},
	};

	for (int a = 0; a < ESMM_ACT_COUNT; a++)
	{
		float		y[2],
					dx[2];
		const float ones[2] = {1, 1};

		esmm_act_forward(y, x, 2, (esmm_act) a);
		esmm_act_backward(dx, ones, x, y, 2, (esmm_act) a);
		CHECK(all_finite(y, 2) && all_finite(dx, 2) &&
			  fabs(y[0] - want[a][0]) <= 1e-4 &&
			  fabs(y[1] - want[a][1]) <= 1e-4 &&
			  fabs(dx[0] - want[a][2]) <= 1e-6 &&
			  fabs(dx[1] - want[a][3]) <= 1e-6,
			  "%s at +-1000: y %g %g, dx %g %g", esmm_act_names[a],
			  y[0], y[1], dx[0], dx[1]);
	}
}

/* ------------------------------------------------ 2. gradient checks */

typedef struct
{
	float	   *x,
			   *W,
			   *b,
			   *y,
			   *r;
	int			B,
				in,
				out;
} dense_ctx;

static double
dense_loss(void *p)
{
	dense_ctx  *c = p;

	esmm_dense_forward(c->y, c->x, c->W, c->b, c->B, c->in, c->out);
	return dot(c->y, c->r, (size_t) c->B * c->out);
}

static void
test_dense_grad(void)
{
	enum
	{
		B = 3, IN = 4, OUT = 5
	};
	float		x[B * IN],
				W[IN * OUT],
				b[OUT],
				y[B * OUT],
				r[B * OUT];
	float		dx[B * IN],
				dW[IN * OUT] = {0},
				db[OUT] = {0};
	dense_ctx	c = {x, W, b, y, r, B, IN, OUT};

	fill(x, B * IN, -1, 1);
	fill(W, IN * OUT, -1, 1);
	fill(b, OUT, -1, 1);
	fill(r, B * OUT, -1, 1);
	esmm_dense_backward(dx, dW, db, r, x, W, NULL, B, IN, OUT);
	grad_check("dense dx", x, B * IN, dx, dense_loss, &c, FD_ATOL_FLOAT);
	grad_check("dense dW", W, IN * OUT, dW, dense_loss, &c, FD_ATOL_FLOAT);
	grad_check("dense db", b, OUT, db, dense_loss, &c, FD_ATOL_FLOAT);
}

typedef struct
{
	float	   *x,
			   *y,
			   *r;
	size_t		n;
	esmm_act	act;
} act_ctx;

static double
act_loss(void *p)
{
	act_ctx    *c = p;

	esmm_act_forward(c->y, c->x, c->n, c->act);
	return dot(c->y, c->r, c->n);
}

static void
test_act_grad(void)
{
	enum
	{
		N = 24
	};
	float		x[N],
				y[N],
				r[N],
				dx[N],
				dx2[N],
				tmp[N];
	char		what[64];

	for (int a = 0; a < ESMM_ACT_COUNT; a++)
	{
		act_ctx		c = {x, y, r, N, (esmm_act) a};
		int			needs_x = a == ESMM_ACT_GELU || a == ESMM_ACT_SWISH;

		fill_off_zero(x, N, -3, 3, 0.05);
		fill(r, N, -1, 1);
		esmm_act_forward(y, x, N, (esmm_act) a);
		esmm_act_backward(dx, r, x, y, N, (esmm_act) a);
		snprintf(what, sizeof(what), "act %s", esmm_act_names[a]);
		grad_check(what, x, N, dx, act_loss, &c, FD_ATOL_FLOAT);
		/* the check left y from a perturbed x */
		esmm_act_forward(y, x, N, (esmm_act) a);

		/* the documented NULLs: y may always be left out, x when not needed */
		esmm_act_backward(dx2, r, x, NULL, N, (esmm_act) a);
		CHECK(max_diff(dx, dx2, N) <= 1e-6, "%s backward with y = NULL",
			  esmm_act_names[a]);
		if (!needs_x)
		{
			esmm_act_backward(dx2, r, NULL, y, N, (esmm_act) a);
			CHECK(max_diff(dx, dx2, N) <= 1e-6, "%s backward with x = NULL",
				  esmm_act_names[a]);
		}

		/* in place: y == x forward, dx == dy backward */
		memcpy(tmp, x, sizeof(tmp));
		esmm_act_forward(tmp, tmp, N, (esmm_act) a);
		CHECK(max_diff(tmp, y, N) == 0.0, "%s forward in place",
			  esmm_act_names[a]);
		memcpy(tmp, r, sizeof(tmp));
		esmm_act_backward(tmp, tmp, x, y, N, (esmm_act) a);
		CHECK(max_diff(tmp, dx, N) == 0.0, "%s backward in place",
			  esmm_act_names[a]);
	}
}

typedef struct
{
	float	   *x,
			   *gamma,
			   *beta,
			   *y,
			   *xhat,
			   *inv_std,
			   *rm,
			   *rv,
			   *r;
	int			B,
				n;
} bn_ctx;

static double
bn_loss(void *p)
{
	bn_ctx	   *c = p;

	esmm_bn_forward_train(c->y, c->xhat, c->inv_std, c->rm, c->rv,
						  c->x, c->gamma, c->beta, c->B, c->n);
	return dot(c->y, c->r, (size_t) c->B * c->n);
}

static void
test_bn_grad(void)
{
	enum
	{
		B = 6, N = 4
	};
	float		x[B * N],
				gamma[N],
				beta[N],
				y[B * N],
				xhat[B * N],
				inv_std[N],
				rm[N] = {0},
				rv[N] = {0},
				r[B * N];
	float		dx[B * N],
				dgamma[N],
				dbeta[N],
				g2[N],
				b2[N],
				want_g[N],
				want_b[N];
	bn_ctx		c = {x, gamma, beta, y, xhat, inv_std, rm, rv, r, B, N};

	fill(x, B * N, -2, 2);
	fill(gamma, N, 0.5, 1.5);
	fill(beta, N, -1, 1);
	fill(r, B * N, -1, 1);
	bn_loss(&c);
	memset(dgamma, 0, sizeof(dgamma));
	memset(dbeta, 0, sizeof(dbeta));
	esmm_bn_backward(dx, dgamma, dbeta, r, xhat, inv_std, gamma, B, N);
	grad_check("bn dx", x, B * N, dx, bn_loss, &c, FD_ATOL_FLOAT);
	grad_check("bn dgamma", gamma, N, dgamma, bn_loss, &c, FD_ATOL_FLOAT);
	grad_check("bn dbeta", beta, N, dbeta, bn_loss, &c, FD_ATOL_FLOAT);

	/* the parameter gradients accumulate */
	fill(g2, N, -1, 1);
	fill(b2, N, -1, 1);
	for (int j = 0; j < N; j++)
	{
		want_g[j] = g2[j] + dgamma[j];
		want_b[j] = b2[j] + dbeta[j];
	}
	bn_loss(&c);
	esmm_bn_backward(dx, g2, b2, r, xhat, inv_std, gamma, B, N);
	CHECK(max_diff(g2, want_g, N) <= 1e-5 && max_diff(b2, want_b, N) <= 1e-5,
		  "bn: dgamma and dbeta accumulate");
}

typedef struct
{
	float	   *x,
			   *y,
			   *mask,
			   *r;
	size_t		n;
	float		rate;
	uint64_t	seed;
} dropout_ctx;

/* Restarts the generator on each call, so that the mask stays fixed. */
static double
dropout_loss(void *p)
{
	dropout_ctx *c = p;
	uint64_t	s = c->seed;

	esmm_dropout_forward(c->y, c->mask, c->x, c->n, c->rate, &s);
	return dot(c->y, c->r, c->n);
}

static void
test_dropout_grad(void)
{
	enum
	{
		N = 40
	};
	float		x[N],
				y[N],
				mask[N],
				r[N],
				dx[N];
	dropout_ctx c = {x, y, mask, r, N, 0.3f, 4242};
	int			zeros = 0;

	fill(x, N, -1, 1);
	fill(r, N, -1, 1);
	dropout_loss(&c);
	for (int i = 0; i < N; i++)
		zeros += mask[i] == 0.0f;
	CHECK(zeros > 0 && zeros < N, "dropout: a 40-mask with %d zeros", zeros);
	esmm_dropout_backward(dx, r, mask, N);
	grad_check("dropout dx", x, N, dx, dropout_loss, &c, FD_ATOL_FLOAT);
}

/* The embedding writes columns [EMB_COL, EMB_COL+dim) of a wider row. */
#define EMB_COL 2
#define EMB_SENTINEL 123.0f

typedef struct
{
	float	   *table,
			   *out,
			   *r;
	const int32_t *ids;
	const uint32_t *offsets;	/* NULL: single-valued */
	int32_t		missing_id;
	int			B,
				dim,
				stride;
} emb_ctx;

static double
emb_loss(void *p)
{
	emb_ctx    *c = p;

	if (c->offsets == NULL)
		esmm_embedding_forward(c->out + EMB_COL, c->ids, c->table, c->B,
							   c->dim, c->stride);
	else
		esmm_embedding_mean_forward(c->out + EMB_COL, c->offsets, c->ids,
									c->table, c->missing_id, c->B, c->dim,
									c->stride);
	/* r is zero outside the embedding's columns */
	return dot(c->out, c->r, (size_t) c->B * c->stride);
}

/* Checks that forward left every column outside its own alone. */
static int
emb_sentinels_kept(const emb_ctx *c)
{
	for (int b = 0; b < c->B; b++)
		for (int j = 0; j < c->stride; j++)
			if ((j < EMB_COL || j >= EMB_COL + c->dim) &&
				c->out[b * c->stride + j] != EMB_SENTINEL)
				return 0;
	return 1;
}

static void
test_embedding_grad(void)
{
	enum
	{
		ROWS = 7, DIM = 3, STRIDE = 8, B = 8, MB = 5
	};
	/* row 4 is never looked up: its gradient must stay 0 */
	const int32_t ids[B] = {0, 2, 2, 5, 0, 3, 2, 1};
	/* mean-pooled lists: {0,1}, {}, {3,3,1}, {5}, {2,0,6,1} */
	const uint32_t offsets[MB + 1] = {0, 2, 2, 5, 6, 10};
	const int32_t mids[10] = {0, 1, 3, 3, 1, 5, 2, 0, 6, 1};
	float		table[ROWS * DIM],
				out[B * STRIDE],
				r[B * STRIDE],
				dtable[ROWS * DIM],
				dtable1[ROWS * DIM],
				want[ROWS * DIM];
	emb_ctx		c = {table, out, r, ids, NULL, 0, B, DIM, STRIDE};

	fill(table, ROWS * DIM, -1, 1);
	fill_value(out, B * STRIDE, EMB_SENTINEL);
	memset(r, 0, sizeof(r));
	for (int b = 0; b < B; b++)
		fill(r + b * STRIDE + EMB_COL, DIM, -1, 1);

	/* single-valued */
	emb_loss(&c);
	CHECK(emb_sentinels_kept(&c), "embedding wrote outside its columns");
	CHECK(out[3 * STRIDE + EMB_COL + 1] == table[5 * DIM + 1],
		  "embedding: out[3][1] is not table[5][1]");
	memset(dtable, 0, sizeof(dtable));
	esmm_embedding_backward(dtable, r + EMB_COL, ids, B, DIM, STRIDE);
	grad_check("embedding dtable", table, ROWS * DIM, dtable, emb_loss, &c,
			   FD_ATOL_FLOAT);
	CHECK(max_abs(dtable + 4 * DIM, DIM) == 0.0,
		  "embedding: an unused row got a gradient");
	/* accumulation: a second call adds the same again */
	memcpy(dtable1, dtable, sizeof(dtable));
	esmm_embedding_backward(dtable, r + EMB_COL, ids, B, DIM, STRIDE);
	for (int i = 0; i < ROWS * DIM; i++)
		want[i] = 2.0f * dtable1[i];
	CHECK(max_diff(dtable, want, ROWS * DIM) <= 1e-6,
		  "embedding: dtable does not accumulate");

	/* mean-pooled, row 6 being the missing id */
	c.offsets = offsets;
	c.ids = mids;
	c.missing_id = 6;
	c.B = MB;
	fill_value(out, B * STRIDE, EMB_SENTINEL);
	emb_loss(&c);
	CHECK(emb_sentinels_kept(&c), "mean embedding wrote outside its columns");
	CHECK_NEAR(out[1 * STRIDE + EMB_COL + 2], table[6 * DIM + 2], 0,
			   "mean embedding: an empty list is the missing row");
	CHECK_NEAR(out[2 * STRIDE + EMB_COL + 0],
			   (2.0 * table[3 * DIM] + table[1 * DIM]) / 3.0, 1e-6,
			   "mean embedding: (2 t3 + t1) / 3");
	CHECK_NEAR(out[3 * STRIDE + EMB_COL + 1], table[5 * DIM + 1], 1e-7,
			   "mean embedding: a list of one");
	memset(dtable, 0, sizeof(dtable));
	esmm_embedding_mean_backward(dtable, r + EMB_COL, offsets, mids, 6, MB,
								 DIM, STRIDE);
	grad_check("mean embedding dtable", table, ROWS * DIM, dtable, emb_loss,
			   &c, FD_ATOL_FLOAT);
	CHECK(max_abs(dtable + 4 * DIM, DIM) == 0.0,
		  "mean embedding: an unused row got a gradient");
	CHECK_NEAR(dtable[6 * DIM], r[1 * STRIDE + EMB_COL] +
			   r[4 * STRIDE + EMB_COL] / 4.0, 1e-6,
			   "mean embedding: the missing row gets weight 1 and 1/4");
	memcpy(dtable1, dtable, sizeof(dtable));
	esmm_embedding_mean_backward(dtable, r + EMB_COL, offsets, mids, 6, MB,
								 DIM, STRIDE);
	for (int i = 0; i < ROWS * DIM; i++)
		want[i] = 2.0f * dtable1[i];
	CHECK(max_diff(dtable, want, ROWS * DIM) <= 1e-6,
		  "mean embedding: dtable does not accumulate");
}

typedef struct
{
	float	   *z,
			   *a,
			   *b,
			   *y;
	int			B;
	int			kind;			/* 0 bce_logits(z), 1 product(a, b), 2 mse(z) */
} loss_ctx;

static double
loss_loss(void *p)
{
	loss_ctx   *c = p;

	switch (c->kind)
	{
		case 0:
			return esmm_bce_logits(NULL, c->z, c->y, c->B, 1.0f);
		case 1:
			return esmm_bce_product_logits(NULL, NULL, c->a, c->b, c->y,
										   c->B, 1.0f);
		default:
			return esmm_mse(NULL, c->z, c->y, c->B, 1.0f);
	}
}

static void
test_loss_grad(void)
{
	enum
	{
		N = 12
	};
	float		z[N],
				y[N],
				dz[N],
				dz2[N];
	float		a[N] = {-30, -30, 30, 30, 30, -30, 0, 2, -3, 5, 0.5f, -1},
				b[N] = {-30, 30, -30, 30, 0.5f, 0, -30, 30, 1, -4, 0.2f, 3},
				da[N],
				db[N];
	loss_ctx	c = {z, a, b, y, N, 0};

	/* bce_logits: labels 0, 1 and soft, logits to +-30 */
	fill(z, N, -5, 5);
	z[0] = 30;
	z[1] = -30;
	z[2] = 30;
	z[3] = -30;
	for (int i = 0; i < N; i++)
		y[i] = i % 3 == 2 ? 0.3f : (float) (i % 3);
	y[0] = 0;
	y[1] = 0;
	y[2] = 1;
	y[3] = 1;
	fill_value(dz, N, NAN);
	esmm_bce_logits(dz, z, y, N, 1.0f);
	grad_check("bce_logits dz", z, N, dz, loss_loss, &c, FD_ATOL_DOUBLE);
	esmm_bce_logits(dz2, z, y, N, 0.25f);
	for (int i = 0; i < N; i++)
		dz[i] *= 0.25f;
	CHECK(max_diff(dz, dz2, N) <= 1e-7, "bce_logits: scale");

	/* bce_product_logits, for y = 0, y = 1 and a soft label */
	c.kind = 1;
	for (int label = 0; label < 3; label++)
	{
		float		yv = label == 2 ? 0.6f : (float) label;
		char		what[64];

		fill_value(y, N, yv);
		memset(da, 0, sizeof(da));
		memset(db, 0, sizeof(db));
		esmm_bce_product_logits(da, db, a, b, y, N, 1.0f);
		snprintf(what, sizeof(what), "bce_product da (y=%g)", yv);
		grad_check(what, a, N, da, loss_loss, &c, FD_ATOL_DOUBLE);
		snprintf(what, sizeof(what), "bce_product db (y=%g)", yv);
		grad_check(what, b, N, db, loss_loss, &c, FD_ATOL_DOUBLE);

		/* accumulation with a scale, and either gradient left out */
		{
			float		g2[N],
						want_a[N],
						want_b[N];

			for (int i = 0; i < N; i++)
			{
				want_a[i] = 1.0f + 0.5f * da[i];
				want_b[i] = 1.0f + 0.5f * db[i];
			}
			fill_value(g2, N, 1.0f);
			esmm_bce_product_logits(g2, NULL, a, b, y, N, 0.5f);
			CHECK(max_diff(g2, want_a, N) <= 1e-6,
				  "bce_product (y=%g): da accumulates scaled", yv);
			fill_value(g2, N, 1.0f);
			esmm_bce_product_logits(NULL, g2, a, b, y, N, 0.5f);
			CHECK(max_diff(g2, want_b, N) <= 1e-6,
				  "bce_product (y=%g): db accumulates scaled", yv);
		}
	}

	/* mse */
	c.kind = 2;
	fill(z, N, -1, 2);
	fill(y, N, 0, 1);
	fill_value(dz, N, NAN);
	esmm_mse(dz, z, y, N, 1.0f);
	grad_check("mse dp", z, N, dz, loss_loss, &c, FD_ATOL_DOUBLE);
	esmm_mse(dz2, z, y, N, -3.0f);
	for (int i = 0; i < N; i++)
		dz[i] *= -3.0f;
	CHECK(max_diff(dz, dz2, N) <= 1e-6, "mse: scale");
	CHECK_NEAR(esmm_mse(NULL, (const float[]) {3, 0.5f},
						(const float[]) {1, 0}, 2, 1.0f), 4.25, 1e-12,
			   "mse of (3,0.5) vs (1,0)");
}

/*
 * esmm_ctr_ctcvr_loss, the float training path, against its double twins
 * esmm_bce_logits and esmm_bce_product_logits, row by row: logits over
 * the fast path's range and beyond it (where it must take the double
 * path, bit for bit), labels 0, 1 and soft.
 */
static void
test_ctr_ctcvr_loss(void)
{
	enum
	{
		N = 400
	};
	float		a[N],
				b[N],
				y0[N],
				y1[N];
	static const float edges[] = {-1000, -40, -30.5f, -30, -12, 0, 12, 30, 30.5f, 40, 1000};
	const int	ne = sizeof(edges) / sizeof(edges[0]);
	double		worst_loss = 0.0,
				worst_grad = 0.0;
	int			exact_tails = 1,
				finite = 1;

	fill(a, N, -30, 30);
	fill(b, N, -30, 30);
	for (int i = 0; i < ne * ne; i++)
	{
		a[i] = edges[i / ne];
		b[i] = edges[i % ne];
	}
	for (int i = 0; i < N; i++)
	{
		y0[i] = i % 3 == 2 ? 0.3f : (float) (i % 3);
		y1[i] = y0[i] == 1.0f && i % 2 == 0 ? 1.0f : i % 7 == 3 ? 0.6f : 0.0f;
	}
	for (int i = 0; i < N; i++)
	{
		float		da = NAN,
					db = NAN,
					wa,
					wb = 0.0f;
		double		lc = 0.0,
					lv = 0.0,
					wc,
					wv;

		esmm_ctr_ctcvr_loss(&da, &db, &a[i], &b[i], &y0[i], &y1[i], 1, 0.5f, 0.25f, &lc, &lv);
		wc = esmm_bce_logits(&wa, &a[i], &y0[i], 1, 0.5f);
		wv = esmm_bce_product_logits(&wa, &wb, &a[i], &b[i], &y1[i], 1, 0.25f);
		finite &= isfinite(lc) && isfinite(lv) && isfinite(da) && isfinite(db);
		if (fabsf(a[i]) > 30.0f || fabsf(b[i]) > 30.0f)
			exact_tails &= lc == wc && lv == wv && da == wa && db == wb;
		else
		{
			worst_loss = fmax(worst_loss, fabs(lc - wc) / (1e-3 + fabs(wc)));
			worst_loss = fmax(worst_loss, fabs(lv - wv) / (1e-3 + fabs(wv)));
			worst_grad = fmax(worst_grad, fabs(da - wa) / (1e-6 + fabs(wa)));
			worst_grad = fmax(worst_grad, fabs(db - wb) / (1e-6 + fabs(wb)));
		}
	}
	CHECK(finite, "ctr_ctcvr_loss: every loss and gradient is finite");
	CHECK(exact_tails, "ctr_ctcvr_loss: a logit beyond 30 takes the double path, bit for bit");
	CHECK(worst_loss <= 1e-5, "ctr_ctcvr_loss: a row's losses within 1e-5 (relative) of double's: %g", worst_loss);
	CHECK(worst_grad <= 1e-4, "ctr_ctcvr_loss: gradients within 1e-4 (relative) of double's: %g", worst_grad);
}

/* ------------------------------------------------------- 4. stability */

/* sigmoid(z) and 1 - sigmoid(z) as long doubles, without cancellation */
static long double
sig_l(long double z)
{
	return 1.0L / (1.0L + expl(-z));
}

static void
test_loss_stability(void)
{
	/* 80-bit long double holds e^+-2000; a plain double would not */
	const int	have_ref = LDBL_MAX_10_EXP >= 1000;
	static const float logits[] = {-1000, -30, 0, 3, 30, 1000};
	const int	nl = sizeof(logits) / sizeof(logits[0]);

	CHECK_NEAR(esmm_log_sigmoid(-1000), -1000, 1e-12, "log_sigmoid(-1000)");
	CHECK_NEAR(esmm_log_sigmoid(1000), 0, 1e-300, "log_sigmoid(1000)");
	CHECK_NEAR(esmm_log_sigmoid(-40), -40 - exp(-40.0), 1e-14,
			   "log_sigmoid(-40)");
	CHECK_NEAR(esmm_log_sigmoid(40), -exp(-40.0), 1e-30, "log_sigmoid(40)");

	for (int i = 0; i < nl; i++)
		for (int label = 0; label < 3; label++)
		{
			float		z = logits[i];
			float		y = label == 2 ? 0.5f : (float) label;
			float		dz;
			double		L = esmm_bce_logits(&dz, &z, &y, 1, 1.0f);

			CHECK(isfinite(L) && isfinite(dz),
				  "bce_logits(z=%g, y=%g): L %g dz %g", z, y, L, dz);
			if (have_ref)
			{
				long double s = sig_l(z),
							t = sig_l(-(long double) z);	/* 1 - s */
				long double Lr = -(y * logl(s) + (1.0L - y) * logl(t));

				CHECK(fabsl(L - Lr) <= 1e-12L + 1e-12L * fabsl(Lr) &&
					  fabsl(dz - (s - y)) <= 1e-7L,
					  "bce_logits(z=%g, y=%g): L %.17g vs %.17Lg, dz %g vs %Lg",
					  z, y, L, Lr, dz, s - y);
			}
		}

	for (int i = 0; i < nl; i++)
		for (int j = 0; j < nl; j++)
			for (int label = 0; label < 2; label++)
			{
				float		a = logits[i],
							b = logits[j],
							y = (float) label;
				float		da = 0,
							db = 0;
				double		L = esmm_bce_product_logits(&da, &db, &a, &b, &y,
														1, 1.0f);

				CHECK(isfinite(L) && isfinite(da) && isfinite(db),
					  "bce_product(a=%g, b=%g, y=%g): L %g da %g db %g",
					  a, b, y, L, da, db);
				if (have_ref)
				{
					/*
					 * p = 1 / ((1+ea)(1+eb)) and
					 * 1-p = (ea + eb + ea eb) / ((1+ea)(1+eb)), computed
					 * directly: long double's range makes the shift by a
					 * maximum unnecessary.
					 */
					long double ea = expl(-(long double) a),
								eb = expl(-(long double) b);
					long double la = log1pl(ea),
								lb = log1pl(eb);
					long double log_p = -la - lb;
					long double log_1mp = logl(ea + eb + ea * eb) - la - lb;
					long double Lr = -(y * log_p + (1.0L - y) * log_1mp);
					long double sa = sig_l(a),
								sb = sig_l(b),
								ta = ea / (1.0L + ea),	/* 1 - sa */
								tb = eb / (1.0L + eb);
					long double one_m_p = expl(log_1mp);
					long double dar = -y * ta + (1.0L - y) * sb * sa * ta / one_m_p;
					long double dbr = -y * tb + (1.0L - y) * sa * sb * tb / one_m_p;

					CHECK(fabsl(L - Lr) <= 1e-10L + 1e-12L * fabsl(Lr) &&
						  fabsl(da - dar) <= 1e-6L + 1e-6L * fabsl(dar) &&
						  fabsl(db - dbr) <= 1e-6L + 1e-6L * fabsl(dbr),
						  "bce_product(a=%g, b=%g, y=%g): L %.17g vs %.17Lg, "
						  "da %g vs %Lg, db %g vs %Lg",
						  a, b, y, L, Lr, da, dar, db, dbr);
				}
			}
}

/* --------------------------------------------------------- 5. batch norm */

static void
test_bn_stats(void)
{
	enum
	{
		B = 4, N = 3
	};
	/* column 0 is 1,2,3,4: mean 2.5, biased variance 1.25 */
	float		x[B * N] = {1, 5, -1, 2, 5, 0.5f, 3, 6, 2, 4, 7, -3};
	float		gamma[N] = {2.0f, 0.5f, 1.5f},
				beta[N] = {0.5f, -1.0f, 0.0f};
	float		rm[N] = {0.5f, 0, 0},
				rv[N] = {2.0f, 1, 1};
	float		y[B * N],
				y_inf[B * N],
				xhat[B * N],
				inv_std[N];
	float		bm[N],
				bv[N];			/* the batch statistics, computed here */

	esmm_bn_forward_train(y, xhat, inv_std, rm, rv, x, gamma, beta, B, N);
	CHECK_NEAR(rm[0], 0.99 * 0.5 + 0.01 * 2.5, 1e-6, "running mean moves");
	CHECK_NEAR(rv[0], 0.99 * 2.0 + 0.01 * 1.25, 1e-6,
			   "running variance moves, with the biased variance");
	CHECK_NEAR(inv_std[0], 1.0 / sqrt(1.25 + 1e-3), 1e-6, "inv_std");
	CHECK_NEAR(xhat[2 * N], 0.5 / sqrt(1.25 + 1e-3), 1e-6, "xhat[2][0]");
	CHECK_NEAR(y[0], 2.0 * (-1.5 / sqrt(1.25 + 1e-3)) + 0.5, 1e-5, "y[0][0]");

	/* inference with the running stats set to the batch's = training */
	for (int j = 0; j < N; j++)
	{
		double		s = 0,
					ss = 0;

		for (int b = 0; b < B; b++)
			s += x[b * N + j];
		s /= B;
		for (int b = 0; b < B; b++)
			ss += (x[b * N + j] - s) * (x[b * N + j] - s);
		bm[j] = (float) s;
		bv[j] = (float) (ss / B);
	}
	esmm_bn_forward_infer(y_inf, x, gamma, beta, bm, bv, B, N);
	CHECK(max_diff(y, y_inf, B * N) <= 1e-5,
		  "bn inference with the batch stats: max diff %g",
		  max_diff(y, y_inf, B * N));
	/* and in place */
	memcpy(y_inf, x, sizeof(x));
	esmm_bn_forward_infer(y_inf, y_inf, gamma, beta, bm, bv, B, N);
	CHECK(max_diff(y, y_inf, B * N) <= 1e-5, "bn inference in place");
}

/* ---------------------------------------------------- 6. dropout, rng */

#define DRAWS 100000

static void
test_dropout_stats(void)
{
	static float x[DRAWS],
				y[DRAWS],
				mask[DRAWS];
	const float rate = 0.3f;
	const float keep = 1.0f / (1.0f - rate);
	uint64_t	rng = 99;
	uint64_t	before;
	double		sum = 0;
	int			zeros = 0,
				other = 0,
				wrong_y = 0;

	fill(x, DRAWS, -1, 1);
	esmm_dropout_forward(y, mask, x, DRAWS, rate, &rng);
	for (int i = 0; i < DRAWS; i++)
	{
		sum += mask[i];
		zeros += mask[i] == 0.0f;
		other += mask[i] != 0.0f && mask[i] != keep;
		wrong_y += y[i] != x[i] * mask[i];
	}
	CHECK_NEAR(sum / DRAWS, 1.0, 0.02, "dropout: mean of the mask");
	CHECK_NEAR((double) zeros / DRAWS, rate, 0.01, "dropout: zero fraction");
	CHECK(other == 0, "dropout: %d mask values neither 0 nor 1/(1-rate)", other);
	CHECK(wrong_y == 0, "dropout: %d outputs are not x * mask", wrong_y);

	/* in place, the same draws from the same state */
	{
		float		v[64],
					m2[64];
		uint64_t	s = 99;

		memcpy(v, x, sizeof(v));
		esmm_dropout_forward(v, m2, v, 64, rate, &s);
		CHECK(max_diff(v, y, 64) == 0.0 && max_diff(m2, mask, 64) == 0.0,
			  "dropout in place");
		esmm_dropout_backward(v, v, m2, 64);
		for (int i = 0; i < 64; i++)
			v[i] -= x[i] * mask[i] * mask[i];
		CHECK(max_abs(v, 64) == 0.0, "dropout backward in place");
	}

	/* rate 0: ones, and the generator does not move */
	before = rng;
	esmm_dropout_forward(y, mask, x, 1000, 0.0f, &rng);
	CHECK(max_diff(y, x, 1000) == 0.0, "dropout rate 0: y == x");
	for (int i = 0; i < 1000; i++)
		other += mask[i] != 1.0f;
	CHECK(other == 0, "dropout rate 0: a mask of ones");
	CHECK(rng == before, "dropout rate 0 drew numbers");
}

static void
test_rng(void)
{
	uint64_t	s = 0;
	uint64_t	t;
	double		sum = 0,
				sum2 = 0,
				lo = 1,
				hi = 0;
	int			bad = 0;

	/* splitmix64's published sequence from state 0 */
	CHECK(esmm_rng_next(&s) == UINT64_C(0xe220a8397b1dcdaf), "splitmix64 #1");
	CHECK(esmm_rng_next(&s) == UINT64_C(0x6e789e6aa1b965f4), "splitmix64 #2");
	CHECK(esmm_rng_next(&s) == UINT64_C(0x06c45d188009454f), "splitmix64 #3");
	s = 12345;
	CHECK(esmm_rng_next(&s) == UINT64_C(0x22118258a9d111a0),
		  "splitmix64 from 12345");

	/* uniform: the top 24 bits, in [0,1) */
	s = 7;
	t = 7;
	CHECK(esmm_rng_uniform(&s) ==
		  (float) (esmm_rng_next(&t) >> 40) / 16777216.0f && s == t,
		  "uniform is the top 24 bits of one draw");
	for (int i = 0; i < DRAWS; i++)
	{
		double		u = esmm_rng_uniform(&s);

		sum += u;
		lo = fmin(lo, u);
		hi = fmax(hi, u);
	}
	CHECK(lo >= 0.0 && hi < 1.0, "uniform out of [0,1): %g %g", lo, hi);
	CHECK_NEAR(sum / DRAWS, 0.5, 0.01, "uniform mean");

	sum = 0;
	for (int i = 0; i < DRAWS; i++)
	{
		float		g = esmm_rng_normal(&s);

		bad += !isfinite(g);
		sum += g;
		sum2 += (double) g * g;
	}
	CHECK(bad == 0, "normal: %d non-finite draws", bad);
	CHECK_NEAR(sum / DRAWS, 0.0, 0.02, "normal mean");
	CHECK_NEAR(sum2 / DRAWS, 1.0, 0.03, "normal variance");
}

/* ------------------------------------------ mixture of experts and FM */

typedef struct
{
	float	   *x,
			   *y,
			   *r;
	int			B,
				n;
} softmax_ctx;

static double
softmax_loss(void *p)
{
	softmax_ctx *c = p;

	esmm_softmax_forward(c->y, c->x, c->B, c->n);
	return dot(c->y, c->r, (size_t) c->B * c->n);
}

static void
test_softmax_grad(void)
{
	enum
	{
		B = 3, N = 5
	};
	float		x[B * N],
				y[B * N],
				r[B * N],
				dx[B * N];
	softmax_ctx c = {x, y, r, B, N};

	fill(x, B * N, -3, 3);
	fill(r, B * N, -1, 1);
	softmax_loss(&c);
	for (int b = 0; b < B; b++)
	{
		double		sum = 0.0;

		for (int i = 0; i < N; i++)
			sum += y[b * N + i];
		CHECK_NEAR(sum, 1.0, 1e-6, "softmax row sums to 1");
	}
	esmm_softmax_backward(dx, r, y, B, N);
	grad_check("softmax dx", x, B * N, dx, softmax_loss, &c, FD_ATOL_FLOAT);

	/* shifted by the row maximum: huge logits stay finite */
	fill_value(x, N, 1e4f);
	x[2] = 1e4f + 1.0f;
	esmm_softmax_forward(y, x, 1, N);
	CHECK(all_finite(y, N) && y[2] > y[0], "softmax of large logits: %g %g", (double) y[0],
		  (double) y[2]);
}

typedef struct
{
	float	   *g,
			   *h,
			   *r;
	float	   *e[3];
	int			B,
				K,
				H;
} mixture_ctx;

static double
mixture_loss(void *p)
{
	mixture_ctx *c = p;

	esmm_mixture_forward(c->h, c->g, (const float *const *) c->e, c->B, c->K, c->H);
	return dot(c->h, c->r, (size_t) c->B * c->H);
}

static void
test_mixture_grad(void)
{
	enum
	{
		B = 2, K = 3, H = 4
	};
	float		g[B * K],
				h[B * H],
				r[B * H],
				dg[B * K],
				e0[B * H],
				e1[B * H],
				e2[B * H],
				de0[B * H] = {0},
				de1[B * H] = {0},
				de2[B * H] = {0};
	float	   *de[3] = {de0, de1, de2};
	mixture_ctx c = {g, h, r, {e0, e1, e2}, B, K, H};

	fill(g, B * K, 0, 1);
	fill(e0, B * H, -1, 1);
	fill(e1, B * H, -1, 1);
	fill(e2, B * H, -1, 1);
	fill(r, B * H, -1, 1);
	esmm_mixture_backward(de, dg, r, g, (const float *const *) c.e, B, K, H);
	grad_check("mixture dg", g, B * K, dg, mixture_loss, &c, FD_ATOL_FLOAT);
	grad_check("mixture de_0", e0, B * H, de0, mixture_loss, &c, FD_ATOL_FLOAT);
	grad_check("mixture de_2", e2, B * H, de2, mixture_loss, &c, FD_ATOL_FLOAT);
	/* accumulated: a second backward doubles the expert gradients */
	{
		float		first[B * H],
					twice[B * H];

		memcpy(first, de0, sizeof(first));
		esmm_mixture_backward(de, dg, r, g, (const float *const *) c.e, B, K, H);
		for (int i = 0; i < B * H; i++)
			twice[i] = 2.0f * first[i];
		CHECK(max_abs(first, B * H) > GRAD_FLOOR && max_diff(de0, twice, B * H) < 1e-6,
			  "mixture de accumulates: %g vs %g", (double) de0[1], (double) twice[1]);
	}
}

typedef struct
{
	float	   *e,
			   *y,
			   *r;
	int			B,
				n,
				k;
} fm_ctx;

static double
fm_loss(void *p)
{
	fm_ctx	   *c = p;

	esmm_fm_forward(c->y, c->e, c->B, c->n, c->k);
	return dot(c->y, c->r, (size_t) c->B);
}

static void
test_fm(void)
{
	enum
	{
		B = 3, N = 4, K = 5
	};
	float		e[B * N * K],
				y[B],
				r[B],
				de[B * N * K];
	fm_ctx		c = {e, y, r, B, N, K};

	fill(e, B * N * K, -1, 1);
	fill(r, B, -1, 1);
	fm_loss(&c);
	/* the O(nk) form equals the pairwise sum of inner products */
	for (int b = 0; b < B; b++)
	{
		double		want = 0.0;

		for (int i = 0; i < N; i++)
			for (int j = i + 1; j < N; j++)
				want += dot(e + (b * N + i) * K, e + (b * N + j) * K, K);
		CHECK_NEAR(y[b], want, 1e-5, "fm equals the pairwise sum");
	}
	esmm_fm_backward(de, r, e, B, N, K);
	grad_check("fm de", e, B * N * K, de, fm_loss, &c, FD_ATOL_FLOAT);
}

void
suite_layers(void)
{
	test_dense_agreement();
	test_dense_accumulation();
	test_dense_by_hand();
	test_act_by_hand();
	test_act_extremes();
	test_dense_grad();
	test_act_grad();
	test_bn_grad();
	test_dropout_grad();
	test_embedding_grad();
	test_softmax_grad();
	test_mixture_grad();
	test_fm();
	test_loss_grad();
	test_loss_stability();
	test_ctr_ctcvr_loss();
	test_bn_stats();
	test_dropout_stats();
	test_rng();
}
