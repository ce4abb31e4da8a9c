/*
 * test_optim.c: the optimizers and regularizers of optim.c against
 * values worked out by hand.
 *
 * Every expected value below is the update rule written out step by step
 * in double precision, with the numbers of the test spelled in; the
 * optimizers run in float, hence the relative tolerance.
 */
#include <string.h>

#include "unit.h"
#include "optim.h"

#define OPT_RTOL 2e-6			/* float arithmetic against double */

/* The gradients of the three steps, the same for every optimizer. */
static const float grad_seq[3] = {0.5f, -0.2f, 0.3f};

/* |got - want| <= OPT_RTOL * max(1, |want|) */
#define CHECK_CLOSE(got, want, what) \
	CHECK_NEAR((got), (want), OPT_RTOL * fmax(1.0, fabs((double) (want))), (what))

static esmm_optim_spec
spec_for(esmm_optim_kind kind, float lr)
{
	esmm_optim_spec o;

	esmm_optim_defaults(&o, kind);
	o.learning_rate = lr;
	return o;
}

/*
 * Runs three steps (t = 1, 2, 3) on one parameter starting at 1.0 with
 * grad_seq; records w, m1 and m2 after each step.
 */
static void
run_three(const esmm_optim_spec *o, float w[3], float m1[3], float m2[3])
{
	float		wi = 1.0f,
				a = esmm_optim_m1_init(o),
				b = 0.0f;

	for (int t = 0; t < 3; t++)
	{
		esmm_optim_step(o, &wi, &grad_seq[t], &a, &b, 1, (uint64_t) t + 1);
		w[t] = wi;
		m1[t] = a;
		m2[t] = b;
	}
}

static void
test_adam(void)
{
	esmm_optim_spec o = spec_for(ESMM_OPTIM_ADAM, 0.1f);
	float		w[3],
				m1[3],
				m2[3];
	const double eps = 1e-7;
	double		m,
				v,
				wx;

	run_three(&o, w, m1, m2);

	/* t=1: m = 0.1*0.5; v = 0.001*0.25; mhat = m/0.1 = 0.5; vhat = v/0.001 */
	m = 0.05;
	v = 0.00025;
	wx = 1.0 - 0.1 * (0.05 / 0.1) / (sqrt(0.00025 / 0.001) + eps);
	CHECK_CLOSE(m1[0], m, "adam t=1 m");
	CHECK_CLOSE(m2[0], v, "adam t=1 v");
	CHECK_CLOSE(w[0], wx, "adam t=1 w");
	/* without bias correction the first step would be 0.1*0.05/0.0158 */
	CHECK_NEAR(w[0], 0.9, 1e-5, "adam t=1 moves by exactly lr");

	/* t=2, g=-0.2: m = 0.9*0.05 - 0.02; v = 0.999*0.00025 + 0.001*0.04 */
	m = 0.9 * 0.05 + 0.1 * -0.2;	/* 0.025 */
	v = 0.999 * 0.00025 + 0.001 * 0.04;	/* 0.00028975 */
	wx -= 0.1 * (m / (1.0 - 0.81)) / (sqrt(v / (1.0 - 0.998001)) + eps);
	CHECK_CLOSE(m1[1], 0.025, "adam t=2 m");
	CHECK_CLOSE(m2[1], 0.00028975, "adam t=2 v");
	CHECK_CLOSE(w[1], wx, "adam t=2 w");

	/* t=3, g=0.3: m = 0.9*0.025 + 0.03; v = 0.999*0.00028975 + 0.001*0.09 */
	m = 0.9 * 0.025 + 0.1 * 0.3;	/* 0.0525 */
	v = 0.999 * 0.00028975 + 0.001 * 0.09;	/* 0.00037946025 */
	wx -= 0.1 * (m / (1.0 - 0.729)) / (sqrt(v / (1.0 - 0.997002999)) + eps);
	CHECK_CLOSE(m1[2], 0.0525, "adam t=3 m");
	CHECK_CLOSE(m2[2], 0.00037946025, "adam t=3 v");
	CHECK_CLOSE(w[2], wx, "adam t=3 w");

	/*
	 * A vector: a constant gradient makes mhat = g and vhat = g^2 at every
	 * t, so each step is lr * g / (|g| + eps), whatever the bias
	 * correction's t; the second element must not leak into the first.
	 */
	{
		float		wv[2] = {2.0f, -1.0f},
					gv[2] = {-1.0f, 4.0f},
					a[2] = {0, 0},
					b[2] = {0, 0};

		for (uint64_t t = 1; t <= 3; t++)
		{
			esmm_optim_step(&o, wv, gv, a, b, 2, t);
			CHECK_CLOSE(wv[0], 2.0 + t * 0.1 * 1.0 / (1.0 + eps), "adam constant g, w[0]");
			CHECK_CLOSE(wv[1], -1.0 - t * 0.1 * 4.0 / (4.0 + eps), "adam constant g, w[1]");
		}
	}
	CHECK(esmm_optim_m1_init(&o) == 0.0f, "adam starts its first moment at 0");
}

