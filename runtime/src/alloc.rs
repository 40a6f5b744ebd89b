//! The allocator of every program linking the runtime (the `tdspec` binary, the bench):
//! mimalloc instead of the system's. Lint and check make many small short-lived allocations per
//! spec (parse, sema, accounting), where glibc's malloc and free took about a third of the
//! time; the training kernels allocate from their own pools either way.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (the same index in its v2 and v3 headers).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps freed memory mapped (the allocator's purging off): training allocates and frees the
/// same large buffers every step, which would otherwise go back to the OS and be faulted in
/// again, zeroed, at 4 KiB a time (a DDPM step was 2% slower than with glibc's allocator).
/// Call once at program start. Process-wide: the memory high-water mark stays reserved.
pub fn keep_freed_memory() {
    // SAFETY: sets a plain integer option of the allocator; no memory is touched.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}
