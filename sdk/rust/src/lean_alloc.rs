//! The lean build's allocator: dlmalloc over a 1 MiB zeroed arena in `.bss`, then
//! `memory.grow` past it.
//!
//! Every request runs in a fresh instance. With the standard library's allocator each one grows
//! linear memory on its first allocations, and in wasmtime's pooling allocator a `memory.grow`
//! makes pages accessible (`mprotect`) that the slot's reset then takes away again: measured at
//! ~60 µs per request. The arena is part of the initial memory instead, so a request that needs
//! less than 1 MiB never grows memory, and only the pages it touched are reset afterwards.

use core::alloc::{GlobalAlloc, Layout};
use core::arch::wasm32;
use core::cell::UnsafeCell;
use core::ptr;

use dlmalloc::{Allocator, Dlmalloc};

const PAGE: usize = 64 * 1024;
const ARENA: usize = 1024 * 1024;

#[repr(C, align(65536))]
struct Arena(UnsafeCell<[u8; ARENA]>);

// SAFETY: wasm32-unknown-unknown without the atomics feature has one thread.
unsafe impl Sync for Arena {}

static ARENA_BYTES: Arena = Arena(UnsafeCell::new([0; ARENA]));

/// The system side of dlmalloc: the arena once, then fresh pages from `memory.grow`.
struct System {
    arena_given: UnsafeCell<bool>,
}

// SAFETY: as above, one thread.
unsafe impl Send for System {}

// SAFETY: regions handed out are never handed out twice and stay valid for the instance's life.
unsafe impl Allocator for System {
    fn alloc(&self, size: usize) -> (*mut u8, usize, u32) {
        // SAFETY: one thread, and dlmalloc calls this under the allocator's own exclusive use.
        let given = unsafe { &mut *self.arena_given.get() };
        if !*given && size <= ARENA {
            *given = true;
            return (ARENA_BYTES.0.get().cast(), ARENA, 0);
        }
        let pages = size.div_ceil(PAGE);
        let prev = wasm32::memory_grow(0, pages);
        if prev == usize::MAX {
            return (ptr::null_mut(), 0, 0);
        }
        ((prev * PAGE) as *mut u8, pages * PAGE, 0)
    }

    fn remap(&self, _: *mut u8, _: usize, _: usize, _: bool) -> *mut u8 {
        ptr::null_mut()
    }

    fn free_part(&self, _: *mut u8, _: usize, _: usize) -> bool {
        false
    }

    fn free(&self, _: *mut u8, _: usize) -> bool {
        false
    }

    fn can_release_part(&self, _: u32) -> bool {
        false
    }

    fn allocates_zeros(&self) -> bool {
        true
    }

    fn page_size(&self) -> usize {
        PAGE
    }
}

/// The `#[global_allocator]` of lean builds.
pub struct LeanAlloc(UnsafeCell<Dlmalloc<System>>);

// SAFETY: one thread (see above); dlmalloc is never entered twice at once.
unsafe impl Sync for LeanAlloc {}

impl LeanAlloc {
    pub const fn new() -> Self {
        Self(UnsafeCell::new(Dlmalloc::new_with_allocator(System {
            arena_given: UnsafeCell::new(false),
        })))
    }
}

impl Default for LeanAlloc {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: forwards to dlmalloc, which upholds `GlobalAlloc`'s contract for its own regions.
unsafe impl GlobalAlloc for LeanAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { (*self.0.get()).malloc(layout.size(), layout.align()) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        unsafe { (*self.0.get()).calloc(layout.size(), layout.align()) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { (*self.0.get()).free(ptr, layout.size(), layout.align()) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        unsafe { (*self.0.get()).realloc(ptr, layout.size(), layout.align(), new_size) }
    }
}
