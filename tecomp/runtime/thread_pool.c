/* tecomp's thread pool for parallel loops; linked (hidden) into every compiled library.
 *
 * tecomp_parallel_launch(fn, closure, n) runs fn(closure) on the calling thread and on up to
 * n - 1 pool workers at once; fn claims chunks of the loop from a counter in its closure
 * until none is left (codegen/llvm_parallel.py), so it does not matter how many threads
 * run it. Unlike an OpenMP team, the caller waits only for the workers that joined: when
 * it has run out of chunks it closes the job, and a worker that other processes kept off
 * its core and had not joined by then skips the job instead of holding up the caller.
 *
 * tecomp_parallel_team(fn, closure, steps, phases, limits, threads) runs a serial loop whose
 * body is a sequence of phases (a parallel loop's iterations, or statements for one thread)
 * on one team for all its steps instead of one launch per parallel loop and step: the
 * members split each phase's work the same way at every step, so each keeps its share of a
 * recurrent weight in its own cache, and wait for the phase to finish before the next. The
 * team is whoever joins while its first member waits a moment (MEMBER_WAIT_SPINS); later
 * arrivals skip it, so a descheduled worker costs the team a member, not a deadlock.
 *
 * Workers start on the first launch that wants them, spin for a while after a job (the
 * next kernel follows within microseconds) and then sleep on a condition variable. A
 * launch while another is running (from another thread), and any launch in a forked
 * child before it starts workers of its own, run fn on the calling thread alone.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>

#define HIDDEN __attribute__((visibility("hidden")))
#define MAX_WORKERS 255
#define CLOSED 0x80000000u
#define SPINS 200000     /* pause loops before a worker sleeps: about 10 ms */
#define WAIT_SPINS 20000 /* pause loops the caller waits for a joined worker before yielding */
#define MEMBER_WAIT_SPINS 2000 /* pause loops a team's first member waits for the others to join */

typedef void (*tecomp_task_fn)(void *);

static pthread_mutex_t pool_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_wake = PTHREAD_COND_INITIALIZER;
static int pool_workers;       /* started (under pool_mutex) */
static int pool_sleepers;      /* waiting on pool_wake (under pool_mutex) */
static int pool_fork_handler;  /* pthread_atfork registered (under pool_mutex) */
static atomic_uint_fast64_t job_generation;
static tecomp_task_fn job_fn;
static void *job_closure;
static atomic_uint job_wanted;    /* workers that may join the current job */
static atomic_uint job_entered;   /* workers that joined, | CLOSED once the caller is done */
static atomic_uint job_finished;  /* workers that joined and returned */
static atomic_int pool_busy;      /* a launch is running */

static inline void relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#else
    sched_yield();
#endif
}

static int join_job(void) {
    unsigned entered = atomic_load_explicit(&job_entered, memory_order_acquire);
    for (;;) {
        if ((entered & CLOSED) || entered >= atomic_load_explicit(&job_wanted, memory_order_relaxed))
            return 0;
        if (atomic_compare_exchange_weak_explicit(&job_entered, &entered, entered + 1, memory_order_acq_rel,
                                                  memory_order_acquire))
            return 1;
    }
}

static void *worker_main(void *start) {
    uint_fast64_t seen = (uint_fast64_t)(uintptr_t)start;
    for (;;) {
        uint_fast64_t now;
        long spins = 0;
        while ((now = atomic_load_explicit(&job_generation, memory_order_acquire)) == seen) {
            if (++spins < SPINS) {
                relax();
                continue;
            }
            pthread_mutex_lock(&pool_mutex);
            pool_sleepers++;
            while (atomic_load_explicit(&job_generation, memory_order_acquire) == seen)
                pthread_cond_wait(&pool_wake, &pool_mutex);
            pool_sleepers--;
            pthread_mutex_unlock(&pool_mutex);
            spins = 0;
        }
        seen = now;
        if (join_job()) {
            job_fn(job_closure);
            atomic_fetch_add_explicit(&job_finished, 1, memory_order_release);
        }
    }
    return 0;
}

static void forget_workers(void) { /* in a forked child: the parent's workers do not exist here */
    pthread_mutex_t fresh_mutex = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t fresh_cond = PTHREAD_COND_INITIALIZER;
    pool_mutex = fresh_mutex;
    pool_wake = fresh_cond;
    pool_workers = pool_sleepers = 0;
    atomic_store(&pool_busy, 0);
}

