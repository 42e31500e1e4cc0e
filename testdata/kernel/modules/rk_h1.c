// SPDX-License-Identifier: GPL-2.0
/* Set 1 hotfix: /proc/version, state 10 version 2. */
#define RK_SET 1
#define RK_VERSION
#define RK_STATES { .id = 10, .version = 2 },
#include "rk.h"
