// An off-by-one fix in a bounds check: only an immediate operand changes.
//#Expect: func.changed check_index
//#ExpectNot: func.changed count_bits
//#Included: check_index
//#Flags: 6.1 clang

int check_index(unsigned int idx)
{
#ifdef PATCHED
	if (idx >= 16)
#else
	if (idx > 16)
#endif
		return -22;
	return 0;
}

int count_bits(unsigned long v)
{
	int n = 0;

	while (v) {
		v &= v - 1;
		n++;
	}
	return n;
}
