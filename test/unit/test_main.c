/* test_main.c: runs every suite of the core's unit tests. */
#include <stdlib.h>
#include <string.h>

#include "unit.h"

int			unit_passed = 0;
int			unit_failed = 0;

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