static void
test_adagrad(void)
{
	esmm_optim_spec o = spec_for(ESMM_OPTIM_ADAGRAD, 0.1f);
	float		w[3],
				m1[3],
				m2[3];
	const double eps = 1e-7;
	double		wx;

	o.initial_accumulator_value = 0.1f;
	CHECK(esmm_optim_m1_init(&o) == 0.1f, "adagrad accumulator starts at %g",
		  (double) esmm_optim_m1_init(&o));
	run_three(&o, w, m1, m2);

	/* t=1: acc = 0.1 + 0.25 */
	wx = 1.0 - 0.1 * 0.5 / (sqrt(0.35) + eps);
	CHECK_CLOSE(m1[0], 0.35, "adagrad t=1 acc");
	CHECK_CLOSE(w[0], wx, "adagrad t=1 w");
	/* t=2: acc = 0.35 + 0.04 */
	wx -= 0.1 * -0.2 / (sqrt(0.39) + eps);
	CHECK_CLOSE(m1[1], 0.39, "adagrad t=2 acc");
	CHECK_CLOSE(w[1], wx, "adagrad t=2 w");
	/* t=3: acc = 0.39 + 0.09 */
	wx -= 0.1 * 0.3 / (sqrt(0.48) + eps);
	CHECK_CLOSE(m1[2], 0.48, "adagrad t=3 acc");
	CHECK_CLOSE(w[2], wx, "adagrad t=3 w");
	CHECK(m2[2] == 0.0f, "adagrad does not use m2 (%g)", (double) m2[2]);

	/* another initial value is honoured */
	o.initial_accumulator_value = 1.0f;
	run_three(&o, w, m1, m2);
	CHECK_CLOSE(w[0], 1.0 - 0.1 * 0.5 / (sqrt(1.25) + eps), "adagrad acc0=1 t=1 w");
}

static void
test_sgd(void)
{
	esmm_optim_spec o = spec_for(ESMM_OPTIM_SGD, 0.1f);
	float		w[3],
				m1[3],
				m2[3];

	/* plain: w -= 0.1 g */
	run_three(&o, w, m1, m2);
	CHECK_CLOSE(w[0], 1.0 - 0.05, "sgd t=1 w");
	CHECK_CLOSE(w[1], 0.95 + 0.02, "sgd t=2 w");
	CHECK_CLOSE(w[2], 0.97 - 0.03, "sgd t=3 w");

	/* momentum 0.9: v = 0.9 v - 0.1 g; w += v */
	o.momentum = 0.9f;
	run_three(&o, w, m1, m2);
	CHECK_CLOSE(m1[0], -0.05, "sgd momentum t=1 v");
	CHECK_CLOSE(w[0], 0.95, "sgd momentum t=1 w");
	CHECK_CLOSE(m1[1], 0.9 * -0.05 + 0.02, "sgd momentum t=2 v");	/* -0.025 */
	CHECK_CLOSE(w[1], 0.95 - 0.025, "sgd momentum t=2 w");
	CHECK_CLOSE(m1[2], 0.9 * -0.025 - 0.03, "sgd momentum t=3 v");	/* -0.0525 */
	CHECK_CLOSE(w[2], 0.925 - 0.0525, "sgd momentum t=3 w");
}

