// SPDX-License-Identifier: GPL-2.0
/* Set 2: /proc/cmdline, which set 0 patches: refused. */
#define RK_SET 2
#define RK_CMDLINE
#include "rk.h"
