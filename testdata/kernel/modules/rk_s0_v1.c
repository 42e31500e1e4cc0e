// SPDX-License-Identifier: GPL-2.0
/* Set 0, cumulative v1: /proc/cmdline and /proc/version. */
#define RK_SET 0
#define RK_CMDLINE
#define RK_VERSION
#include "rk.h"
