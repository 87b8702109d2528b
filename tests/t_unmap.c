/* SPDX-License-Identifier: MIT */
/*
 * The program's own munmap(2) of the middle of a region and mremap(2) move
 * of its tail, while a mover migrates every page all the time: the rest
 * keeps every byte, the moved pages keep theirs at the new address and
 * move from there, resident bytes settle at exactly what is still mapped,
 * and pmv_munmap of the original range and of the moved part succeed.
 */
#include <pthread.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "harness.h"
static pmv_ctx *ctx; static char *base; static size_t np, psz; static atomic_int stop; static atomic_long badst;
static void *mover(void *a){ void *pages[512]; int to[512], st[512]; int t=1; (void)a;
 while(!atomic_load(&stop)){ for(size_t i=0;i<np;i++){pages[i]=base+i*psz; to[i]=t;} pmv_move_pages(ctx,np,pages,to,st,0);
  for(size_t i=0;i<np;i++) {
   if(st[i]!=t && st[i]!=-EBUSY && st[i]!=-EFAULT){ if(badst<5) fprintf(stderr,"page %zu status %d\n",i,st[i]); badst++;}
  }
  t^=1;
 }
 return NULL;
}
static uint64_t resident(void){ struct pmv_tier_stats a,b; pmv_tier_stats(ctx,0,&a); pmv_tier_stats(ctx,1,&b); return a.resident_bytes+b.resident_bytes;}
static int unmap_and_mremap_while_migrating(int huge, int unused){ (void)unused; psz=huge?T_SZ_2M:T_SZ_4K; np=huge?16:256; long bad=0;
 ctx=t_ctx(2,NULL,0); base=pmv_mmap(ctx,np*psz,0,huge?PMV_HUGE:0);
 for(size_t i=0;i<np;i++) t_fill(base+i*psz,psz,i,3);
 pthread_t th; pthread_create(&th,NULL,mover,NULL); usleep(50000);
 /* munmap middle quarter */
 size_t m0=np/4, m1=np/2; syscall(SYS_munmap, base+m0*psz, (m1-m0)*psz);
 usleep(50000);
 /* mremap last quarter to a new place */
 size_t r0=3*np/4; char *dst=mmap(NULL,(np-r0)*psz+psz,PROT_NONE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0); dst=(char*)(((uintptr_t)dst+psz-1)&~(psz-1)); munmap(dst,(np-r0)*psz);
 char *nw=(char*)syscall(SYS_mremap, base+r0*psz,(np-r0)*psz,(np-r0)*psz,MREMAP_MAYMOVE|MREMAP_FIXED,dst);
 if(nw!=dst){ perror("mremap"); return 1;}
 usleep(100000); atomic_store(&stop,1); pthread_join(th,NULL);
 for(size_t i=0;i<np;i++){ if(i>=m0&&i<m1) continue; char *p = i>=r0? nw+(i-r0)*psz : base+i*psz; if(t_check(p,psz,i,3)>=0){ bad++; if(bad<5) fprintf(stderr,"page %zu bad\n",i);} }
 /* move pages at the new address */
 void *pg[64]; int to[64], st[64]; size_t k=0; for(size_t i=r0;i<np&&k<64;i++){ pg[k]=nw+(i-r0)*psz; to[k++]=0;} int left=pmv_move_pages(ctx,k,pg,to,st,0);
 printf("moves at new place: left %d st0 %d\n",left,st[0]);
 for(size_t i=r0;i<np;i++) if(t_check(nw+(i-r0)*psz,psz,i,3)>=0) bad++;
 uint64_t want=(np-(m1-m0))*psz, got=0; for(int i=0;i<50;i++){ got=resident(); if(got==want) break; usleep(20000);} 
 printf("bad %ld badst %ld resident %llu want %llu\n",bad,(long)badst,(unsigned long long)got,(unsigned long long)want);
 int r=pmv_munmap(ctx,base,(r0)*psz); printf("pmv_munmap old rest: %d (%s)\n",r,pmv_errmsg());
 r=pmv_munmap(ctx,nw,(np-r0)*psz); printf("pmv_munmap new: %d\n",r);
 printf("resident after %llu\n",(unsigned long long)resident());
 pmv_destroy(ctx); return bad||badst||got!=want; }

int main(void)
{
	int failed = t_run_child("unmap_and_mremap_while_migrating_4k", unmap_and_mremap_while_migrating, 0, 0);

	if (t_thp_enabled())
		failed += t_run_child("unmap_and_mremap_while_migrating_2m", unmap_and_mremap_while_migrating, 1, 0);
	else
		printf("note: THP disabled, 2 MB part not run\n");
	printf("unmap: %d sub-tests failed\n", failed);
	return failed ? T_EXIT_FAIL : T_EXIT_PASS;
}
