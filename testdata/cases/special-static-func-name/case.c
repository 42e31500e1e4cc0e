// __func__ is a static local string (`__func__.N` in .rodata) per function: pr_err("%s: ...",
// __func__) in every driver. The fix changes one message of a function that prints __func__;
// the string is per-copy data, never correlated and never a data change, and the module gets its
// own copy for the changed function.
//#Flags: 6.1 6.12
//#Expect: func.changed usb_submit_check
//#ExpectNot: func.changed usb_kill_check
//#ExpectNot: data.changed __func__
//#Included: usb_submit_check
//#Included: __func__.1
//#Extern: _printk

extern int _printk(const char *fmt, ...);

int usb_submit_check(int status)
{
	if (status < 0) {
#ifdef PATCHED
		_printk("\0013%s: submit failed, status %d\n", __func__, status);
#else
		_printk("\0013%s: submit failed %d\n", __func__, status);
#endif
		return status;
	}
	return 0;
}

int usb_kill_check(int status)
{
	if (status)
		_printk("\0013%s: kill %d\n", __func__, status);
	return status;
}
