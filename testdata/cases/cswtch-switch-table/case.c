// gcc turns a switch that maps cases to constants into a lookup table, CSWTCH.N in .rodata
// (-ftree-switch-conversion, on at -O2 and -Os, not affected by -fno-jump-tables): the
// errno-to-status mappings of drivers (scsi_result_to_blk_status-style). The fix changes one
// mapping: the changed function gets its own table (CSWTCH is constant per copy, never
// correlated nor a data change), and the function with the other table is not reported.
//#Flags: 6.1 6.12 clang
//#Expect: func.changed result_to_status
//#ExpectNot: func.changed status_to_errno
//#ExpectNot: data.changed CSWTCH
//#Included: result_to_status

int result_to_status(unsigned int result)
{
	switch (result) {
	case 0: return 0;
	case 1: return 10;
	case 2: return 3;
	case 3: return 2;
	case 4: return 7;
	case 5: return 9;
#ifdef PATCHED
	case 6: return 12;
#else
	case 6: return 10;
#endif
	case 7: return 1;
	default: return 10;
	}
}

int status_to_errno(unsigned int status)
{
	switch (status) {
	case 0: return 0;
	case 1: return -95;
	case 2: return -110;
	case 3: return -67;
	case 4: return -28;
	case 5: return -61;
	case 6: return -12;
	case 7: return -5;
	default: return -5;
	}
}
