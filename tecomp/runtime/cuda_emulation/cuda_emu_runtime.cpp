/* cuda_emu_runtime.cpp: the scheduler behind cuda_emu.h, compiled once per machine and shared.
 *
 * tecomp_emu_launch runs a kernel's blocks one after another. Without barriers a block's
 * threads are plain calls; with them every thread is a fiber (its own stack) and
 * __syncthreads() returns to the scheduler, which resumes a thread only when every thread of
 * the block has reached the barrier (a thread that ends while others wait is barrier
 * divergence). Blocks and threads run in the order asked: ascending, descending, or a shuffle
 * drawn again at every barrier from a seed. A fault (segmentation fault, bus error, arithmetic
 * exception, a fiber's stack overflow) ends the launch with a message naming the block and
 * thread; so does a misaligned access or an out-of-bounds index into a fixed-size array, which
 * the kernels (compiled with -fsanitize=alignment,bounds) report to the handlers here.
 * Single-threaded: one launch at a time per process. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

extern "C" {
struct uint3 { unsigned int x, y, z; };
uint3 threadIdx, blockIdx, blockDim, gridDim;
typedef void (*tecomp_emu_thunk)(void**);
}

namespace {

const size_t kStack = 64 * 1024;   /* per fiber; kernels keep small local arrays */
const int kMaxThreads = 1024;
enum { RUNNING, WAITING, DONE };

struct Fiber {
  ucontext_t context;
  int state;
  unsigned int tid;
};

Fiber fibers[kMaxThreads];
char* stacks = 0;          /* kMaxThreads stacks, each above a guard page */
size_t page = 4096;
ucontext_t scheduler;
int current = -1;          /* the running fiber, -1 outside fibers */
tecomp_emu_thunk kernel;
void** kernel_args;
char message[2048];
int failed = 0;
sigjmp_buf fault_exit;
unsigned long long rng_state;

void fail(const char* fmt, ...) {
  if (failed) return;
  failed = 1;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(message, sizeof message, fmt, ap);
  va_end(ap);
}

void where(char* out, size_t n) {
  snprintf(out, n, "block (%u, %u, %u) thread (%u, %u, %u)", blockIdx.x, blockIdx.y, blockIdx.z,
           threadIdx.x, threadIdx.y, threadIdx.z);
}

void on_fault(int sig, siginfo_t* info, void*) {
  char at[128];
  where(at, sizeof at);
  const char* what = sig == SIGSEGV ? "segmentation fault" : sig == SIGBUS ? "bus error"
                     : sig == SIGFPE ? "arithmetic exception (integer division by zero?)" : "illegal instruction";
  fail("%s at address %p in %s", what, info->si_addr, at);
  siglongjmp(fault_exit, 1);
}

const int kSignals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL};
struct sigaction saved[4];
stack_t saved_stack;
char alt_stack[64 * 1024];

void catch_faults() {
  stack_t ss;
  ss.ss_sp = alt_stack;
  ss.ss_size = sizeof alt_stack;
  ss.ss_flags = 0;
  sigaltstack(&ss, &saved_stack);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_fault;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  for (int i = 0; i < 4; ++i) sigaction(kSignals[i], &sa, &saved[i]);
}

void release_faults() {
  for (int i = 0; i < 4; ++i) sigaction(kSignals[i], &saved[i], 0);
  sigaltstack(&saved_stack, 0);
}

