#include "unit.h"
void suite_format(void) { }