static void
test_rmsprop(void)
{
	esmm_optim_spec o = spec_for(ESMM_OPTIM_RMSPROP, 0.1f);
	float		w[3],
				m1[3],
				m2[3];
	const double eps = 1e-7;
	double		inc1,
				inc2,
				inc3,
				mom;

	/* ms = 0.9 ms + 0.1 g^2: 0.025, 0.0265, 0.03285 */
	inc1 = 0.1 * 0.5 / (sqrt(0.025) + eps);
	inc2 = 0.1 * -0.2 / (sqrt(0.9 * 0.025 + 0.1 * 0.04) + eps);
	inc3 = 0.1 * 0.3 / (sqrt(0.9 * 0.0265 + 0.1 * 0.09) + eps);

	run_three(&o, w, m1, m2);
	CHECK_CLOSE(m1[0], 0.025, "rmsprop t=1 ms");
	CHECK_CLOSE(m1[1], 0.0265, "rmsprop t=2 ms");
	CHECK_CLOSE(m1[2], 0.03285, "rmsprop t=3 ms");
	CHECK_CLOSE(w[0], 1.0 - inc1, "rmsprop t=1 w");
	CHECK_CLOSE(w[1], 1.0 - inc1 - inc2, "rmsprop t=2 w");
	CHECK_CLOSE(w[2], 1.0 - inc1 - inc2 - inc3, "rmsprop t=3 w");

	/* momentum 0.5: mom = 0.5 mom + inc; w -= mom */
	o.momentum = 0.5f;
	run_three(&o, w, m1, m2);
	mom = inc1;
	CHECK_CLOSE(m2[0], mom, "rmsprop momentum t=1 buffer");
	CHECK_CLOSE(w[0], 1.0 - mom, "rmsprop momentum t=1 w");
	mom = 0.5 * inc1 + inc2;
	CHECK_CLOSE(m2[1], mom, "rmsprop momentum t=2 buffer");
	CHECK_CLOSE(w[1], 1.0 - inc1 - mom, "rmsprop momentum t=2 w");
	CHECK_CLOSE(w[2], 1.0 - inc1 - mom - (0.5 * mom + inc3), "rmsprop momentum t=3 w");
}

static void
test_regularizers(void)
{
	const float w[4] = {-2.0f, 0.0f, 3.0f, 0.5f};
	float		g[4];

	/* g += 0.01 sign(w) + 2*0.1 w; sign(0) = 0 */
	for (int i = 0; i < 4; i++)
		g[i] = 1.0f;
	esmm_reg_grad(g, w, 4, 0.01f, 0.1f);
	CHECK_CLOSE(g[0], 1.0 - 0.01 - 0.4, "l1+l2 grad, w=-2");
	CHECK_CLOSE(g[1], 1.0, "l1+l2 grad, w=0");
	CHECK_CLOSE(g[2], 1.0 + 0.01 + 0.6, "l1+l2 grad, w=3");
	CHECK_CLOSE(g[3], 1.0 + 0.01 + 0.1, "l1+l2 grad, w=0.5");

	/* l1 alone, l2 alone */
	for (int i = 0; i < 4; i++)
		g[i] = 0.0f;
	esmm_reg_grad(g, w, 4, 0.25f, 0.0f);
	CHECK(g[0] == -0.25f && g[1] == 0.0f && g[2] == 0.25f && g[3] == 0.25f,
		  "l1 grad %g %g %g %g", g[0], g[1], g[2], g[3]);
	for (int i = 0; i < 4; i++)
		g[i] = 0.0f;
	esmm_reg_grad(g, w, 4, 0.0f, 0.5f);
	CHECK(g[0] == -2.0f && g[1] == 0.0f && g[2] == 3.0f && g[3] == 0.5f,
		  "l2 grad %g %g %g %g", g[0], g[1], g[2], g[3]);

	/* loss: 0.01 * (2+0+3+0.5) + 0.1 * (4+0+9+0.25) */
	CHECK_CLOSE(esmm_reg_loss(w, 4, 0.01f, 0.1f), 0.01 * 5.5 + 0.1 * 13.25, "l1+l2 loss");
	CHECK_CLOSE(esmm_reg_loss(w, 4, 0.01f, 0.0f), 0.055, "l1 loss");
	CHECK_CLOSE(esmm_reg_loss(w, 4, 0.0f, 0.1f), 1.325, "l2 loss");
	CHECK(esmm_reg_loss(w, 4, 0.0f, 0.0f) == 0.0, "no regularization, no loss");
	CHECK(esmm_reg_loss(w, 0, 1.0f, 1.0f) == 0.0, "empty tensor, no loss");
}