unsigned int next_random() {  /* splitmix64 */
  unsigned long long z = (rng_state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return (unsigned int)((z ^ (z >> 31)) >> 32);
}

/* order[0..n): 0 ascending, 1 descending, 2 a fresh shuffle */
void make_order(unsigned int* order, unsigned int n, int mode) {
  for (unsigned int i = 0; i < n; ++i) order[i] = mode == 1 ? n - 1 - i : i;
  if (mode == 2)
    for (unsigned int i = n; i > 1; --i) {
      unsigned int j = next_random() % i, t = order[i - 1];
      order[i - 1] = order[j];
      order[j] = t;
    }
}

unsigned long long gcd(unsigned long long a, unsigned long long b) {
  while (b) {
    unsigned long long t = a % b;
    a = b;
    b = t;
  }
  return a;
}

void set_thread(unsigned int tid) {
  threadIdx.x = tid % blockDim.x;
  threadIdx.y = tid / blockDim.x % blockDim.y;
  threadIdx.z = tid / (blockDim.x * blockDim.y);
}

void fiber_main() {
  kernel(kernel_args);
  fibers[current].state = DONE;
}

bool ensure_stacks() {
  if (stacks) return true;
  page = (size_t)sysconf(_SC_PAGESIZE);
  size_t each = kStack + page;
  void* p = mmap(0, each * kMaxThreads, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return false;
  stacks = (char*)p;
  for (int i = 0; i < kMaxThreads; ++i) mprotect(stacks + i * each, page, PROT_NONE);
  return true;
}

/* The threads of one block with barriers: rounds of "run every waiting thread to its next barrier". */
bool run_fibers(unsigned int n, unsigned int* order, int mode) {
  size_t each = kStack + page;
  for (unsigned int i = 0; i < n; ++i) {
    Fiber& f = fibers[i];
    getcontext(&f.context);
    f.context.uc_stack.ss_sp = stacks + i * each + page;
    f.context.uc_stack.ss_size = kStack;
    f.context.uc_link = &scheduler;
    makecontext(&f.context, fiber_main, 0);
    f.state = WAITING;
    f.tid = i;
  }
  for (;;) {
    make_order(order, n, mode);
    unsigned int waiting = 0, done = 0;
    for (unsigned int k = 0; k < n; ++k) {
      Fiber& f = fibers[order[k]];
      if (f.state != WAITING) continue;
      current = (int)order[k];
      set_thread(f.tid);
      f.state = RUNNING;
      swapcontext(&scheduler, &f.context);
      current = -1;
      if (failed) return false;
    }
    for (unsigned int i = 0; i < n; ++i) (fibers[i].state == DONE ? done : waiting) += 1;
    if (waiting == 0) return true;
    if (done != 0) {
      fail("__syncthreads() reached by %u of the %u threads of block (%u, %u, %u); the others ended "
           "(barrier divergence)", waiting, n, blockIdx.x, blockIdx.y, blockIdx.z);
      return false;
    }
  }
}

}  // namespace

extern "C" {

void tecomp_emu_syncthreads(void) {
  if (current < 0) {
    fail("__syncthreads() in a kernel launched without fibers (the launcher found no barrier in its source)");
    return;
  }
  Fiber& f = fibers[current];
  f.state = WAITING;
  swapcontext(&f.context, &scheduler);
}

const char* tecomp_emu_message(void) { return message; }

/* dims: grid x, y, z then block x, y, z. Returns 0, or 1 with tecomp_emu_message() saying why. */
int tecomp_emu_launch(tecomp_emu_thunk thunk, void** args, const long long* dims, int mode, unsigned int seed,
                      int uses_barrier) {
  failed = 0;
  message[0] = 0;
  rng_state = seed;
  gridDim.x = (unsigned int)dims[0]; gridDim.y = (unsigned int)dims[1]; gridDim.z = (unsigned int)dims[2];
  blockDim.x = (unsigned int)dims[3]; blockDim.y = (unsigned int)dims[4]; blockDim.z = (unsigned int)dims[5];
  unsigned long long blocks = (unsigned long long)gridDim.x * gridDim.y * gridDim.z;
  unsigned int threads = blockDim.x * blockDim.y * blockDim.z;
  if (threads == 0 || threads > (unsigned int)kMaxThreads) {
    fail("a block of %u threads (the limit is %d)", threads, kMaxThreads);
    return 1;
  }
  if (uses_barrier && !ensure_stacks()) {
    fail("cannot map the fibers' stacks");
    return 1;
  }
  kernel = thunk;
  kernel_args = args;
  unsigned int order[kMaxThreads];
  catch_faults();
  if (sigsetjmp(fault_exit, 1)) {
    current = -1;
    release_faults();
    return 1;
  }
  unsigned long long stride = 1, start = 0;  /* a shuffle of the blocks: k -> (start + k * stride) % blocks */
  if (mode == 2 && blocks > 1) {
    start = next_random() % blocks;
    for (stride = 1 + next_random() % blocks; gcd(stride, blocks) != 1; ++stride) {
    }
  }
  for (unsigned long long k = 0; k < blocks && !failed; ++k) {
    unsigned long long b = mode == 0 ? k : mode == 1 ? blocks - 1 - k : (start + k * stride) % blocks;
    blockIdx.x = (unsigned int)(b % gridDim.x);
    blockIdx.y = (unsigned int)(b / gridDim.x % gridDim.y);
    blockIdx.z = (unsigned int)(b / ((unsigned long long)gridDim.x * gridDim.y));
    if (uses_barrier) {
      run_fibers(threads, order, mode);
    } else {
      make_order(order, threads, mode);
      for (unsigned int i = 0; i < threads && !failed; ++i) {
        set_thread(order[i]);
        thunk(args);
      }
    }
  }
  release_faults();
  return failed;
}

/* -fsanitize=alignment,bounds calls these (GCC's UBSan ABI); no UBSan runtime is linked. */
struct SourceLocation { const char* file; unsigned int line, column; };
struct TypeDescriptor { unsigned short kind, info; char name[1]; };
struct TypeMismatchData { SourceLocation loc; const TypeDescriptor* type; unsigned char log_alignment, kind; };
struct OutOfBoundsData { SourceLocation loc; const TypeDescriptor* array_type; const TypeDescriptor* index_type; };

void __ubsan_handle_type_mismatch_v1(TypeMismatchData* d, unsigned long ptr) {
  char at[128];
  where(at, sizeof at);
  unsigned long align = 1UL << d->log_alignment;
  if (ptr == 0)
    fail("%s:%u:%u: null pointer access to %s in %s", d->loc.file, d->loc.line, d->loc.column, d->type->name, at);
  else if (ptr & (align - 1))
    fail("%s:%u:%u: misaligned access to %s at %#lx, which needs %lu-byte alignment, in %s", d->loc.file,
         d->loc.line, d->loc.column, d->type->name, ptr, align, at);
  else
    fail("%s:%u:%u: invalid access to %s at %#lx in %s", d->loc.file, d->loc.line, d->loc.column,
         d->type->name, ptr, at);
}

void __ubsan_handle_type_mismatch_v1_abort(TypeMismatchData* d, unsigned long ptr) {
  __ubsan_handle_type_mismatch_v1(d, ptr);
}

void __ubsan_handle_out_of_bounds(OutOfBoundsData* d, unsigned long index) {
  char at[128];
  where(at, sizeof at);
  unsigned int bits = 1u << (d->index_type->info >> 1);
  long long value = (long long)index;
  if ((d->index_type->info & 1) && bits < 64) value = (long long)(index << (64 - bits)) >> (64 - bits);
  fail("%s:%u:%u: index %lld out of bounds for %s in %s", d->loc.file, d->loc.line, d->loc.column,
       value, d->array_type->name, at);
}

void __ubsan_handle_out_of_bounds_abort(OutOfBoundsData* d, unsigned long index) {
  __ubsan_handle_out_of_bounds(d, index);
}

}  // extern "C"
