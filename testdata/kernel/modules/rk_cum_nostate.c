// SPDX-License-Identifier: GPL-2.0
/* Set 1 superseding set 2 without set 2's state 20: refused. */
#define RK_SET 1
#define RK_SUPERSEDES 2
#define RK_VERSION
#define RK_LOADAVG
#define RK_STATES { .id = 10, .version = 2 },
#include "rk.h"
