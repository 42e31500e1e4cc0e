// SPDX-License-Identifier: GPL-2.0
/* Set 1 successor without the predecessor's state 10: refused. */
#define RK_SET 1
#define RK_UPTIME
#include "rk.h"