static void start_workers(unsigned wanted) { /* under pool_mutex */
    if (!pool_fork_handler) {
        pthread_atfork(0, 0, forget_workers);
        pool_fork_handler = 1;
    }
    while ((unsigned)pool_workers < wanted && pool_workers < MAX_WORKERS) {
        pthread_t thread;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        void *start = (void *)(uintptr_t)atomic_load(&job_generation);
        int failed = pthread_create(&thread, &attr, worker_main, start);
        pthread_attr_destroy(&attr);
        if (failed)
            break; /* fewer workers: the caller takes their chunks */
        pool_workers++;
    }
}

HIDDEN void tecomp_parallel_launch(tecomp_task_fn fn, void *closure, int threads) {
    if (threads < 2 || atomic_exchange_explicit(&pool_busy, 1, memory_order_acquire)) {
        fn(closure);
        return;
    }
    unsigned helpers = (unsigned)threads - 1;
    pthread_mutex_lock(&pool_mutex);
    start_workers(helpers);
    job_fn = fn;
    job_closure = closure;
    atomic_store_explicit(&job_wanted, helpers < (unsigned)pool_workers ? helpers : (unsigned)pool_workers,
                          memory_order_relaxed);
    atomic_store_explicit(&job_finished, 0, memory_order_relaxed);
    atomic_store_explicit(&job_entered, 0, memory_order_release);
    atomic_fetch_add_explicit(&job_generation, 1, memory_order_release);
    if (pool_sleepers)
        pthread_cond_broadcast(&pool_wake);
    pthread_mutex_unlock(&pool_mutex);
    fn(closure);
    unsigned joined = atomic_fetch_or_explicit(&job_entered, CLOSED, memory_order_acq_rel) & ~CLOSED;
    for (long spins = 0; atomic_load_explicit(&job_finished, memory_order_acquire) < joined; spins++) {
        if (spins < WAIT_SPINS)
            relax();
        else
            sched_yield(); /* a worker still in its last chunk may be waiting for this core */
    }
    atomic_store_explicit(&pool_busy, 0, memory_order_release);
}

/* One chunk of one phase: fn(closure, step, phase, chunk, chunks). */
typedef void (*tecomp_phase_fn)(void *, int64_t, int32_t, int64_t, int64_t);

struct team_job {
    tecomp_phase_fn fn;
    void *closure;
    int64_t steps;
    int32_t phases;
    const int64_t *limits; /* the most chunks each phase splits into (1: one member runs it) */
    unsigned wanted;
    atomic_uint members;           /* joined, | CLOSED once the team is fixed */
    atomic_int_fast64_t finished;  /* chunks finished, over all steps and phases */
};

static void team_member(void *arg) {
    struct team_job *job = arg;
    unsigned seen = atomic_load_explicit(&job->members, memory_order_acquire);
    do {
        if (seen & CLOSED)
            return;
    } while (!atomic_compare_exchange_weak_explicit(&job->members, &seen, seen + 1, memory_order_acq_rel,
                                                    memory_order_acquire));
    unsigned me = seen, team;
    if (me == 0) { /* the first member fixes the team */
        for (long spins = 0; spins < MEMBER_WAIT_SPINS; spins++) {
            if (atomic_load_explicit(&job->members, memory_order_acquire) >= job->wanted)
                break;
            relax();
        }
        team = atomic_fetch_or_explicit(&job->members, CLOSED, memory_order_acq_rel) & ~CLOSED;
    } else {
        while (!((team = atomic_load_explicit(&job->members, memory_order_acquire)) & CLOSED))
            relax();
        team &= ~CLOSED;
    }
    int_fast64_t before = 0; /* chunks of the phases up to this one */
    for (int64_t step = 0; step < job->steps; step++) {
        for (int32_t phase = 0; phase < job->phases; phase++) {
            int64_t chunks = job->limits[phase] < (int64_t)team ? job->limits[phase] : (int64_t)team;
            if ((int64_t)me < chunks) {
                job->fn(job->closure, step, phase, me, chunks);
                atomic_fetch_add_explicit(&job->finished, 1, memory_order_release);
            }
            before += chunks;
            while (atomic_load_explicit(&job->finished, memory_order_acquire) < before)
                relax();
        }
    }
}

HIDDEN void tecomp_parallel_team(tecomp_phase_fn fn, void *closure, int64_t steps, int32_t phases,
                                 const int64_t *limits, int threads) {
    /* a launch while another runs gets no workers: then the first member need not wait for any */
    int alone = threads < 2 || atomic_load_explicit(&pool_busy, memory_order_acquire);
    struct team_job job = {.fn = fn, .closure = closure, .steps = steps, .phases = phases, .limits = limits,
                           .wanted = alone ? 1u : (unsigned)threads};
    atomic_init(&job.members, 0);
    atomic_init(&job.finished, 0);
    tecomp_parallel_launch(team_member, &job, threads);
}
