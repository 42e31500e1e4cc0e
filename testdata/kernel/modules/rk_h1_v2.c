// SPDX-License-Identifier: GPL-2.0
/* Set 1 successor: /proc/uptime, state 10 version 2: replaces rk_h1, reverting /proc/version. */
#define RK_SET 1
#define RK_UPTIME
#define RK_STATES { .id = 10, .version = 2 },
#include "rk.h"
