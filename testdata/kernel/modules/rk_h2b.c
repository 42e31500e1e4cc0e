// SPDX-License-Identifier: GPL-2.0
/* Set 2 hotfix after rk_cum: /proc/uptime; loads beside rk_cum, which occupies set 1 only. */
#define RK_SET 2
#define RK_UPTIME
#include "rk.h"
