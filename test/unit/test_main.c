/* test_main.c: runs every suite of the core's unit tests. */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "unit.h"
#include "esmm_model.h"

int			unit_passed = 0;
int			unit_failed = 0;

/*
 * Runs fn(arg) in a child process and reports whether it exited with 0:
 * for behaviour that may crash (a NULL dereference, a heap overflow that
 * the sanitizers abort on), so that a bug fails one check instead of
 * killing the suite.  The child leaves with _exit, skipping leak checks.
 */
int
survives_in_child(int (*fn) (void *), void *arg, const char *what)
{
	pid_t		pid;
	int			status = 0;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid == 0)
		_exit(fn(arg));
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
	{
		CHECK(0, "%s: could not run a child process", what);
		return 0;
	}
	if (WIFSIGNALED(status))
		CHECK(0, "%s: the child was killed by signal %d", what, WTERMSIG(status));
	else
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			  "%s: the child exited with %d", what, WEXITSTATUS(status));
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

#define FD_EPS 1e-3f			/* central-difference step on a parameter */
#define FD_RTOL 2e-2
#define FD_ATOL 1e-4			/* the loss went through float logits */

/* ------------------------------------------------------ gradient check */

/* The objective with params[i] set to value; params[i] is restored. */
static double
objective_at(esmm_model *m, const esmm_batch *b, size_t i, float value)
{
	float		save = m->params[i];
	double		l;

	m->params[i] = value;
	l = esmm_model_forward_backward(m, b, NULL);
	m->params[i] = save;
	return l;
}

/* dObjective/dparams[i] by central differences over the float steps
 * actually taken. */
static double
central_difference(esmm_model *m, const esmm_batch *b, size_t i)
{
	float		w = m->params[i];
	float		hp = w + FD_EPS,
				hm = w - FD_EPS;

	return (objective_at(m, b, i, hp) - objective_at(m, b, i, hm)) /
		((double) hp - (double) hm);
}

/*
 * Compares an[off .. off+n) with central differences.  skip_kink skips
 * weights within a step of 0, where the L1 term's |w| has its kink and a
 * central difference means nothing.  Returns max |analytic|.
 */
double
check_fd_range(esmm_model *m, const esmm_batch *b, const float *an, size_t off,
			   size_t n, int skip_kink, const char *what)
{
	int			bad = 0;
	size_t		worst = off;
	double		worst_excess = -1.0,
				worst_fd = 0.0;

	for (size_t i = off; i < off + n; i++)
	{
		double		fd,
					err,
					tol;

		if (skip_kink && fabs(m->params[i]) < 2.0 * FD_EPS)
			continue;
		fd = central_difference(m, b, i);
		err = fabs(fd - an[i]);
		tol = FD_RTOL * fmax(fabs(fd), fabs(an[i])) + FD_ATOL;
		if (!(err <= tol))
			bad++;
		if (!(err - tol <= worst_excess))
		{
			worst_excess = err - tol;
			worst = i;
			worst_fd = fd;
		}
	}
	CHECK(bad == 0, "%s: %d of %zu gradients disagree; worst param %zu: analytic %.7g, central %.7g",
		  what, bad, n, worst, (double) an[worst], worst_fd);
	{
		double		mx = 0.0;

		for (size_t i = off; i < off + n; i++)
			mx = isnan(an[i]) ? INFINITY : fmax(mx, fabs(an[i]));
		return mx;
	}
}

size_t
unit_heap_in_use(void)
{
#if UNIT_HEAP_MEASURED
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
#else
	return 0;
#endif
}

esmm_train_spec
shuffled_spec(uint32_t batch_size, uint32_t epochs, uint64_t seed)
{
	esmm_train_spec ts;

	memset(&ts, 0, sizeof(ts));
	ts.batch_size = batch_size;
	ts.epochs = epochs;
	ts.seed = seed;
	ts.shuffle = 1;
	return ts;
}

esmm_model *
ready_to_train(esmm_model *m, int opt, float lr, int batch_size, uint64_t seed)
{
	esmm_status st;
	esmm_optim_spec o;

	esmm_status_clear(&st);
	esmm_model_init(m, seed);
	esmm_optim_defaults(&o, (esmm_optim_kind) opt);
	if (lr > 0.0f)
		o.learning_rate = lr;
	if (esmm_model_train_begin(m, &o, batch_size, seed, &st) != ESMM_OK)
	{
		CHECK(0, "esmm_model_train_begin failed: %s", st.msg);
		esmm_model_free(m);
		return NULL;
	}
	return m;
}

void
set_layer(esmm_layer_spec *l, uint32_t units, esmm_act act, int bias, int bn,
		  float dropout)
{
	memset(l, 0, sizeof(*l));
	l->units = units;
	l->act = (uint8_t) act;
	l->use_bias = (uint8_t) bias;
	l->use_bn = (uint8_t) bn;
	l->dropout = dropout;
}

typedef struct
{
	const char *name;
	void		(*run) (void);
} suite;

static const suite suites[] = {
	{"layers", suite_layers},
	{"optim", suite_optim},
	{"model", suite_model},
	{"format", suite_format},
	{"metrics", suite_metrics},
	{"mmoe", suite_mmoe},
};

int
main(int argc, char **argv)
{
	for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]); i++)
	{
		if (argc > 1 && strcmp(argv[1], suites[i].name) != 0)
			continue;
		int			before = unit_failed;

		suites[i].run();
		printf("suite %-8s %s\n", suites[i].name,
			   unit_failed == before ? "ok" : "FAILED");
	}
	printf("unit: %d passed, %d failed\n", unit_passed, unit_failed);
	return unit_failed == 0 && unit_passed > 0 ? 0 : 1;
}
