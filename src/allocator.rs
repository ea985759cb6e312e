//! The global allocator: mimalloc, called the way its own `malloc` is fastest.
//!
//! The core allocates a few small strings and boxes per alert. glibc's malloc spent a fifth of
//! a replay's time in malloc/free (profiled); mimalloc much less. But the `mimalloc` crate's
//! allocator sends *every* request through `mi_malloc_aligned`, and mimalloc v3 serves that
//! from its plain free lists only when the block size is a power of two: a 384-byte incident
//! or alert, with alignment 8, instead took the generic path and was over-allocated into the
//! next size class, each time (callgrind: 26,702 of 32,484 slow-path allocations in 20,000
//! alerts went that way; known upstream as purpleprotocol/mimalloc_rust#170).
//!
//! [`Allocator`] calls plain `mi_malloc` when the plain call already gives the alignment asked
//! for, as Rust's own `System` allocator does with `malloc`, and the aligned calls otherwise.
//! Why the plain call suffices there: mimalloc's size classes are every multiple of 8 bytes up
//! to 64, then multiples of 16, and a page's first block is 16-aligned; so a request whose size
//! is a multiple of its alignment (at most 16) lands in a class that is a multiple of it too,
//! and every block of the class is aligned. That holds as this crate builds mimalloc: without
//! its `debug` or `secure` features, whose padding after each block would shift the classes. A
//! test allocates every such shape, several at a time, and checks.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys::{
    mi_free, mi_malloc, mi_malloc_aligned, mi_realloc, mi_realloc_aligned, mi_zalloc,
    mi_zalloc_aligned,
};

/// mimalloc as the global allocator (see the module's doc for why not `mimalloc::MiMalloc`).
pub struct Allocator;

/// The largest alignment plain `mi_malloc` guarantees (mimalloc's `MI_MAX_ALIGN_SIZE`).
const PLAIN_ALIGN: usize = 16;

/// Whether plain `mi_malloc(size)` returns memory aligned for `align`.
#[inline(always)]
fn plain(size: usize, align: usize) -> bool {
    align <= PLAIN_ALIGN && size >= align && size % align == 0
}

