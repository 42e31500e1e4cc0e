// The reverse of static-helper-inlined: a fix grows a static helper until gcc stops inlining it
// (or adds noinline, as fixes that need a stack frame for a probe do). The helper becomes a new
// function of the module; its one caller changed (it now calls the helper) and is reported;
// the helper has no twin in the kernel and is reported as added.
//#Flags: 6.1 6.12 clang
//#Expect: func.changed blk_rq_account
//#Expect: func.added blk_stat_add
//#ExpectNot: func.changed blk_rq_bytes
//#Included: blk_rq_account
//#Included: blk_stat_add

struct request {
	unsigned long bytes;
	unsigned long start;
	unsigned long stats[8];
};

extern unsigned long ktime_get_ns(void);

#ifdef PATCHED
static __attribute__((__noinline__)) void blk_stat_add(struct request *rq, unsigned long now)
{
	unsigned long d = now > rq->start ? now - rq->start : 0;

	rq->stats[d & 7] += rq->bytes;
}
#else
static inline void blk_stat_add(struct request *rq, unsigned long now)
{
	rq->stats[(now - rq->start) & 7] += rq->bytes;
}
#endif

void blk_rq_account(struct request *rq)
{
	blk_stat_add(rq, ktime_get_ns());
}

unsigned long blk_rq_bytes(const struct request *rq)
{
	return rq->bytes;
}
