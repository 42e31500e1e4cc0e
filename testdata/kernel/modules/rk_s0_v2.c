// SPDX-License-Identifier: GPL-2.0
/* Set 0, cumulative v2: /proc/cmdline only, so v1's /proc/version is reverted. */
#define RK_SET 0
#define RK_CMDLINE
#include "rk.h"