// SAFETY: every method forwards to the mimalloc call for its job. The plain calls are used only
// where `plain` holds, where mimalloc's blocks are aligned as asked (module doc; tested below);
// `mi_free` frees blocks from either kind of call.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let (size, align) = (layout.size(), layout.align());
        // SAFETY: mimalloc's allocation calls take any size and a power-of-two alignment.
        unsafe {
            if plain(size, align) {
                mi_malloc(size).cast()
            } else {
                mi_malloc_aligned(size, align).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let (size, align) = (layout.size(), layout.align());
        // SAFETY: as in `alloc`.
        unsafe {
            if plain(size, align) {
                mi_zalloc(size).cast()
            } else {
                mi_zalloc_aligned(size, align).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: the caller passes a block this allocator returned.
        unsafe { mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let align = layout.align();
        // SAFETY: the caller passes a block this allocator returned, with its layout; the
        // result must be aligned for the same alignment at the new size.
        unsafe {
            if plain(new_size, align) {
                mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                mi_realloc_aligned(ptr.cast::<c_void>(), new_size, align).cast()
            }
        }
    }
}

/// Turns transparent huge pages off for this process (`prctl(PR_SET_THP_DISABLE)`; Linux only,
/// a no-op elsewhere). mimalloc v3 asks the kernel for huge pages on every region it maps
/// (`madvise(MADV_HUGEPAGE)`), and where the kernel's THP mode is `madvise` (Debian's and
/// many distributions' default) each first touch of a fresh 2 MiB region then faults in a whole
/// huge page: zeroed, and compacted for if need be, on the thread that touched it. Profiled on
/// the load harness's two-stage round, that zeroing (`clear_page_erms` under
/// `vma_alloc_anon_folio_pmd`) was 22 % of the samples on the stages' worker threads, and it
/// came back whenever mimalloc handed freed memory back to the kernel and took it again; the cost
/// per alert varied from run to run with how much compaction the kernel did. With 4 KiB pages a
/// fresh page costs a fault and 4 KiB of zeroing, paid once per page actually used
/// (docs/benchmarks.md). Redis recommends the same for its latency. The process-wide flag also
/// covers librdkafka's allocations, which do not ask for huge pages anyway.
pub fn without_transparent_huge_pages() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_THP_DISABLE takes one integer argument (1: disable) and unused zeros;
        // it only sets a flag on this process's memory map.
        let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sizes the plain path serves for `align`: every multiple up to 1 KiB, then a spread up
    /// to past mimalloc's small and medium size classes.
    fn plain_sizes(align: usize) -> impl Iterator<Item = usize> {
        let small = (1..=1024 / align).map(move |k| k * align);
        let larger = (0..40usize).map(move |k| (1024 + k * 1_337).next_multiple_of(align));
        let huge = [64 * 1024, 1 << 20, (1 << 20) + align, 5 << 20];
        small.chain(larger).chain(huge)
    }

    #[test]
    fn every_plain_shape_comes_back_aligned_and_usable() {
        let a = Allocator;
        for align in [1, 2, 4, 8, 16] {
            for size in plain_sizes(align) {
                assert!(plain(size, align));
                let layout = Layout::from_size_align(size, align).unwrap();
                // Several at once, so that blocks come from the middle of pages, not only
                // their first.
                let blocks: Vec<*mut u8> = (0..8).map(|_| unsafe { a.alloc(layout) }).collect();
                for &p in &blocks {
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size} align {align}");
                    unsafe {
                        p.write_bytes(0xa5, size);
                        a.dealloc(p, layout);
                    }
                }
                let z = unsafe { a.alloc_zeroed(layout) };
                assert_eq!(z as usize % align, 0);
                assert!(unsafe { std::slice::from_raw_parts(z, size) }
                    .iter()
                    .all(|&b| b == 0));
                unsafe { a.dealloc(z, layout) };
            }
        }
    }

    #[test]
    fn realloc_keeps_contents_and_alignment_on_both_paths() {
        let a = Allocator;
        for align in [1, 8, 16, 32, 64, 4096] {
            let layout = Layout::from_size_align(align, align).unwrap();
            let mut p = unsafe { a.alloc(layout) };
            let mut size = align;
            unsafe { p.write_bytes(7, size) };
            for new_size in [align * 3, align * 40, align * 2, align * 1000 + align] {
                let old = Layout::from_size_align(size, align).unwrap();
                p = unsafe { a.realloc(p, old, new_size) };
                assert!(!p.is_null());
                assert_eq!(p as usize % align, 0, "align {align} size {new_size}");
                let kept = size.min(new_size);
                assert!(unsafe { std::slice::from_raw_parts(p, kept) }
                    .iter()
                    .all(|&b| b == 7));
                unsafe { p.write_bytes(7, new_size) };
                size = new_size;
            }
            unsafe { a.dealloc(p, Layout::from_size_align(size, align).unwrap()) };
        }
    }

    #[test]
    fn shapes_the_plain_call_cannot_promise_take_the_aligned_one() {
        assert!(!plain(24, 16)); // a 24-byte class would be only 8-aligned
        assert!(!plain(8, 16));
        assert!(!plain(64, 32));
        assert!(!plain(4, 8));
        assert!(plain(384, 8));
        assert!(plain(48, 16));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn huge_pages_are_off_for_the_process_once_asked() {
        without_transparent_huge_pages().unwrap();
        // SAFETY: PR_GET_THP_DISABLE takes no argument and returns the flag.
        let flag = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
        assert_eq!(flag, 1);
        // The allocator keeps working as before.
        let v: Vec<u64> = (0..1 << 20).collect();
        assert_eq!(v[12_345], 12_345);
    }
}
