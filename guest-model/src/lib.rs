//! # guest-model
//!
//! Toy PV guests written in real x86-64 machine code (assembled once with iced-x86's
//! `CodeAssembler`), each with an oracle that says what its memory and console must
//! hold after a given number of workload steps. [`toy`] makes an image from a name
//! and an `xl`-style `extra` string; [`guests`] has the guests and their oracles;
//! [`layout`] the page map; [`isa`] the instruction subset.
//!
//! # The image contract (what the domain builder and Xen must provide)
//!
//! A [`ToyImage`] is a flat kernel: `bytes` (a whole number of pages: code, then zeroed
//! data and bss) is loaded at `virt_base` = [`layout::VIRT_BASE`] = `0x40_0000`, image
//! page `i` in PFN `i`. The builder lays out the rest of the start-of-day region after
//! it as every Xen PV builder does (abi.md §4): p2m list, start_info, xenstore page,
//! console page, bootstrap page tables (mapped read-only), stack, padding; and:
//!
//! - maps the whole bootstrap region 1:1 in PFN order at `virt_base + 4096 * pfn`,
//!   read-write (except the page tables); U/S need not be set (libxc leaves it clear
//!   in L1 entries): Xen ORs it into every entry of a 64-bit PV guest, whose kernel
//!   runs in ring 3 and whose user-mode code (pagetable) runs from the same pages;
//!   the guest derives PFNs from VAs this way (`pfn = (va - virt_base) >> 12`)
//!   and VAs of the store and console rings from their MFNs through the M2P;
//! - places the p2m list page-aligned (`start_info.mfn_list`, `nr_pages` u64 entries);
//! - fills the hypercall page (`XEN_DOMCTL_hypercall_init` on PFN
//!   [`layout::PG_HYPERCALL`], VA [`ToyImage::hypercall_page`]) as Xen does for 64-bit
//!   PV: stub `i` at `+32 * i` is `push rcx; push r11; mov $i, eax; syscall; pop r11;
//!   pop rcx; ret`, and stub 23 (iret) is `push rcx; push r11; push rax; mov $23, eax;
//!   syscall` (the guest jumps to it with `[flags, rip, cs, rflags, rsp, ss]` on its
//!   stack);
//! - fills start_info (magic `xen-3.0-x86_64`, `nr_pages`, `shared_info` machine
//!   address, `store_mfn`/`store_evtchn`, `console.domU.mfn`/`evtchn`, `pt_base`,
//!   `nr_pt_frames`, `mfn_list`, `cmd_line`); `nr_pages` ≤ [`layout::MAX_NR_PAGES`];
//! - maps Xen's read-only M2P at `MACH2PHYS_VIRT_START` (L4 slot 256), as Xen does;
//! - starts vCPU 0 in kernel mode at `entry` (= `virt_base`) with `rsi` = start_info's
//!   VA, RFLAGS.DF = 0 (the guest uses `rep movs/stos` forward), CS/SS the flat kernel
//!   selectors. The guest switches to its own stack (in the image) before using any,
//!   so the initial `rsp` is not used; the events mask may start as 0 or 1;
//! - creates the xenstore home `/local/domain/<id>` with `domid` = `"<id>"`,
//!   `control/shutdown` (guest-writable), `control/feature-suspend` (optional), and
//!   `data/` (guest-writable, for pingpong), and introduces the domain to xenstored.
//!
//! # What the guest does at boot, in order
//!
//! 1. `mov rsp, own stack`; records start_info; checks its magic ("xen-3.0-").
//! 2. `set_trap_table` (vectors 0, 1, 3–8, 10–14, 16–19, each with TI_IF, CS
//!    `FLAT_KERNEL_CS64`); `callback_op(CALLBACKOP_register)` for the event callback
//!    (flags 0), failsafe (`CALLBACKF_mask_events`) and syscall (mask events);
//!    `stack_switch(FLAT_KERNEL_SS, trap stack)`.
//! 3. `update_va_mapping(page PG_SHINFO, shared_info | P|RW|US|A|D, UVMF_INVLPG)`, then
//!    `vcpu_info[0].evtchn_upcall_mask = 1`.
//! 4. The p2m frame list list (as Linux's `xen_setup_mfn_list_list`): frame list page
//!    entries = MFNs of the p2m pages, FLL[0] = MFN of the frame list, then
//!    `shared_info.arch.max_pfn = nr_pages`, `pfn_to_mfn_frame_list_list = MFN(FLL)`.
//! 5. Store and console rings: VA from `m2p[mfn]`; `EVTCHNOP_unmask` on both ports.
//! 6. xenstore: `WRITE control/feature-suspend 1` (failure ignored), `WATCH
//!    control/shutdown 0` (the immediate event is consumed like any other).
//! 7. The guest's own setup (VIRQ_TIMER for epoch; xenstore nodes for pingpong), its
//!    start line, then the workload. Every hypercall failure crashes it with a console
//!    line `<name>: error: <what> <value>` and `SHUTDOWN_crash`.
//!
//! # Suspend and resume (exactly the Linux PV sequence, stream.md §5)
//!
//! At a safe point, a fired `control/shutdown` watch reads the node; `suspend` makes the
//! guest print `<name>: suspending`, write `""` to `control/shutdown` (the ack), convert
//! `start_info.store_mfn` and `console.domU.mfn` to PFNs through the M2P, unmap the
//! shared_info page (`update_va_mapping(.., 0, ..)`), and call
//! `sched_op(SCHEDOP_shutdown, &{SHUTDOWN_suspend})` with **rdx = start_info's MFN**.
//! On return 1 (cancelled / checkpoint) it converts the two PFNs back to MFNs, re-maps
//! shared_info, rebuilds the frame list list and prints `<name>: suspend cancelled
//! <n>`. On return 0 (new domain) it re-maps shared_info from `start_info.shared_info`,
//! rebuilds the frame list list, takes the rings and ports fresh from start_info,
//! unmasks them, re-binds its own channels (guest hook), re-registers its watches and
//! prints `<name>: resumed <n>`. `poweroff`/`halt`/`reboot` in `control/shutdown` are
//! acknowledged the same way and end in `SHUTDOWN_poweroff`/`reboot`.
//!
//! # Events
//!
//! Guests run with events masked and poll at safe points; they wait with
//! `SCHEDOP_block`, and an upcall that arrives when block re-enables events is
//! returned from at once with the `iret` hypercall, events masked again (see
//! `runtime`). So the model must deliver upcalls correctly but the guests never depend
//! on their timing.
#![forbid(unsafe_code)]

