/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kpatch-syscall.h - KPATCH_SYSCALL_DEFINE0..6 of kpatch-build, for fixes written for it
 *
 * Replace SYSCALL_DEFINEn(name, ...) with KPATCH_SYSCALL_DEFINEn(name, ...) in the fix. The
 * definition has the kernel's names (__x64_sys_<name>, __ia32_sys_<name>, __se_sys_<name>) and
 * its body in a new inner function, so the kernel's entry points are what changes and gets
 * patched; see "Syscalls" in klp-build.h, which defines them as KLP_BUILD_SYSCALL_DEFINEn.
 */
#ifndef __KPATCH_SYSCALL_H_
#define __KPATCH_SYSCALL_H_

#include "kpatch-macros.h"

#define KPATCH_SYSCALL_DEFINE0(name)		KLP_BUILD_SYSCALL_DEFINE0(name)
#define KPATCH_SYSCALL_DEFINE1(name, ...)	KLP_BUILD_SYSCALL_DEFINE1(name, __VA_ARGS__)
#define KPATCH_SYSCALL_DEFINE2(name, ...)	KLP_BUILD_SYSCALL_DEFINE2(name, __VA_ARGS__)
#define KPATCH_SYSCALL_DEFINE3(name, ...)	KLP_BUILD_SYSCALL_DEFINE3(name, __VA_ARGS__)
#define KPATCH_SYSCALL_DEFINE4(name, ...)	KLP_BUILD_SYSCALL_DEFINE4(name, __VA_ARGS__)
#define KPATCH_SYSCALL_DEFINE5(name, ...)	KLP_BUILD_SYSCALL_DEFINE5(name, __VA_ARGS__)
#define KPATCH_SYSCALL_DEFINE6(name, ...)	KLP_BUILD_SYSCALL_DEFINE6(name, __VA_ARGS__)

#endif /* __KPATCH_SYSCALL_H_ */
