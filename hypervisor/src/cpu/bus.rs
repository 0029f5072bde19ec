//! The interpreter's view of the machine: a [`Bus`] that translates and accesses guest virtual
//! memory, the [`Fault`] it may raise, and the [`Exit`]s that hand control back to the model.

/// Exception vectors the interpreter raises.
pub mod vector {
    /// Divide error.
    pub const DE: u8 = 0;
    /// Debug (int1/icebp).
    pub const DB: u8 = 1;
    /// Breakpoint (int3), a trap: `rip` already points past the instruction.
    pub const BP: u8 = 3;
    /// Invalid opcode.
    pub const UD: u8 = 6;
    /// Stack-segment fault (non-canonical stack reference).
    pub const SS: u8 = 12;
    /// General protection.
    pub const GP: u8 = 13;
    /// Page fault.
    pub const PF: u8 = 14;
}

/// Page-fault error-code bits (what a [`Bus`] puts in [`Fault::error_code`] for #PF).
pub mod pf_error {
    /// The page was present (a protection violation, not a missing page).
    pub const PRESENT: u32 = 1 << 0;
    /// The access was a write.
    pub const WRITE: u32 = 1 << 1;
    /// The access came from user mode (always, for a ring-3 PV guest).
    pub const USER: u32 = 1 << 2;
    /// A reserved bit was set in a paging-structure entry.
    pub const RSVD: u32 = 1 << 3;
    /// The access was an instruction fetch.
    pub const FETCH: u32 = 1 << 4;
}

/// A guest exception, as hardware would deliver it: vector, error code (for the vectors that
/// push one) and, for #PF, the faulting linear address that goes to `cr2`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// Exception vector (see [`vector`]).
    pub vector: u8,
    /// Error code, for the vectors that have one (#GP, #SS, #PF, ...).
    pub error_code: Option<u32>,
    /// The faulting linear address (#PF only).
    pub cr2: Option<u64>,
}

impl Fault {
    /// #UD.
    pub const UD: Fault = Fault {
        vector: vector::UD,
        error_code: None,
        cr2: None,
    };
    /// #DE.
    pub const DE: Fault = Fault {
        vector: vector::DE,
        error_code: None,
        cr2: None,
    };
    /// #BP (delivered with `rip` after the int3).
    pub const BP: Fault = Fault {
        vector: vector::BP,
        error_code: None,
        cr2: None,
    };
    /// #DB from `int1`.
    pub const DB: Fault = Fault {
        vector: vector::DB,
        error_code: None,
        cr2: None,
    };

    /// #GP with an error code (0 for most causes).
    pub const fn gp(code: u32) -> Fault {
        Fault {
            vector: vector::GP,
            error_code: Some(code),
            cr2: None,
        }
    }

    /// #SS(0).
    pub const fn ss() -> Fault {
        Fault {
            vector: vector::SS,
            error_code: Some(0),
            cr2: None,
        }
    }

    /// #PF at `addr` with the given error code (see [`pf_error`]).
    pub const fn pf(addr: u64, error_code: u32) -> Fault {
        Fault {
            vector: vector::PF,
            error_code: Some(error_code),
            cr2: Some(addr),
        }
    }
}

/// The identity and version of a code page returned by [`Bus::fetch_page`].
///
/// `key` names the backing page (a machine frame number, say) and keys the decode cache, so
/// two virtual mappings of one frame share decoded instructions. `gen` must change whenever
/// the page's bytes change; the cache re-decodes a page whose generation moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CodePage {
    /// Identity of the backing 4 KiB page.
    pub key: u64,
    /// Generation of its contents.
    pub gen: u64,
}

/// Guest memory as the vCPU sees it: translation, permission checks and access.
///
/// All addresses are guest linear addresses (segment bases already added). The interpreter
/// has already checked canonicality. Every access is all-or-nothing: an access that straddles
/// two pages must check both before touching either, so a faulting instruction leaves memory
/// unchanged.
pub trait Bus {
    /// Translates `va` for an instruction fetch (execute permission), returning the backing
    /// page and its current generation, or the fault (#PF with [`pf_error::FETCH`]).
    fn fetch_page(&mut self, va: u64) -> Result<CodePage, Fault>;

    /// The bytes of a page previously returned by [`Bus::fetch_page`].
    fn code_bytes(&self, key: u64) -> &[u8; 4096];

    /// Whether `page` (as returned by `fetch_page` earlier in this run) is still what a fetch
    /// at the same address would return. Called after every instruction that stored to
    /// memory, so a store into the running page (self-modifying code) or into the page tables
    /// that map it takes effect at the next instruction, as on hardware.
    fn code_page_current(&self, page: CodePage) -> bool;

    /// Reads `buf.len()` bytes (1..=16) at `va`, which may straddle a page boundary.
    fn read(&mut self, va: u64, buf: &mut [u8]) -> Result<(), Fault>;

    /// Writes `data` (1..=16 bytes) at `va`, which may straddle a page boundary. A write to a
    /// code page must bump that page's generation.
    fn write(&mut self, va: u64, data: &[u8]) -> Result<(), Fault>;

    /// Writes `data` to `va`, which the caller has just read with [`Bus::read`] as part of a
    /// locked read-modify-write (xchg, cmpxchg, xadd, `lock` ALU). The default is a plain
    /// write; the model may use it for write-fault accounting.
    fn write_rmw(&mut self, va: u64, data: &[u8]) -> Result<(), Fault> {
        self.write(va, data)
    }
}

/// Why [`run`](super::run) returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// `syscall` executed: `rip` points past it, `rcx` holds that return address and `r11`
    /// the RFLAGS at the time (RF cleared), exactly as hardware leaves them before jumping
    /// to LSTAR. The model decides whether this is a hypercall or a guest system call.
    Syscall,
    /// An exception to deliver to the guest. Faults leave `rip` at the faulting instruction
    /// and the architectural state as it was before it; traps (#BP from int3, #DB from int1)
    /// leave `rip` after the instruction. `int n` (other than 3) is reported as
    /// #GP(`n * 8 + 2`) with `rip` at the instruction, as Xen's IDT has DPL 0 there; the
    /// model emulates Xen's check of the guest trap table.
    Exception(Fault),
    /// The instruction budget ran out; `rip` is at the next instruction to execute (or inside
    /// a `rep` string instruction, with rcx/rsi/rdi updated, exactly as an interrupt would
    /// leave it).
    Budget,
}
