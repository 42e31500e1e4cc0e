// A fix that grows a global table (one more entry): the kernel's copy keeps its size and other
// objects index it, so the diff refuses a resized variable.
//#ExpectError: ^data\.resized .*quirk_ids.*changes size.*shadow variable
//#Expect: data.resized quirk_ids
//#Expect: func.changed has_quirk
//#Flags: 6.1 clang

unsigned short quirk_ids[] = {
	0x1002, 0x10de, 0x8086,
#ifdef PATCHED
	0x1022,
#endif
};

int has_quirk(unsigned short id)
{
	unsigned int i;

	for (i = 0; i < sizeof(quirk_ids) / sizeof(quirk_ids[0]); i++)
		if (quirk_ids[i] == id)
			return 1;
	return 0;
}
