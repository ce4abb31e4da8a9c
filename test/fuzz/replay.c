/*
 * replay.c: runs fuzz_decode's target once on each file named on the
 * command line, without libFuzzer, so that the kept inputs
 * (test/fuzz/regressions) and the seed corpus run in the test suite under
 * ASan and UBSan.  The target aborts on any broken invariant; a sanitizer
 * report aborts too.  Prints the number of inputs run.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
	{
		FILE	   *f = fopen(argv[i], "rb");
		uint8_t    *data;
		long		n;

		if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
			fseek(f, 0, SEEK_SET) != 0)
		{
			fprintf(stderr, "replay: cannot read %s\n", argv[i]);
			return 1;
		}
		data = malloc(n > 0 ? (size_t) n : 1);
		if (data == NULL || fread(data, 1, (size_t) n, f) != (size_t) n)
		{
			fprintf(stderr, "replay: cannot read %s\n", argv[i]);
			return 1;
		}
		fclose(f);
		LLVMFuzzerTestOneInput(data, (size_t) n);
		free(data);
	}
	printf("fuzz replay: %d inputs through the decoder target without a finding\n", argc - 1);
	return 0;
}
