// SPDX-License-Identifier: GPL-2.0
/* Set 2: /proc/loadavg with state 10, which set 1 uses: refused. */
#define RK_SET 2
#define RK_LOADAVG
#define RK_STATES { .id = 10, .version = 1 },
#include "rk.h"
