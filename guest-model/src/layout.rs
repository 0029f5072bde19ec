//! The fixed memory layout every toy image shares.
//!
//! A toy image is loaded at [`VIRT_BASE`]; page `i` of the image is PFN `i` (the
//! builder maps the bootstrap region 1:1, PFN order = VA order, as every Xen PV
//! builder does). The pages, in order:
//!
//! | page (= PFN) | name | contents |
//! |---|---|---|
//! | 0 .. [`PG_HYPERCALL`] | code | entry at page 0, runtime and guest code, then read-only strings |
//! | [`PG_HYPERCALL`] | hypercall page | zero in the image; Xen fills it (`XEN_DOMCTL_hypercall_init`) |
//! | [`PG_GLOBALS`] | globals | the [status block](self#status-block) at offset 0, runtime variables after it |
//! | [`PG_XS_REPLY`] | xenstore reply | payload of the last xenstore reply (up to 4 KiB) |
//! | [`PG_SCRATCH`] | scratch | xenstore request builder, watch-event copy, number formatting |
//! | [`PG_SHINFO`] | shared_info slot | remapped by the guest onto shared_info with `update_va_mapping` |
//! | [`PG_FLL`] | p2m frame-list-list | MFNs of the frame-list pages (`arch.pfn_to_mfn_frame_list_list`) |
//! | [`PG_FL`] | p2m frame list | MFNs of the p2m pages (one page: up to 512 p2m pages = 262144 PFNs) |
//! | [`PG_TRAP_STACK`] | trap stack | `kernel_sp` for traps and syscalls from guest user mode |
//! | [`PG_STACK`] .. [`PG_GUEST`] | stack | the guest's own kernel stack (it switches to it at entry) |
//! | [`PG_GUEST`] .. | guest region | per-guest workload pages (see each guest's module) |
//!
//! # Status block
//!
//! The first bytes of the globals page are the same in every guest, so a harness can
//! read progress without knowing which guest runs. Each field is a little-endian `u64`
//! at [`status_va`]` + offset` (PFN [`PG_GLOBALS`], byte offset as listed):
//!
//! | offset | const | meaning |
//! |---|---|---|
//! | 0x00 | [`ST_MAGIC`] | [`STATUS_MAGIC`] once the guest has started |
//! | 0x08 | [`ST_STEPS`] | workload steps completed (the oracle's input) |
//! | 0x10 | [`ST_RESUMES`] | suspends that returned 0 (resumed in a new domain) |
//! | 0x18 | [`ST_CANCELS`] | suspends that returned 1 (cancelled / checkpoint) |
//! | 0x20 | [`ST_SUSPENDS`] | `SCHEDOP_shutdown(SHUTDOWN_suspend)` calls made |
//! | 0x28 | [`ST_STATE`] | [`STATE_BOOTING`], [`STATE_RUNNING`], [`STATE_DONE`] or [`STATE_CRASHED`] |
//! | 0x30 | [`ST_ERROR`] | on a crash: the failing value (usually a negative errno) |
//! | 0x38 | [`ST_BOOTS`] | times the entry point ran (always 1) |
//! | 0x40.. | `ST_GUEST0`.. | guest-specific counters (see each guest) |

/// Virtual address the image is loaded at (PFN 0). Lower-half, canonical, in L4 slot
/// 0, L3 slot 0, L2 slot 2.
pub const VIRT_BASE: u64 = 0x40_0000;
/// Page size.
pub const PAGE: u64 = 4096;

/// Pages of code + strings (the code is much smaller; the rest is zero).
pub const CODE_PAGES: u64 = 8;
/// The hypercall page.
pub const PG_HYPERCALL: u64 = CODE_PAGES;
/// Globals: status block and runtime variables.
pub const PG_GLOBALS: u64 = CODE_PAGES + 1;
/// Xenstore reply buffer.
pub const PG_XS_REPLY: u64 = CODE_PAGES + 2;
/// Scratch: request builder, watch buffer, number formatting.
pub const PG_SCRATCH: u64 = CODE_PAGES + 3;
/// The page whose mapping the guest points at shared_info.
pub const PG_SHINFO: u64 = CODE_PAGES + 4;
/// p2m frame-list-list page.
pub const PG_FLL: u64 = CODE_PAGES + 5;
/// p2m frame-list page.
pub const PG_FL: u64 = CODE_PAGES + 6;
/// Stack for traps/syscalls from user mode (`stack_switch`).
pub const PG_TRAP_STACK: u64 = CODE_PAGES + 7;
/// First page of the guest's kernel stack.
pub const PG_STACK: u64 = CODE_PAGES + 8;
/// Stack pages.
pub const STACK_PAGES: u64 = 2;
/// First page of the guest-specific region.
pub const PG_GUEST: u64 = PG_STACK + STACK_PAGES;

/// Most p2m pages one frame-list page describes: the guest supports at most this many
/// times 512 PFNs.
pub const MAX_P2M_PAGES: u64 = 512;
/// Largest `nr_pages` the runtime supports (one frame-list page).
pub const MAX_NR_PAGES: u64 = MAX_P2M_PAGES * 512;

/// Virtual address of image page `pg`.
#[must_use]
pub const fn va(pg: u64) -> u64 {
    VIRT_BASE + pg * PAGE
}

/// Virtual address of the status block.
#[must_use]
pub const fn status_va() -> u64 {
    va(PG_GLOBALS)
}

