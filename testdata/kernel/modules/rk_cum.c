// SPDX-License-Identifier: GPL-2.0
/* Set 1 superseding set 2: /proc/version and /proc/loadavg, states 10 and 20: replaces rk_h1_v2 and rk_h2 in one transition, reverting /proc/uptime. */
#define RK_SET 1
#define RK_SUPERSEDES 2
#define RK_VERSION
#define RK_LOADAVG
#define RK_STATES { .id = 10, .version = 3 }, { .id = 20, .version = 1 },
#include "rk.h"
