/* test_main.c: runs every suite of the core's unit tests. */
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "unit.h"

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
