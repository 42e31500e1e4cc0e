// gcc's partial inlining (-fpartial-inlining, -O2): a function with a cheap early exit and a big
// body is split, the early exit inlined into callers and the body left as `<fn>.part.0`
// (fs/dcache.c's dput.part.0, mm/filemap.c's folio_wait_bit_common.part.0 in Debian 6.1). The
// fix changes the body: the clone is what changed, and it is correlated with its original by
// the name without the number. The callers inline only the unchanged early exit and are not
// reported.
//#Expect: func.changed inode_sync_slow.part.0
//#ExpectNot: func.changed writeback_one
//#ExpectNot: func.changed writeback_two
//#ExpectNot: func.added inode_sync_slow.part.0
//#Included: inode_sync_slow.part.0

struct inode {
	unsigned long i_state;
	unsigned long i_flags;
	long i_count;
	void *i_mapping;
};

extern void spin_lock(void *l);
extern void spin_unlock(void *l);
extern int filemap_flush(void *mapping);
extern void wake_up_bit(void *word, int bit);
extern void inode_io_list_del(struct inode *inode);
extern void *inode_lock_ptr;

static void inode_sync_slow(struct inode *inode)
{
	if (!(inode->i_state & 7))
		return;
	spin_lock(inode_lock_ptr);
	inode->i_state &= ~7UL;
	if (filemap_flush(inode->i_mapping))
		inode->i_flags |= 1;
#ifdef PATCHED
	if (inode->i_count <= 0)
		inode_io_list_del(inode);
#else
	if (inode->i_count == 0)
		inode_io_list_del(inode);
#endif
	wake_up_bit(&inode->i_state, 3);
	spin_unlock(inode_lock_ptr);
}

void writeback_one(struct inode *inode)
{
	inode->i_count++;
	inode_sync_slow(inode);
}

void writeback_two(struct inode *a, struct inode *b)
{
	inode_sync_slow(a);
	inode_sync_slow(b);
}
