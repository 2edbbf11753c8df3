#include "tests/unit/test.h"
static void t(void){}
TEST_LIST { TEST_ENTRY(t) };
TEST_MAIN()
