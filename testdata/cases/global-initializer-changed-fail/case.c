// A fix that changes the initial value of a global tunable (kernel/sysctl-style
// `int sysctl_max_map_count = DEFAULT_MAX_MAP_COUNT`): the kernel's variable already holds its
// value and may have been changed at run time; a livepatch cannot change it. Refused with the
// shadow-variable and code advice; the code that reads it is unchanged and not reported.
//#Flags: 6.1 6.12 clang
//#ExpectError: ^data\.changed .*sysctl_max_map_count.*initial value.*shadow variable
//#Expect: data.changed sysctl_max_map_count
//#ExpectNot: func.changed map_count_ok

#ifdef PATCHED
int sysctl_max_map_count = 262144;
#else
int sysctl_max_map_count = 65530;
#endif

int map_count_ok(int n)
{
	return n <= sysctl_max_map_count;
}
