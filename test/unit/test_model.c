#include "unit.h"
void suite_model(void) { }
