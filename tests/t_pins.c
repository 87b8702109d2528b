/* SPDX-License-Identifier: MIT */
/*
 * vmsplice(2) takes a plain reference, not a pin, so UFFDIO_MOVE moves the
 * page anyway. The old physical page must never be reused: after a page
 * was spliced into a pipe and then migrated (so that its old page would be
 * the next destination if sources were pooled) or exchanged, and every
 * page rewritten, the pipe holds the victim's bytes, never another page's.
 * Pins (O_DIRECT, process_vm_readv/writev; io_uring registered buffers
 * pin the same way) are covered by t_kernel_access.
 */
#include <fcntl.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "harness.h"
static pmv_ctx *ctx; static char *b; static size_t psz, np;
static void mv(size_t from, size_t to_excl, size_t skip, int t){ void *pg[64]; int to[64],st[64]; int n=0; for(size_t i=from;i<to_excl;i++) if(i!=skip){pg[n]=b+i*psz;to[n++]=t;} pmv_move_pages(ctx,n,pg,to,st,0);}
static int pipe_never_sees_another_page(int huge, int xonly){ psz=huge?T_SZ_2M:T_SZ_4K; np=huge?8:64; ctx=t_ctx(2,NULL,0);
 b=pmv_mmap(ctx,np*psz,0,huge?PMV_HUGE:0); long bad=0;
 for(int round=0;round<10;round++){
  for(size_t i=0;i<np;i++) t_fill(b+i*psz,psz,i,round);
  mv(0,np,(size_t)-1,1);
  int fds[2]; pipe(fds); fcntl(fds[1],F_SETPIPE_SZ,1<<20);
  size_t victim=round%np; struct iovec iov={b+victim*psz,4096}; if(vmsplice(fds[1],&iov,1,0)!=4096) return 1;
  if (xonly) mv(0,np/2,(size_t)-1,0); else { mv(0,np,victim,0); mv(victim,victim+1,(size_t)-1,0); mv(0,np,victim,1); }
  if(xonly || (round&1)){ size_t o=(victim+np/2)%np; void *a2[1]={b+victim*psz},*b2[1]={b+o*psz}; int st[1]; pmv_exchange_pages(ctx,1,a2,b2,st,0); if(st[0]) fprintf(stderr,"xst %d\n",st[0]);}
  for(size_t i=0;i<np;i++) t_fill(b+i*psz,psz,i,round+100);
  char buf[4096]; read(fds[0],buf,4096); close(fds[0]); close(fds[1]);
  int ok=0; for(int s=0;s<200&&!ok;s++) ok=t_check(buf,4096,victim,s)<0; if(!ok){ bad++; fprintf(stderr,"round %d: pipe has foreign data\n",round);} }
 printf("bad %ld\n",bad); pmv_destroy(ctx); return bad!=0;}

int main(void)
{
	int failed = 0;

	failed += t_run_child("vmsplice_then_migrate_4k", pipe_never_sees_another_page, 0, 0);
	failed += t_run_child("vmsplice_then_exchange_4k", pipe_never_sees_another_page, 0, 1);
	if (t_thp_enabled()) {
		failed += t_run_child("vmsplice_then_migrate_2m", pipe_never_sees_another_page, 1, 0);
		failed += t_run_child("vmsplice_then_exchange_2m", pipe_never_sees_another_page, 1, 1);
	} else {
		printf("note: THP disabled, 2 MB parts not run\n");
	}
	printf("pins: %d sub-tests failed\n", failed);
	return failed ? T_EXIT_FAIL : T_EXIT_PASS;
}