mod asm;
pub mod elf;
pub mod guests;
pub mod isa;
pub mod layout;
pub mod oracle;
pub mod params;
mod runtime;

#[cfg(test)]
mod tests;

pub use guests::counter::CounterOracle;
pub use oracle::{GuestMemory, OracleError, Status, Stop};
pub use params::{Guest, Hostile, Role, ToyParams};

use layout::{va, CODE_PAGES, PAGE, PG_GUEST, PG_HYPERCALL, VIRT_BASE};

/// A toy guest kernel image and what the domain builder needs to know about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToyImage {
    /// The guest's name (`counter`, `epoch`, `pagetable`, `pingpong`, `checksum`).
    pub name: &'static str,
    /// Where `bytes` is loaded ([`VIRT_BASE`]); the image's page `i` is PFN `i`.
    pub virt_base: u64,
    /// Entry point (= `virt_base`).
    pub entry: u64,
    /// Virtual address of the page Xen fills with hypercall stubs.
    pub hypercall_page: u64,
    /// The image, a whole number of pages (code, zeroed data and bss).
    pub bytes: Vec<u8>,
    /// The parameters it was built for.
    pub params: ToyParams,
    /// Length of the instruction part of the code (strings follow it).
    pub code_len: usize,
}

impl ToyImage {
    /// Pages in the image.
    #[must_use]
    pub fn pages(&self) -> u64 {
        self.bytes.len() as u64 / PAGE
    }

    /// PFN of the hypercall page.
    #[must_use]
    pub fn hypercall_pfn(&self) -> hypervisor::Pfn {
        hypervisor::Pfn::new(PG_HYPERCALL)
    }

    /// The instructions (without the string literals that follow them).
    #[must_use]
    pub fn code(&self) -> &[u8] {
        &self.bytes[..self.code_len]
    }
}

/// Why a toy image could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToyError {
    /// No toy guest has this name.
    #[error("unknown toy guest {name:?} (known: counter, epoch, pagetable, pingpong, checksum)")]
    UnknownGuest {
        /// The name asked for.
        name: String,
    },
    /// A command-line token is not `key=value`.
    #[error("toy parameter {token:?} is not key=value")]
    Malformed {
        /// The token.
        token: String,
    },
    /// The guest does not take this key.
    #[error("toy guest {guest} has no parameter {key:?}")]
    UnknownKey {
        /// The guest.
        guest: &'static str,
        /// The key.
        key: String,
    },
    /// A key was given twice.
    #[error("toy parameter {key:?} given twice")]
    DuplicateKey {
        /// The key.
        key: String,
    },
    /// A value is out of range or not a number.
    #[error("toy parameter {key}={value:?}: {reason}")]
    BadValue {
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A required key is missing.
    #[error("toy guest {guest} needs parameter {key:?}")]
    MissingKey {
        /// The guest.
        guest: &'static str,
        /// The key.
        key: &'static str,
    },
    /// The assembler rejected the code (a bug in this crate).
    #[error("assembling the toy guest failed: {0}")]
    Assemble(String),
}

/// The image of toy guest `name` with parameters parsed from `extra`.
///
/// # Errors
/// [`ToyError::UnknownGuest`] or a parameter error naming the key.
pub fn toy(name: &str, extra: &str) -> Result<ToyImage, ToyError> {
    let guest =
        Guest::from_name(name).ok_or_else(|| ToyError::UnknownGuest { name: name.into() })?;
    build(&ToyParams::parse(guest, extra)?)
}

/// The image for `params`. Deterministic: equal parameters give equal bytes.
///
/// # Errors
/// [`ToyError::Assemble`] (a bug) only.
pub fn build(params: &ToyParams) -> Result<ToyImage, ToyError> {
    let name = params.guest.name();
    let err = |e: iced_x86::IcedError| ToyError::Assemble(e.to_string());
    let mut x = asm::Asm::new(name).map_err(err)?;
    let rt = runtime::Rt::new(&mut x);
    let mut gen = runtime::Gen { x, rt, p: params };
    // The runtime starts with the entry point, so it lands at VIRT_BASE.
    gen.emit_runtime().map_err(err)?;
    let region = guests::emit(&mut gen).map_err(err)?;
    let out = gen.x.finish(VIRT_BASE).map_err(err)?;
    if out.bytes.len() as u64 > CODE_PAGES * PAGE {
        return Err(ToyError::Assemble(format!(
            "code is {} bytes, more than the {CODE_PAGES} code pages",
            out.bytes.len()
        )));
    }
    let mut bytes = vec![0u8; ((PG_GUEST + region) * PAGE) as usize];
    bytes[..out.bytes.len()].copy_from_slice(&out.bytes);
    Ok(ToyImage {
        name,
        virt_base: VIRT_BASE,
        entry: VIRT_BASE,
        hypercall_page: va(PG_HYPERCALL),
        bytes,
        params: params.clone(),
        code_len: out.code_len,
    })
}