static void
test_defaults(void)
{
	esmm_optim_spec o;

	/* Keras 3: Adam(0.001, 0.9, 0.999, 1e-7) */
	memset(&o, 0xff, sizeof(o));
	esmm_optim_defaults(&o, ESMM_OPTIM_ADAM);
	CHECK(o.kind == ESMM_OPTIM_ADAM, "adam kind %u", o.kind);
	CHECK(o.learning_rate == 0.001f && o.beta_1 == 0.9f && o.beta_2 == 0.999f &&
		  o.epsilon == 1e-7f, "adam defaults lr %g b1 %g b2 %g eps %g",
		  o.learning_rate, o.beta_1, o.beta_2, o.epsilon);

	/* Adagrad(0.001, initial_accumulator_value=0.1, epsilon=1e-7) */
	esmm_optim_defaults(&o, ESMM_OPTIM_ADAGRAD);
	CHECK(o.kind == ESMM_OPTIM_ADAGRAD, "adagrad kind %u", o.kind);
	CHECK(o.learning_rate == 0.001f && o.initial_accumulator_value == 0.1f &&
		  o.epsilon == 1e-7f, "adagrad defaults lr %g acc %g eps %g",
		  o.learning_rate, o.initial_accumulator_value, o.epsilon);
	CHECK(esmm_optim_m1_init(&o) == 0.1f, "adagrad m1 init %g", esmm_optim_m1_init(&o));

	/* SGD(0.01, momentum=0) */
	esmm_optim_defaults(&o, ESMM_OPTIM_SGD);
	CHECK(o.kind == ESMM_OPTIM_SGD, "sgd kind %u", o.kind);
	CHECK(o.learning_rate == 0.01f && o.momentum == 0.0f,
		  "sgd defaults lr %g momentum %g", o.learning_rate, o.momentum);
	CHECK(esmm_optim_m1_init(&o) == 0.0f, "sgd m1 init %g", esmm_optim_m1_init(&o));

	/* RMSprop(0.001, rho=0.9, momentum=0, epsilon=1e-7) */
	esmm_optim_defaults(&o, ESMM_OPTIM_RMSPROP);
	CHECK(o.kind == ESMM_OPTIM_RMSPROP, "rmsprop kind %u", o.kind);
	CHECK(o.learning_rate == 0.001f && o.rho == 0.9f && o.momentum == 0.0f &&
		  o.epsilon == 1e-7f, "rmsprop defaults lr %g rho %g momentum %g eps %g",
		  o.learning_rate, o.rho, o.momentum, o.epsilon);
	CHECK(esmm_optim_m1_init(&o) == 0.0f, "rmsprop m1 init %g", esmm_optim_m1_init(&o));
}

/*
 * With epsilon 1e-7 it hardly matters where epsilon sits; with 0.5 it
 * does.  One step (t = 1, g = 0.5) of each rule as optim.h writes it:
 * epsilon added to the square root, not under it.  (Keras 3 puts it
 * under the root for adagrad and rmsprop, and leaves Adam's unscaled by
 * the bias correction; optim.h's rules are what is pinned here.)
 */
static void
test_epsilon_placement(void)
{
	float		w,
				a,
				b;
	const float g = 0.5f;
	esmm_optim_spec o;

	o = spec_for(ESMM_OPTIM_ADAM, 0.1f);
	o.epsilon = 0.5f;
	w = 1.0f;
	a = b = 0.0f;
	esmm_optim_step(&o, &w, &g, &a, &b, 1, 1);
	/* mhat = 0.5, vhat = 0.25 */
	CHECK_CLOSE(w, 1.0 - 0.1 * 0.5 / (0.5 + 0.5), "adam, epsilon 0.5");

	o = spec_for(ESMM_OPTIM_ADAGRAD, 0.1f);
	o.epsilon = 0.5f;
	w = 1.0f;
	a = esmm_optim_m1_init(&o);
	b = 0.0f;
	esmm_optim_step(&o, &w, &g, &a, &b, 1, 1);
	/* acc = 0.1 + 0.25 */
	CHECK_CLOSE(w, 1.0 - 0.1 * 0.5 / (sqrt(0.35) + 0.5), "adagrad, epsilon 0.5");

	o = spec_for(ESMM_OPTIM_RMSPROP, 0.1f);
	o.epsilon = 0.5f;
	w = 1.0f;
	a = b = 0.0f;
	esmm_optim_step(&o, &w, &g, &a, &b, 1, 1);
	/* ms = 0.1 * 0.25 */
	CHECK_CLOSE(w, 1.0 - 0.1 * 0.5 / (sqrt(0.025) + 0.5), "rmsprop, epsilon 0.5");
}

/* A zero gradient must not move anything, whatever the optimizer. */
static void
test_zero_gradient(void)
{
	for (int k = ESMM_OPTIM_ADAM; k <= ESMM_OPTIM_RMSPROP; k++)
	{
		esmm_optim_spec o = spec_for((esmm_optim_kind) k, 0.1f);
		float		w[3] = {1.5f, -0.25f, 0.0f},
					g[3] = {0, 0, 0},
					a[3],
					b[3] = {0, 0, 0};

		for (int i = 0; i < 3; i++)
			a[i] = esmm_optim_m1_init(&o);
		for (uint64_t t = 1; t <= 3; t++)
			esmm_optim_step(&o, w, g, a, b, 3, t);
		CHECK(w[0] == 1.5f && w[1] == -0.25f && w[2] == 0.0f,
			  "optimizer %d moved with a zero gradient: %g %g %g", k, w[0], w[1], w[2]);
	}
}

void
suite_optim(void)
{
	test_adam();
	test_adagrad();
	test_sgd();
	test_rmsprop();
	test_regularizers();
	test_defaults();
	test_epsilon_placement();
	test_zero_gradient();
}