/// Status: magic.
pub const ST_MAGIC: u64 = 0x00;
/// Status: workload steps completed.
pub const ST_STEPS: u64 = 0x08;
/// Status: resumes in a new domain.
pub const ST_RESUMES: u64 = 0x10;
/// Status: cancelled suspends.
pub const ST_CANCELS: u64 = 0x18;
/// Status: suspend hypercalls made.
pub const ST_SUSPENDS: u64 = 0x20;
/// Status: state.
pub const ST_STATE: u64 = 0x28;
/// Status: error value of a crash.
pub const ST_ERROR: u64 = 0x30;
/// Status: boots.
pub const ST_BOOTS: u64 = 0x38;
/// Status: first guest-specific counter.
pub const ST_GUEST0: u64 = 0x40;
/// Status: second guest-specific counter.
pub const ST_GUEST1: u64 = 0x48;
/// Status: third guest-specific counter.
pub const ST_GUEST2: u64 = 0x50;
/// Status: fourth guest-specific counter.
pub const ST_GUEST3: u64 = 0x58;

/// `"xitoy-v1"` as a little-endian u64.
pub const STATUS_MAGIC: u64 = u64::from_le_bytes(*b"xitoy-v1");

/// State: the entry point ran, setup not finished.
pub const STATE_BOOTING: u64 = 1;
/// State: set up, running the workload.
pub const STATE_RUNNING: u64 = 2;
/// State: reached its `steps=` limit and powered off.
pub const STATE_DONE: u64 = 3;
/// State: crashed itself (`SHUTDOWN_crash`) after an unexpected error.
pub const STATE_CRASHED: u64 = 4;

// ---------------------------------------------------------------------------------
// Runtime variables in the globals page (private to the runtime; documented for
// debugging). All u64 unless noted.

pub(crate) const G_START_INFO: u64 = 0x100;
pub(crate) const G_NR_PAGES: u64 = 0x108;
pub(crate) const G_MFN_LIST: u64 = 0x110;
pub(crate) const G_STORE_VA: u64 = 0x118;
pub(crate) const G_STORE_PORT: u64 = 0x120;
pub(crate) const G_CONSOLE_VA: u64 = 0x128;
pub(crate) const G_CONSOLE_PORT: u64 = 0x130;
pub(crate) const G_XS_REQ_ID: u64 = 0x138;
pub(crate) const G_XS_WAITING: u64 = 0x140;
pub(crate) const G_XS_HAVE_REPLY: u64 = 0x148;
pub(crate) const G_XS_REPLY_TYPE: u64 = 0x150;
pub(crate) const G_XS_REPLY_LEN: u64 = 0x158;
pub(crate) const G_WATCH_FIRED: u64 = 0x160;
pub(crate) const G_SB_LEN: u64 = 0x168;
pub(crate) const G_RESUME_HOOK: u64 = 0x170;
pub(crate) const G_WATCH_HOOK: u64 = 0x178;
pub(crate) const G_SUSPEND_RC: u64 = 0x180;
pub(crate) const G_SI_MFN: u64 = 0x188;
pub(crate) const G_DOMID: u64 = 0x190;
pub(crate) const G_TIMER_PORT: u64 = 0x198;
pub(crate) const G_TIMER_FIRED: u64 = 0x1a0;
pub(crate) const G_SAVED_KSP: u64 = 0x1a8;
pub(crate) const G_USER_RESUME: u64 = 0x1b0;
pub(crate) const G_EXPECT: u64 = 0x1b8;
pub(crate) const G_TRAP_ERR: u64 = 0x1c0;
pub(crate) const G_TRAP_CR2: u64 = 0x1c8;
pub(crate) const G_SYSCALL_RAX: u64 = 0x1d0;
pub(crate) const G_TMP0: u64 = 0x1d8;
pub(crate) const G_TMP3: u64 = 0x1f0;
/// Port handler table: 8 slots of `{port u64, handler u64}`.
pub(crate) const G_HANDLERS: u64 = 0x200;
pub(crate) const HANDLER_SLOTS: u64 = 8;
/// xenstore header scratch (16 bytes).
pub(crate) const G_XS_HDR: u64 = 0x280;
/// Hypercall argument structs.
pub(crate) const G_ARG_SCHED: u64 = 0x2a0;
pub(crate) const G_ARG_EVTCHN: u64 = 0x2c0;
pub(crate) const G_ARG_CALLBACK: u64 = 0x2e0;
pub(crate) const G_ARG_MMUEXT: u64 = 0x300;
pub(crate) const G_ARG_MMU: u64 = 0x320;
pub(crate) const G_ARG_TIMER: u64 = 0x340;
/// Guest-private variables (0x400..0x800).
pub(crate) const G_GUEST: u64 = 0x400;
/// Trap table (`set_trap_table`): up to 31 entries + terminator, 16 bytes each.
pub(crate) const G_TRAPS: u64 = 0x800;

// Scratch page offsets.
/// xenstore request payload builder (2 KiB).
pub(crate) const S_REQ: u64 = 0;
pub(crate) const S_REQ_MAX: u64 = 1024 - 16;
/// Copy of the last watch event payload (1 KiB).
pub(crate) const S_WATCH: u64 = 0x800;
/// Number formatting output (64 bytes).
pub(crate) const S_FMT: u64 = 0xc00;
/// Number formatting temp (32 bytes).
pub(crate) const S_FMT_TMP: u64 = 0xc40;

/// Absolute address of a globals field.
#[must_use]
pub(crate) const fn g(off: u64) -> u64 {
    va(PG_GLOBALS) + off
}

/// Absolute address in the scratch page.
#[must_use]
pub(crate) const fn s(off: u64) -> u64 {
    va(PG_SCRATCH) + off
}
