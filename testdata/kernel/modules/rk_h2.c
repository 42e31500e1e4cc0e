// SPDX-License-Identifier: GPL-2.0
/* Set 2 hotfix: /proc/loadavg, state 20 version 1. */
#define RK_SET 2
#define RK_LOADAVG
#define RK_STATES { .id = 20, .version = 1 },
#include "rk.h"
