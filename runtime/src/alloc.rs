//! The allocator of every program linking the runtime (the `tdspec` binary, the bench):
//! mimalloc instead of the system's. Lint and check make many small short-lived allocations per
//! spec (parse, sema, accounting), where glibc's malloc and free took about a third of the
//! time; the training kernels allocate from their own pools either way.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (the same index in its v2 and v3 headers).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Sets the allocator up for this program; call once at the start of `main`.
///
/// Purging off: training allocates and frees the same large buffers every step, which would
/// otherwise go back to the OS and be faulted in again, zeroed, 4 KiB at a time (a DDPM step was
/// 2% slower than with glibc's allocator). Process-wide: the memory high-water mark stays
/// reserved. Transparent huge pages off: on a kernel that compacts memory on a huge-page fault
/// (`defrag = madvise`), the first training step spent 1.3 s more in the kernel with them, and
/// later steps gained nothing. (mimalloc's own option for this is read before `main` runs,
/// when its first arena is mapped; the process-wide switch is honoured at every fault.)
pub fn configure() {
    // SAFETY: sets a plain integer option of the allocator; no memory is touched.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    // SAFETY: PR_SET_THP_DISABLE only sets a flag of this process's memory map.
    #[cfg(target_os = "linux")]
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}
