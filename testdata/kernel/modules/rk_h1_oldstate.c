// SPDX-License-Identifier: GPL-2.0
/* Set 1 successor with state 10 version 1 < 2: refused. */
#define RK_SET 1
#define RK_UPTIME
#define RK_STATES { .id = 10, .version = 1 },
#include "rk.h"
