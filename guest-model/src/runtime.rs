//! The guest runtime: routines assembled into every toy guest.
//!
//! # Calling convention
//!
//! Arguments in rdi, rsi, rdx, rcx; result in rax. rax, rcx, rdx, rsi, rdi and
//! r8–r11 are clobbered; rbx, rbp, r12–r15 and rsp are preserved. Hypercalls go
//! through the hypercall page (`call hypercall_page + 32 * nr`, arguments in rdi, rsi,
//! rdx, r10, r8).
//!
//! # Events
//!
//! The guest runs with events masked (`vcpu_info[0].evtchn_upcall_mask = 1`) and polls
//! at safe points ([`Rt::safe_point`]): if `evtchn_pending_sel` or
//! `evtchn_upcall_pending` is set it runs the 2-level consumer loop
//! ([`Rt::poll_events`]: clear `upcall_pending`, exchange `pending_sel` with 0, for each
//! selected word take `pending & ~mask`, clear those pending bits with one `lock and`,
//! call the handler registered for each port). It waits with `SCHEDOP_block`, which
//! unmasks events; if Xen then delivers an upcall, the event callback clears IF in the
//! bounce frame's saved RFLAGS and returns with the `iret` hypercall, so events are
//! masked again and the consumer loop runs at the next safe point.
//!
//! # Xenstore
//!
//! One request at a time: the payload is built in the scratch page
//! ([`Rt::sb_reset`], [`Rt::sb_str`], [`Rt::sb_u64`], ...), [`Rt::xs_request`] writes
//! header and payload into the request ring when there is room for the whole message,
//! publishes `req_prod`, notifies, and waits for a reply. [`Rt::xs_poll`] (also the store
//! port's event handler) consumes complete messages from the response ring: a
//! `XS_WATCH_EVENT` sets bit `t` of the watch-fired mask for a one-digit token `t`;
//! anything else is the reply to the outstanding request.
//!
//! # Suspend
//!
//! Watch token 0 is `control/shutdown`. At a safe point a fired watch reads the node;
//! `suspend` runs [`Rt::do_suspend`], the Linux PV sequence (see the crate docs).

use core::mem::offset_of;

use iced_x86::code_asm::*;

use hypervisor::abi::console::{XENCONS_OUT, XENCONS_OUT_CONS, XENCONS_OUT_PROD, XENCONS_OUT_SIZE};
use hypervisor::abi::evtchn::{
    EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnBindVirq, EVTCHNOP_ALLOC_UNBOUND,
    EVTCHNOP_BIND_INTERDOMAIN, EVTCHNOP_BIND_VIRQ, EVTCHNOP_CLOSE, EVTCHNOP_SEND, EVTCHNOP_UNMASK,
};
use hypervisor::abi::hypercall as hc;
use hypervisor::abi::mm::{
    MmuextOp, FLAT_KERNEL_SS64, FLAT_USER_CS64, FLAT_USER_SS64, MACH2PHYS_VIRT_START, PTE_ACCESSED,
    PTE_DIRTY, PTE_PRESENT, PTE_RW, PTE_USER,
};
use hypervisor::abi::sched::{
    SCHEDOP_BLOCK, SCHEDOP_SHUTDOWN, SCHEDOP_YIELD, SHUTDOWN_CRASH, SHUTDOWN_POWEROFF,
    SHUTDOWN_REBOOT, SHUTDOWN_SUSPEND,
};
use hypervisor::abi::shared::{
    ArchSharedInfo, ArchVcpuInfo, SharedInfo, StartInfo, VcpuInfo, VcpuTimeInfo,
};
use hypervisor::abi::vcpu::{TrapInfo, TI_IF};
use hypervisor::abi::xs_wire::{
    XENSTORE_RING_SIZE, XS_ERROR, XS_READ, XS_RING_REQ_CONS, XS_RING_REQ_PROD, XS_RING_RSP,
    XS_RING_RSP_CONS, XS_RING_RSP_PROD, XS_WATCH, XS_WATCH_EVENT, XS_WRITE,
};
use hypervisor::types::DomId;

use crate::asm::{hypercall_stub, Asm, AsmResult};
use crate::layout::*;

// ---------------------------------------------------------------------------------
// Addresses.

pub(crate) const SHINFO: u64 = va(PG_SHINFO);
pub(crate) const V_PENDING: u64 = SHINFO + offset_of!(VcpuInfo, evtchn_upcall_pending) as u64;
pub(crate) const V_MASK: u64 = SHINFO + offset_of!(VcpuInfo, evtchn_upcall_mask) as u64;
pub(crate) const V_SEL: u64 = SHINFO + offset_of!(VcpuInfo, evtchn_pending_sel) as u64;
pub(crate) const V_CR2: u64 =
    SHINFO + (offset_of!(VcpuInfo, arch) + offset_of!(ArchVcpuInfo, cr2)) as u64;
const V_TIME: u64 = SHINFO + offset_of!(VcpuInfo, time) as u64;
const T_VERSION: u64 = V_TIME + offset_of!(VcpuTimeInfo, version) as u64;
const T_TSC: u64 = V_TIME + offset_of!(VcpuTimeInfo, tsc_timestamp) as u64;
const T_SYSTIME: u64 = V_TIME + offset_of!(VcpuTimeInfo, system_time) as u64;
const T_MUL: u64 = V_TIME + offset_of!(VcpuTimeInfo, tsc_to_system_mul) as u64;
const T_SHIFT: u64 = V_TIME + offset_of!(VcpuTimeInfo, tsc_shift) as u64;
pub(crate) const EV_PENDING: u64 = SHINFO + offset_of!(SharedInfo, evtchn_pending) as u64;
pub(crate) const EV_MASK: u64 = SHINFO + offset_of!(SharedInfo, evtchn_mask) as u64;
const SH_MAX_PFN: u64 =
    SHINFO + (offset_of!(SharedInfo, arch) + offset_of!(ArchSharedInfo, max_pfn)) as u64;
const SH_FLL: u64 = SHINFO
    + (offset_of!(SharedInfo, arch) + offset_of!(ArchSharedInfo, pfn_to_mfn_frame_list_list))
        as u64;

const SI_NR_PAGES: i32 = offset_of!(StartInfo, nr_pages) as i32;
const SI_SHARED_INFO: i32 = offset_of!(StartInfo, shared_info) as i32;
const SI_STORE_MFN: i32 = offset_of!(StartInfo, store_mfn) as i32;
const SI_STORE_EVTCHN: i32 = offset_of!(StartInfo, store_evtchn) as i32;
const SI_CONSOLE_MFN: i32 = offset_of!(StartInfo, console_mfn) as i32;
const SI_CONSOLE_EVTCHN: i32 = offset_of!(StartInfo, console_evtchn) as i32;
const SI_MFN_LIST: i32 = offset_of!(StartInfo, mfn_list) as i32;
pub(crate) const SI_PT_BASE: i32 = offset_of!(StartInfo, pt_base) as i32;

/// Top of the guest's kernel stack.
pub(crate) const STACK_TOP: u64 = va(PG_STACK + STACK_PAGES);
/// Top of the stack for traps and syscalls from user mode.
pub(crate) const TRAP_STACK_TOP: u64 = va(PG_TRAP_STACK + 1);

/// PTE flags of a normal read-write kernel mapping (a 64-bit PV kernel runs in ring 3,
/// so U/S is set).
pub(crate) const PTE_KERNEL_RW: u64 = PTE_PRESENT | PTE_RW | PTE_USER | PTE_ACCESSED | PTE_DIRTY;
/// PTE flags of a read-only mapping.
pub(crate) const PTE_KERNEL_RO: u64 = PTE_PRESENT | PTE_USER | PTE_ACCESSED;

/// Global flag set while a crash is being reported (no recursion).
const G_IN_FATAL: u64 = 0x1f8;

/// Expected-entry codes for [`Rt::enter_user`].
pub(crate) const EXPECT_SYSCALL: u64 = 1;
/// The user code is expected to page-fault.
pub(crate) const EXPECT_PAGE_FAULT: u64 = 2;

/// Iterations of a waiting loop before the guest gives up.
const WAIT_LIMIT: u32 = 1_000_000;

/// The exception vectors the trap table covers, and whether each pushes an error code.
const TRAPS: [(u8, bool); 17] = [
    (0, false),
    (1, false),
    (3, false),
    (4, false),
    (5, false),
    (6, false),
    (7, false),
    (8, true),
    (10, true),
    (11, true),
    (12, true),
    (13, true),
    (14, true),
    (16, false),
    (17, true),
    (18, false),
    (19, false),
];

macro_rules! labels {
    ($($name:ident),* $(,)?) => {
        /// Labels of the runtime routines (created up front so guest code can call them
        /// before they are emitted).
        #[allow(missing_docs)]
        pub(crate) struct Rt {
            $(pub $name: CodeLabel,)*
            pub traps: Vec<CodeLabel>,
        }
        impl Rt {
            pub(crate) fn new(x: &mut Asm) -> Rt {
                Rt { $($name: x.label(),)* traps: TRAPS.iter().map(|_| x.label()).collect() }
            }
        }
    };
}

labels!(
    entry,
    rt_init,
    guest_main,
    console_write,
    print_u64,
    print_i64,
    fmt_u64,
    parse_u64,
    sb_reset,
    sb_str,
    sb_byte,
    sb_u64,
    ring_put,
    ring_get,
    xs_send,
    xs_request,
    xs_poll,
    xs_notify,
    streq_reply,
    parse_reply,
    poll_events,
    handle_port,
    register_handler,
    clear_handlers,
    unregister_handler,
    wait_event,
    safe_point,
    handle_watches,
    check_shutdown,
    do_suspend,
    evtchn_send,
    evtchn_unmask,
    evtchn_close,
    bind_virq,
    alloc_unbound,
    bind_interdomain,
    mfn_to_pfn,
    pfn_to_mfn,
    va_to_mfn,
    pfn_to_va,
    map_shared_info,
    unmap_shared_info,
    setup_fll,
    connect_rings,
    fatal,
    crash,
    done,
    shutdown,
    xen_clock_ns,
    set_timer,
    enter_user,
    event_callback,
    failsafe_callback,
    syscall_callback,
    trap_report,
    user_fault,
    mask_port,
    clear_pending,
    nop_handler,
);

/// Memory operand helpers (absolute addresses in the image).
pub(crate) fn m64(addr: u64) -> AsmMemoryOperand {
    qword_ptr(addr)
}
pub(crate) fn m32(addr: u64) -> AsmMemoryOperand {
    dword_ptr(addr)
}
pub(crate) fn m8(addr: u64) -> AsmMemoryOperand {
    byte_ptr(addr)
}

/// Code emitters shared by the runtime and the guests.
pub(crate) struct Gen<'p> {
    pub x: Asm,
    pub rt: Rt,
    pub p: &'p crate::params::ToyParams,
}

impl Gen<'_> {
    /// Prints a literal (clobbers caller-saved registers).
    pub(crate) fn print(&mut self, s: &str) -> AsmResult {
        let n = self.x.lea_lit(rdi, s.as_bytes())?;
        self.x.a.mov(esi, n)?;
        self.x.a.call(self.rt.console_write)
    }

    /// Prints `"<name>: "` followed by `s`.
    pub(crate) fn print_tagged(&mut self, s: &str) -> AsmResult {
        let line = format!("{}: {s}", self.x.name);
        self.print(&line)
    }

    /// Appends a literal to the xenstore request payload.
    pub(crate) fn sb_lit(&mut self, s: &str) -> AsmResult {
        let n = self.x.lea_lit(rdi, s.as_bytes())?;
        self.x.a.mov(esi, n)?;
        self.x.a.call(self.rt.sb_str)
    }

    /// Appends a NUL to the payload.
    pub(crate) fn sb_nul(&mut self) -> AsmResult {
        self.x.a.xor(edi, edi)?;
        self.x.a.call(self.rt.sb_byte)
    }

    /// Sends request `ty` with the payload built so far; eax = 0 on success.
    pub(crate) fn xs(&mut self, ty: u32) -> AsmResult {
        self.x.a.mov(edi, ty)?;
        self.x.a.call(self.rt.xs_request)
    }

    /// `XS_READ path` (relative or absolute).
    pub(crate) fn xs_read_lit(&mut self, path: &str) -> AsmResult {
        self.x.a.call(self.rt.sb_reset)?;
        self.sb_lit(path)?;
        self.sb_nul()?;
        self.xs(XS_READ)
    }

    /// `XS_WRITE path value`.
    pub(crate) fn xs_write_lit(&mut self, path: &str, value: &str) -> AsmResult {
        self.x.a.call(self.rt.sb_reset)?;
        self.sb_lit(path)?;
        self.sb_nul()?;
        if !value.is_empty() {
            self.sb_lit(value)?;
        }
        self.xs(XS_WRITE)
    }

    /// `XS_WATCH path token`.
    pub(crate) fn xs_watch_lit(&mut self, path: &str, token: &str) -> AsmResult {
        self.x.a.call(self.rt.sb_reset)?;
        self.sb_lit(path)?;
        self.sb_nul()?;
        self.sb_lit(token)?;
        self.sb_nul()?;
        self.xs(XS_WATCH)
    }

    /// eax = 1 if the last xenstore reply equals `s`.
    pub(crate) fn reply_is(&mut self, s: &str) -> AsmResult {
        let n = self.x.lea_lit(rdi, s.as_bytes())?;
        self.x.a.mov(esi, n)?;
        self.x.a.call(self.rt.streq_reply)
    }

    /// Crashes with message `what` and value rax if rax is negative.
    pub(crate) fn check(&mut self, what: &str) -> AsmResult {
        let mut ok = self.x.label();
        self.x.a.test(rax, rax)?;
        self.x.a.jns(ok)?;
        self.fatal_rax(what)?;
        self.x.set(&mut ok)
    }

    /// Crashes with message `what` and value rax if rax is nonzero.
    pub(crate) fn check_zero(&mut self, what: &str) -> AsmResult {
        let mut ok = self.x.label();
        self.x.a.test(rax, rax)?;
        self.x.a.jz(ok)?;
        self.fatal_rax(what)?;
        self.x.set(&mut ok)
    }

    /// Crashes with message `what` and value rax.
    pub(crate) fn fatal_rax(&mut self, what: &str) -> AsmResult {
        self.x.a.mov(rdx, rax)?;
        let n = self.x.lea_lit(rdi, what.as_bytes())?;
        self.x.a.mov(esi, n)?;
        self.x.a.jmp(self.rt.fatal)
    }

    /// The hypercall `nr`.
    pub(crate) fn hc(&mut self, nr: u64) -> AsmResult {
        self.x.hypercall(nr)
    }

    /// `mmuext_op` with one op `{cmd, arg1 = rsi-value}`: emits the struct fill from
    /// `arg1` (a register holding the MFN / linear address) and the call; rax = result.
    pub(crate) fn mmuext1(&mut self, cmd: u32, arg1: AsmRegister64) -> AsmResult {
        let a = &mut self.x.a;
        a.mov(m32(g(G_ARG_MMUEXT) + offset_of!(MmuextOp, cmd) as u64), cmd)?;
        a.mov(
            m64(g(G_ARG_MMUEXT) + offset_of!(MmuextOp, arg1) as u64),
            arg1,
        )?;
        a.mov(
            m64(g(G_ARG_MMUEXT) + offset_of!(MmuextOp, arg2) as u64),
            0i32,
        )?;
        a.mov(edi, g(G_ARG_MMUEXT) as u32)?;
        a.mov(esi, 1u32)?;
        a.xor(edx, edx)?;
        a.mov(r10d, u32::from(DomId::SELF.get()))?;
        self.hc(hc::HYPERVISOR_MMUEXT_OP)
    }

    /// After the step counter was incremented: progress line every `report` steps
    /// (`"<name>: <word> <steps>"`), and the `steps=` limit.
    pub(crate) fn step_epilogue(&mut self, word: &str) -> AsmResult {
        self.step_epilogue_at(word, g(ST_STEPS))
    }

    /// [`Gen::step_epilogue`] for a step count kept at `counter`.
    pub(crate) fn step_epilogue_at(&mut self, word: &str, counter: u64) -> AsmResult {
        let report = self.p.report;
        let limit = self.p.steps;
        if report != 0 {
            let mut skip = self.x.label();
            let a = &mut self.x.a;
            a.mov(rax, m64(counter))?;
            a.xor(edx, edx)?;
            a.mov(rcx, report)?;
            a.div(rcx)?;
            a.test(rdx, rdx)?;
            a.jnz(skip)?;
            self.print_tagged(&format!("{word} "))?;
            self.x.a.mov(rdi, m64(counter))?;
            self.x.a.call(self.rt.print_u64)?;
            self.print("\n")?;
            self.x.set(&mut skip)?;
        }
        if limit != 0 {
            let mut go = self.x.label();
            let a = &mut self.x.a;
            a.mov(rax, limit)?;
            a.cmp(m64(counter), rax)?;
            a.jb(go)?;
            a.jmp(self.rt.done)?;
            self.x.set(&mut go)?;
        }
        // A label bound above waits for the caller's next instruction.
        Ok(())
    }

    /// Emits the whole runtime (everything except the guest's own code).
    pub(crate) fn emit_runtime(&mut self) -> AsmResult {
        self.emit_entry()?;
        self.emit_console()?;
        self.emit_format()?;
        self.emit_events()?;
        self.emit_xenstore()?;
        self.emit_memory()?;
        self.emit_suspend()?;
        self.emit_traps()?;
        self.emit_misc()?;
        Ok(())
    }

    fn emit_entry(&mut self) -> AsmResult {
        let mut l = self.rt.entry;
        self.x.set(&mut l)?;
        let mut bad = self.x.label();
        let a = &mut self.x.a;
        a.mov(rsp, STACK_TOP)?;
        a.mov(m64(g(G_START_INFO)), rsi)?;
        a.mov(rax, STATUS_MAGIC)?;
        a.mov(m64(g(ST_MAGIC)), rax)?;
        a.mov(m64(g(ST_STATE)), STATE_BOOTING as i32)?;
        a.inc(m64(g(ST_BOOTS)))?;
        // start_info magic "xen-3.0-" (then "x86_64").
        a.mov(rax, qword_ptr(rsi))?;
        a.mov(rcx, u64::from_le_bytes(*b"xen-3.0-"))?;
        a.cmp(rax, rcx)?;
        a.jne(bad)?;
        a.call(self.rt.rt_init)?;
        // Advertise suspend support (Linux writes control/feature-* = 1); the node may
        // not be writable, which is not an error.
        self.xs_write_lit("control/feature-suspend", "1")?;
        self.xs_watch_lit("control/shutdown", "0")?;
        self.x.a.mov(eax, eax)?;
        self.check_zero("watch control/shutdown")?;
        self.x.a.jmp(self.rt.guest_main)?;
        // Not a PV start_info: nothing to print to.
        self.x.set(&mut bad)?;
        let a = &mut self.x.a;
        a.mov(m64(g(ST_ERROR)), 1i32)?;
        a.jmp(self.rt.crash)?;

        // rt_init: trap table, callbacks, kernel stack for user-mode entries, start_info
        // fields, shared_info, p2m frame list, rings.
        let mut l = self.rt.rt_init;
        self.x.set(&mut l)?;
        self.x.a.push(rbx)?;
        for (i, &(vector, _)) in TRAPS.iter().enumerate() {
            let e = g(G_TRAPS) + (i * core::mem::size_of::<TrapInfo>()) as u64;
            let lbl = self.rt.traps[i];
            let a = &mut self.x.a;
            a.mov(
                m8(e + offset_of!(TrapInfo, vector) as u64),
                u32::from(vector),
            )?;
            a.mov(m8(e + offset_of!(TrapInfo, flags) as u64), u32::from(TI_IF))?;
            a.mov(
                word_ptr(e + offset_of!(TrapInfo, cs) as u64),
                u32::from(FLAT_USER_CS64),
            )?;
            a.lea(rax, ptr(lbl))?;
            a.mov(m64(e + offset_of!(TrapInfo, address) as u64), rax)?;
        }
        self.x.a.mov(edi, g(G_TRAPS) as u32)?;
        self.hc(hc::HYPERVISOR_SET_TRAP_TABLE)?;
        self.check_zero("set_trap_table")?;
        for (ty, flags, target) in [
            (hc::CALLBACKTYPE_EVENT, 0, self.rt.event_callback),
            (
                hc::CALLBACKTYPE_FAILSAFE,
                hc::CALLBACKF_MASK_EVENTS,
                self.rt.failsafe_callback,
            ),
            (
                hc::CALLBACKTYPE_SYSCALL,
                hc::CALLBACKF_MASK_EVENTS,
                self.rt.syscall_callback,
            ),
        ] {
            let cb = g(G_ARG_CALLBACK);
            let a = &mut self.x.a;
            a.mov(word_ptr(cb), ty)?;
            a.mov(word_ptr(cb + 2), u32::from(flags))?;
            a.mov(dword_ptr(cb + 4), 0u32)?;
            a.lea(rax, ptr(target))?;
            a.mov(m64(cb + 8), rax)?;
            a.mov(edi, hc::CALLBACKOP_REGISTER as u32)?;
            a.mov(esi, cb as u32)?;
            self.hc(hc::HYPERVISOR_CALLBACK_OP)?;
            self.check_zero("callback_op register")?;
        }
        let a = &mut self.x.a;
        a.mov(edi, u32::from(FLAT_KERNEL_SS64))?;
        a.mov(rsi, TRAP_STACK_TOP)?;
        self.hc(hc::HYPERVISOR_STACK_SWITCH)?;
        self.check_zero("stack_switch")?;
        let mut ok = self.x.label();
        let a = &mut self.x.a;
        a.mov(rbx, m64(g(G_START_INFO)))?;
        a.mov(rax, qword_ptr(rbx + SI_NR_PAGES))?;
        a.mov(m64(g(G_NR_PAGES)), rax)?;
        a.mov(rcx, MAX_NR_PAGES)?;
        a.cmp(rax, rcx)?;
        a.jbe(ok)?;
        self.fatal_rax("nr_pages above the supported maximum")?;
        self.x.set(&mut ok)?;
        let a = &mut self.x.a;
        a.mov(rax, qword_ptr(rbx + SI_MFN_LIST))?;
        a.mov(m64(g(G_MFN_LIST)), rax)?;
        a.call(self.rt.map_shared_info)?;
        a.call(self.rt.setup_fll)?;
        a.call(self.rt.connect_rings)?;
        a.pop(rbx)?;
        a.ret()
    }

    fn emit_console(&mut self) -> AsmResult {
        // console_write(rdi = buf, rsi = len).
        let mut l = self.rt.console_write;
        self.x.set(&mut l)?;
        let mut lp = self.x.label();
        let mut space = self.x.label();
        let mut flush = self.x.label();
        let mut out = self.x.label();
        let a = &mut self.x.a;
        a.push(rbx)?;
        a.push(r12)?;
        a.push(r13)?;
        a.mov(rbx, rdi)?;
        a.mov(r12, rsi)?;
        a.mov(r13, m64(g(G_CONSOLE_VA)))?;
        a.test(r13, r13)?;
        a.jz(out)?;
        a.set_label(&mut lp)?;
        a.test(r12, r12)?;
        a.jz(flush)?;
        a.mov(eax, dword_ptr(r13 + XENCONS_OUT_PROD as i32))?;
        a.mov(ecx, eax)?;
        a.sub(ecx, dword_ptr(r13 + XENCONS_OUT_CONS as i32))?;
        a.cmp(ecx, XENCONS_OUT_SIZE as u32)?;
        a.jb(space)?;
        // Ring full: kick the backend and wait for it to consume.
        a.mov(edi, m32(g(G_CONSOLE_PORT)))?;
        a.call(self.rt.evtchn_send)?;
        a.call(self.rt.poll_events)?;
        a.call(self.rt.wait_event)?;
        a.jmp(lp)?;
        a.set_label(&mut space)?;
        a.mov(ecx, eax)?;
        a.and(ecx, (XENCONS_OUT_SIZE - 1) as u32)?;
        a.movzx(edx, byte_ptr(rbx))?;
        a.mov(byte_ptr(r13 + rcx + XENCONS_OUT as i32), dl)?;
        a.inc(eax)?;
        a.mov(dword_ptr(r13 + XENCONS_OUT_PROD as i32), eax)?;
        a.inc(rbx)?;
        a.dec(r12)?;
        a.jmp(lp)?;
        a.set_label(&mut flush)?;
        a.mov(edi, m32(g(G_CONSOLE_PORT)))?;
        a.call(self.rt.evtchn_send)?;
        a.set_label(&mut out)?;
        a.pop(r13)?;
        a.pop(r12)?;
        a.pop(rbx)?;
        a.ret()?;

        // print_u64(rdi = value).
        let mut l = self.rt.print_u64;
        self.x.set(&mut l)?;
        let a = &mut self.x.a;
        a.mov(rsi, rdi)?;
        a.mov(edi, s(S_FMT) as u32)?;
        a.call(self.rt.fmt_u64)?;
        a.mov(rsi, rax)?;
        a.mov(edi, s(S_FMT) as u32)?;
        a.jmp(self.rt.console_write)?;

        // print_i64(rdi = value): "-" and the magnitude for negative values.
        let mut l = self.rt.print_i64;
        self.x.set(&mut l)?;
        let a = &mut self.x.a;
        a.test(rdi, rdi)?;
        a.jns(self.rt.print_u64)?;
        a.push(rbx)?;
        a.mov(rbx, rdi)?;
        self.print("-")?;
        let a = &mut self.x.a;
        a.xor(edi, edi)?;
        a.sub(rdi, rbx)?;
        a.pop(rbx)?;
        a.jmp(self.rt.print_u64)
    }

    fn emit_format(&mut self) -> AsmResult {
        // fmt_u64(rdi = dst, rsi = value) -> rax = length (decimal, no NUL).
        let mut l = self.rt.fmt_u64;
        self.x.set(&mut l)?;
        let mut dl_ = self.x.label();
        let mut cp = self.x.label();
        let a = &mut self.x.a;
        a.mov(r8d, (s(S_FMT_TMP) + 24) as u32)?;
        a.mov(rax, rsi)?;
        a.mov(ecx, 10u32)?;
        a.xor(r9d, r9d)?;
        a.set_label(&mut dl_)?;
        a.xor(edx, edx)?;
        a.div(rcx)?;
        a.add(dl, 0x30)?;
        a.dec(r8)?;
        a.mov(byte_ptr(r8), dl)?;
        a.inc(r9)?;
        a.test(rax, rax)?;
        a.jnz(dl_)?;
        a.mov(rcx, r9)?;
        a.set_label(&mut cp)?;
        a.mov(dl, byte_ptr(r8))?;
        a.mov(byte_ptr(rdi), dl)?;
        a.inc(r8)?;
        a.inc(rdi)?;
        a.dec(rcx)?;
        a.jnz(cp)?;
        a.mov(rax, r9)?;
        a.ret()?;

        // parse_u64(rdi = ptr, rsi = len) -> rax = value, edx = 0 ok / 1 not a number.
        let mut l = self.rt.parse_u64;
        self.x.set(&mut l)?;
        let mut lp = self.x.label();
        let mut err = self.x.label();
        let a = &mut self.x.a;
        a.xor(eax, eax)?;
        a.test(rsi, rsi)?;
        a.jz(err)?;
        a.cmp(rsi, 19)?;
        a.ja(err)?;
        a.set_label(&mut lp)?;
        a.movzx(ecx, byte_ptr(rdi))?;
        a.sub(ecx, 0x30)?;
        a.cmp(ecx, 9)?;
        a.ja(err)?;
        a.imul_3(rax, rax, 10)?;
        a.add(rax, rcx)?;
        a.inc(rdi)?;
        a.dec(rsi)?;
        a.jnz(lp)?;
        a.xor(edx, edx)?;
        a.ret()?;
        a.set_label(&mut err)?;
        a.mov(edx, 1u32)?;
        a.ret()?;

        // parse_reply() -> rax, edx: parse_u64 of the last xenstore reply.
        let mut l = self.rt.parse_reply;
        self.x.set(&mut l)?;
        let a = &mut self.x.a;
        a.mov(edi, va(PG_XS_REPLY) as u32)?;
        a.mov(rsi, m64(g(G_XS_REPLY_LEN)))?;
        a.jmp(self.rt.parse_u64)?;

        // streq_reply(rdi = lit, rsi = len) -> eax = 1 if the reply equals it.
        let mut l = self.rt.streq_reply;
        self.x.set(&mut l)?;
        let mut lp = self.x.label();
        let mut yes = self.x.label();
        let mut no = self.x.label();
        let a = &mut self.x.a;
        a.cmp(rsi, m64(g(G_XS_REPLY_LEN)))?;
        a.jne(no)?;
        a.mov(edx, va(PG_XS_REPLY) as u32)?;
        a.test(rsi, rsi)?;
        a.jz(yes)?;
        a.set_label(&mut lp)?;
        a.movzx(eax, byte_ptr(rdi))?;
        a.cmp(al, byte_ptr(rdx))?;
        a.jne(no)?;
        a.inc(rdi)?;
        a.inc(rdx)?;
        a.dec(rsi)?;
        a.jnz(lp)?;
        a.set_label(&mut yes)?;
        a.mov(eax, 1u32)?;
        a.ret()?;
        a.set_label(&mut no)?;
        a.xor(eax, eax)?;
        a.ret()?;

        // String builder over the scratch request buffer.
        let mut l = self.rt.sb_reset;
        self.x.set(&mut l)?;
        self.x.a.mov(m64(g(G_SB_LEN)), 0i32)?;
        self.x.a.ret()?;

        // sb_str(rdi = src, rsi = len).
        let mut l = self.rt.sb_str;
        self.x.set(&mut l)?;
        let mut ok = self.x.label();
        let mut lp = self.x.label();
        let mut end = self.x.label();
        let a = &mut self.x.a;
        a.mov(rax, m64(g(G_SB_LEN)))?;
        a.lea(rdx, rax + rsi)?;
        a.cmp(rdx, S_REQ_MAX as i32)?;
        a.jbe(ok)?;
        a.mov(rax, rdx)?;
        self.fatal_rax("xenstore request too long")?;
        self.x.set(&mut ok)?;
        let a = &mut self.x.a;
        a.test(rsi, rsi)?;
        a.jz(end)?;
        a.set_label(&mut lp)?;
        a.movzx(r8d, byte_ptr(rdi))?;
        a.mov(byte_ptr(rax + s(S_REQ) as i32), r8b)?;
        a.inc(rdi)?;
        a.inc(rax)?;
        a.dec(rsi)?;
        a.jnz(lp)?;
        a.set_label(&mut end)?;
        a.mov(m64(g(G_SB_LEN)), rax)?;
        a.ret()?;

        // sb_byte(dil).
        let mut l = self.rt.sb_byte;
        self.x.set(&mut l)?;
        let a = &mut self.x.a;
        a.mov(m8(g(G_TMP3)), dil)?;
        a.mov(edi, g(G_TMP3) as u32)?;
        a.mov(esi, 1u32)?;
        a.jmp(self.rt.sb_str)?;

        // sb_u64(rdi = value).
        let mut l = self.rt.sb_u64;
        self.x.set(&mut l)?;
        let a = &mut self.x.a;
        a.mov(rsi, rdi)?;
        a.mov(edi, s(S_FMT) as u32)?;
        a.call(self.rt.fmt_u64)?;
        a.mov(rsi, rax)?;
        a.mov(edi, s(S_FMT) as u32)?;
        a.jmp(self.rt.sb_str)
    }

    fn emit_events(&mut self) -> AsmResult {
        // Event-channel ops with the argument struct in G_ARG_EVTCHN.
        let ev = g(G_ARG_EVTCHN);
        for (label, cmd) in [
            (self.rt.evtchn_send, EVTCHNOP_SEND),
            (self.rt.evtchn_unmask, EVTCHNOP_UNMASK),
            (self.rt.evtchn_close, EVTCHNOP_CLOSE),
        ] {
            // (edi = port) -> rax.
            let mut l = label;
            self.x.set(&mut l)?;
            let a = &mut self.x.a;
            a.mov(m32(ev), edi)?;
            a.mov(edi, cmd as u32)?;
            a.mov(esi, ev as u32)?;
            self.hc(hc::HYPERVISOR_EVENT_CHANNEL_OP)?;
            self.x.a.ret()?;
        }

        // bind_virq(edi = virq) -> rax = port or -errno (vcpu 0).
        let mut l = self.rt.bind_virq;
        self.x.set(&mut l)?;
        let mut r = self.x.label();
        let a = &mut self.x.a;
        a.mov(m32(ev + offset_of!(EvtchnBindVirq, virq) as u64), edi)?;
        a.mov(m32(ev + offset_of!(EvtchnBindVirq, vcpu) as u64), 0u32)?;
        a.mov(m32(ev + offset_of!(EvtchnBindVirq, port) as u64), 0u32)?;
        a.mov(edi, EVTCHNOP_BIND_VIRQ as u32)?;
        a.mov(esi, ev as u32)?;
        self.hc(hc::HYPERVISOR_EVENT_CHANNEL_OP)?;
        let a = &mut self.x.a;
        a.test(rax, rax)?;
        a.js(r)?;
        a.mov(eax, m32(ev + offset_of!(EvtchnBindVirq, port) as u64))?;
        a.set_label(&mut r)?;
        a.ret()?;

        // alloc_unbound(edi = remote domid) -> rax = port or -errno.
        let mut l = self.rt.alloc_unbound;
        self.x.set(&mut l)?;
        let mut r = self.x.label();
        let a = &mut self.x.a;
        a.mov(
            word_ptr(ev + offset_of!(EvtchnAllocUnbound, dom) as u64),
            u32::from(DomId::SELF.get()),
        )?;
        a.mov(
            word_ptr(ev + offset_of!(EvtchnAllocUnbound, remote_dom) as u64),
            di,
        )?;
        a.mov(m32(ev + offset_of!(EvtchnAllocUnbound, port) as u64), 0u32)?;
        a.mov(edi, EVTCHNOP_ALLOC_UNBOUND as u32)?;
        a.mov(esi, ev as u32)?;
        self.hc(hc::HYPERVISOR_EVENT_CHANNEL_OP)?;
        let a = &mut self.x.a;
        a.test(rax, rax)?;
        a.js(r)?;
        a.mov(eax, m32(ev + offset_of!(EvtchnAllocUnbound, port) as u64))?;
        a.set_label(&mut r)?;
        a.ret()?;

        // bind_interdomain(edi = remote domid, esi = remote port) -> rax = local port.
        let mut l = self.rt.bind_interdomain;
        self.x.set(&mut l)?;
        let mut r = self.x.label();
        let a = &mut self.x.a;
        a.mov(
            word_ptr(ev + offset_of!(EvtchnBindInterdomain, remote_dom) as u64),
            di,
        )?;
        a.mov(
            word_ptr(ev + offset_of!(EvtchnBindInterdomain, pad) as u64),
            0u32,
        )?;
        a.mov(
            m32(ev + offset_of!(EvtchnBindInterdomain, remote_port) as u64),
            esi,
        )?;
        a.mov(
            m32(ev + offset_of!(EvtchnBindInterdomain, local_port) as u64),
            0u32,
        )?;
        a.mov(edi, EVTCHNOP_BIND_INTERDOMAIN as u32)?;
        a.mov(esi, ev as u32)?;
        self.hc(hc::HYPERVISOR_EVENT_CHANNEL_OP)?;
        let a = &mut self.x.a;
        a.test(rax, rax)?;
        a.js(r)?;
        a.mov(
            eax,
            m32(ev + offset_of!(EvtchnBindInterdomain, local_port) as u64),
        )?;
        a.set_label(&mut r)?;
        a.ret()?;

        // mask_port(edi = port): set its mask bit. clear_pending(edi): clear its
        // pending bit. Both atomically, as the guest's own bitmap accesses.
        for (label, set) in [(self.rt.mask_port, true), (self.rt.clear_pending, false)] {
            let mut l = label;
            self.x.set(&mut l)?;
            let a = &mut self.x.a;
            a.mov(ecx, edi)?;
            a.and(ecx, 63)?;
            a.mov(eax, 1u32)?;
            a.shl(rax, cl)?;
            a.shr(edi, 6)?;
            if set {
                a.lock().or(qword_ptr(rdi * 8 + EV_MASK), rax)?;
            } else {
                a.xor(rax, -1)?;
                a.lock().and(qword_ptr(rdi * 8 + EV_PENDING), rax)?;
            }
            a.ret()?;
        }

        // poll_events: the 2-level consumer loop.
        let mut l = self.rt.poll_events;
        self.x.set(&mut l)?;
        let mut w = self.x.label();
        let mut b = self.x.label();
        let mut nb = self.x.label();
        let mut nw = self.x.label();
        let mut out = self.x.label();
        let a = &mut self.x.a;
        a.push(rbx)?;
        a.push(r12)?;
        a.push(r13)?;
        a.push(r14)?;
        a.mov(m8(V_PENDING), 0u32)?;
        a.xor(eax, eax)?;
        a.xchg(m64(V_SEL), rax)?;
        a.mov(r12, rax)?;
        a.xor(r13d, r13d)?;
        a.set_label(&mut w)?;
        a.test(r12, r12)?;
        a.jz(out)?;
        a.test(r12b, 1)?;
        a.jz(nw)?;
        a.mov(rbx, qword_ptr(r13 * 8 + EV_PENDING))?;
        a.mov(rax, qword_ptr(r13 * 8 + EV_MASK))?;
        a.xor(rax, -1)?;
        a.and(rbx, rax)?;
        a.jz(nw)?;
        a.mov(rax, rbx)?;
        a.xor(rax, -1)?;
        a.lock().and(qword_ptr(r13 * 8 + EV_PENDING), rax)?;
        a.mov(r14, r13)?;
        a.shl(r14, 6)?;
        a.set_label(&mut b)?;
        a.test(bl, 1)?;
        a.jz(nb)?;
        a.mov(edi, r14d)?;
        a.call(self.rt.handle_port)?;
        a.set_label(&mut nb)?;
        a.inc(r14)?;
        a.shr(rbx, 1)?;
        a.jnz(b)?;
        a.set_label(&mut nw)?;
        a.inc(r13)?;
        a.shr(r12, 1)?;
        a.jmp(w)?;
        a.set_label(&mut out)?;
        a.pop(r14)?;
        a.pop(r13)?;
        a.pop(r12)?;
        a.pop(rbx)?;
        a.ret()?;

        // handle_port(edi = port): tail-call the registered handler (edi = port).
        let mut l = self.rt.handle_port;
        self.x.set(&mut l)?;
        let mut lp = self.x.label();
        let mut next = self.x.label();
        let mut hit = self.x.label();
        let a = &mut self.x.a;
        a.mov(ecx, HANDLER_SLOTS as u32)?;
        a.mov(edx, g(G_HANDLERS) as u32)?;
        a.set_label(&mut lp)?;
        a.cmp(qword_ptr(rdx + 8), 0)?;
        a.je(next)?;
        a.cmp(qword_ptr(rdx), rdi)?;
        a.je(hit)?;
        a.set_label(&mut next)?;
        a.add(rdx, 16)?;
        a.dec(ecx)?;
        a.jnz(lp)?;
        a.ret()?;
        a.set_label(&mut hit)?;
        a.jmp(qword_ptr(rdx + 8))?;

        // register_handler(edi = port, rsi = handler).
        let mut l = self.rt.register_handler;
        self.x.set(&mut l)?;
        let mut same = self.x.label();
        let mut empty = self.x.label();
        let mut store = self.x.label();
        let a = &mut self.x.a;
        a.mov(edi, edi)?;
        a.mov(ecx, HANDLER_SLOTS as u32)?;
        a.mov(edx, g(G_HANDLERS) as u32)?;
        a.set_label(&mut same)?;
        a.cmp(qword_ptr(rdx + 8), 0)?;
        a.je(empty)?;
        a.cmp(qword_ptr(rdx), rdi)?;
        a.je(store)?;
        a.add(rdx, 16)?;
        a.dec(ecx)?;
        a.jnz(same)?;
        a.mov(ecx, HANDLER_SLOTS as u32)?;
        a.mov(edx, g(G_HANDLERS) as u32)?;
        a.set_label(&mut empty)?;
        a.cmp(qword_ptr(rdx + 8), 0)?;
        a.je(store)?;
        a.add(rdx, 16)?;
        a.dec(ecx)?;
        a.jnz(empty)?;
        a.mov(rax, rdi)?;
        self.fatal_rax("handler table full, port")?;
        self.x.set(&mut store)?;
        let a = &mut self.x.a;
        a.mov(qword_ptr(rdx), rdi)?;
        a.mov(qword_ptr(rdx + 8), rsi)?;
        a.ret()?;

        // clear_handlers.
        let mut l = self.rt.clear_handlers;
        self.x.set(&mut l)?;
        let mut lp = self.x.label();
        let a = &mut self.x.a;
        a.mov(ecx, (HANDLER_SLOTS * 2) as u32)?;
        a.mov(edx, g(G_HANDLERS) as u32)?;
        a.set_label(&mut lp)?;
        a.mov(qword_ptr(rdx), 0)?;
        a.add(rdx, 8)?;
        a.dec(ecx)?;
        a.jnz(lp)?;
        a.ret()?;

        // unregister_handler(edi = port).
        let mut l = self.rt.unregister_handler;
        self.x.set(&mut l)?;
        let mut lp = self.x.label();
        let mut next = self.x.label();
        let a = &mut self.x.a;
        a.mov(edi, edi)?;
        a.mov(ecx, HANDLER_SLOTS as u32)?;
        a.mov(edx, g(G_HANDLERS) as u32)?;
        a.set_label(&mut lp)?;
        a.cmp(qword_ptr(rdx), rdi)?;
        a.jne(next)?;
        a.mov(qword_ptr(rdx + 8), 0)?;
        a.set_label(&mut next)?;
        a.add(rdx, 16)?;
        a.dec(ecx)?;
        a.jnz(lp)?;
        a.ret()?;

        // wait_event: SCHEDOP_block unless something is pending; events masked after.
        let mut l = self.rt.wait_event;
        self.x.set(&mut l)?;
        let mut r = self.x.label();
        let a = &mut self.x.a;
        a.cmp(m64(V_SEL), 0)?;
        a.jne(r)?;
        a.cmp(m8(V_PENDING), 0)?;
        a.jne(r)?;
        a.mov(edi, SCHEDOP_BLOCK as u32)?;
        a.xor(esi, esi)?;
        self.hc(hc::HYPERVISOR_SCHED_OP)?;
        self.x.a.mov(m8(V_MASK), 1u32)?;
        self.x.set(&mut r)?;
        self.x.a.ret()?;

        // safe_point: consume events, handle fired watches (may suspend).
        let mut l = self.rt.safe_point;
        self.x.set(&mut l)?;
        let mut ev = self.x.label();
        let mut w = self.x.label();
        let a = &mut self.x.a;
        a.cmp(m64(V_SEL), 0)?;
        a.jne(ev)?;
        a.cmp(m8(V_PENDING), 0)?;
        a.je(w)?;
        a.set_label(&mut ev)?;
        a.call(self.rt.poll_events)?;
        a.set_label(&mut w)?;
        a.cmp(m64(g(G_WATCH_FIRED)), 0)?;
        a.jne(self.rt.handle_watches)?;
        a.ret()?;

        // handle_watches: token 0 → control/shutdown; others → the guest's watch hook
        // (rdi = fired mask).
        let mut l = self.rt.handle_watches;
        self.x.set(&mut l)?;
        let mut n = self.x.label();
        let mut r = self.x.label();
        let a = &mut self.x.a;
        a.push(rbx)?;
        a.xor(eax, eax)?;
        a.xchg(m64(g(G_WATCH_FIRED)), rax)?;
        a.mov(rbx, rax)?;
        a.test(bl, 1)?;
        a.jz(n)?;
        a.call(self.rt.check_shutdown)?;
        a.set_label(&mut n)?;
        a.mov(rdi, rbx)?;
        a.and(rdi, -2)?;
        a.jz(r)?;
        a.mov(rax, m64(g(G_WATCH_HOOK)))?;
        a.test(rax, rax)?;
        a.jz(r)?;
        a.call(rax)?;
        a.set_label(&mut r)?;
        a.pop(rbx)?;
        a.ret()?;

        // nop_handler: a port handler that does nothing.
        let mut l = self.rt.nop_handler;
        self.x.set(&mut l)?;
        self.x.a.ret()?;

        // event_callback: entered with events masked on a bounce frame
        // [rcx, r11, rip, cs, rflags, rsp, ss]. Clear IF in the saved RFLAGS so the
        // iret keeps events masked; the safe points consume the events.
        let mut l = self.rt.event_callback;
        self.x.set(&mut l)?;
        let a = &mut self.x.a;
        a.and(qword_ptr(rsp + 32), !0x200i32)?;
        a.pop(rcx)?;
        a.pop(r11)?;
        a.push(0)?;
        a.jmp(hypercall_stub(hc::HYPERVISOR_IRET))
    }

    fn emit_xenstore(&mut self) -> AsmResult {
        let ring = XENSTORE_RING_SIZE as u32;
        // ring_put(rdi = ring, rsi = src, edx = index, ecx = len) -> edx = new index.
        let mut l = self.rt.ring_put;
        self.x.set(&mut l)?;
        let mut lp = self.x.label();
        let mut r = self.x.label();
        let a = &mut self.x.a;
        a.test(ecx, ecx)?;
        a.jz(r)?;
        a.set_label(&mut lp)?;
        a.mov(eax, edx)?;
        a.and(eax, ring - 1)?;
        a.movzx(r8d, byte_ptr(rsi))?;
        a.mov(byte_ptr(rdi + rax), r8b)?;
        a.inc(rsi)?;
        a.inc(edx)?;
        a.dec(ecx)?;
        a.jnz(lp)?;
        a.set_label(&mut r)?;
        a.ret()?;

        // ring_get(rdi = dst, rsi = ring, edx = index, ecx = len).
        let mut l = self.rt.ring_get;
        self.x.set(&mut l)?;
        let mut lp = self.x.label();
        let mut r = self.x.label();
        let a = &mut self.x.a;
        a.test(ecx, ecx)?;
        a.jz(r)?;
        a.set_label(&mut lp)?;
        a.mov(eax, edx)?;
        a.and(eax, ring - 1)?;
        a.movzx(r8d, byte_ptr(rsi + rax))?;
        a.mov(byte_ptr(rdi), r8b)?;
        a.inc(rdi)?;
        a.inc(edx)?;
        a.dec(ecx)?;
        a.jnz(lp)?;
        a.set_label(&mut r)?;
        a.ret()?;

        // xs_notify.
        let mut l = self.rt.xs_notify;
        self.x.set(&mut l)?;
        self.x.a.mov(edi, m32(g(G_STORE_PORT)))?;
        self.x.a.jmp(self.rt.evtchn_send)?;

        // xs_send(edi = type): header + payload into the request ring.
        let hdr = g(G_XS_HDR);
        let mut l = self.rt.xs_send;
        self.x.set(&mut l)?;
        let mut wait = self.x.label();
        let mut go = self.x.label();
        let a = &mut self.x.a;
        a.push(rbx)?;
        a.push(r12)?;
        a.push(r13)?;
        a.mov(r12d, edi)?;
        a.mov(r13, m64(g(G_STORE_VA)))?;
        a.mov(rbx, m64(g(G_SB_LEN)))?;
        a.set_label(&mut wait)?;
        a.mov(eax, dword_ptr(r13 + XS_RING_REQ_PROD as i32))?;
        a.sub(eax, dword_ptr(r13 + XS_RING_REQ_CONS as i32))?;
        a.mov(ecx, ring)?;
        a.sub(ecx, eax)?;
        a.lea(edx, rbx + 16)?;
        a.cmp(ecx, edx)?;
        a.jae(go)?;
        a.call(self.rt.xs_notify)?;
        a.call(self.rt.poll_events)?;
        a.call(self.rt.wait_event)?;
        a.jmp(wait)?;
        a.set_label(&mut go)?;
        a.mov(m32(hdr), r12d)?;
        a.inc(m64(g(G_XS_REQ_ID)))?;
        a.mov(eax, m32(g(G_XS_REQ_ID)))?;
        a.mov(m32(hdr + 4), eax)?;
        a.mov(m32(hdr + 8), 0u32)?;
        a.mov(m32(hdr + 12), ebx)?;
        a.mov(edx, dword_ptr(r13 + XS_RING_REQ_PROD as i32))?;
        a.mov(rdi, r13)?;
        a.mov(esi, hdr as u32)?;
        a.mov(ecx, 16u32)?;
        a.call(self.rt.ring_put)?;
        a.mov(rdi, r13)?;
        a.mov(esi, s(S_REQ) as u32)?;
        a.mov(ecx, ebx)?;
        a.call(self.rt.ring_put)?;
        a.mov(dword_ptr(r13 + XS_RING_REQ_PROD as i32), edx)?;
        a.call(self.rt.xs_notify)?;
        a.pop(r13)?;
        a.pop(r12)?;
        a.pop(rbx)?;
        a.ret()?;

        // xs_request(edi = type) -> eax = 0, or 1 for an XS_ERROR reply.
        let mut l = self.rt.xs_request;
        self.x.set(&mut l)?;
        let mut w = self.x.label();
        let mut got = self.x.label();
        let mut timeout = self.x.label();
        let a = &mut self.x.a;
        a.push(rbx)?;
        a.mov(m64(g(G_XS_WAITING)), 1)?;
        a.mov(m64(g(G_XS_HAVE_REPLY)), 0)?;
        a.call(self.rt.xs_send)?;
        a.mov(ebx, WAIT_LIMIT)?;
        a.set_label(&mut w)?;
        a.call(self.rt.xs_poll)?;
        a.cmp(m64(g(G_XS_HAVE_REPLY)), 0)?;
        a.jne(got)?;
        a.call(self.rt.poll_events)?;
        a.cmp(m64(g(G_XS_HAVE_REPLY)), 0)?;
        a.jne(got)?;
        a.dec(ebx)?;
        a.jz(timeout)?;
        a.call(self.rt.wait_event)?;
        a.jmp(w)?;
        a.set_label(&mut got)?;
        a.mov(m64(g(G_XS_WAITING)), 0)?;
        a.xor(eax, eax)?;
        a.cmp(m32(g(G_XS_REPLY_TYPE)), XS_ERROR)?;
        a.sete(al)?;
        a.pop(rbx)?;
        a.ret()?;
        a.set_label(&mut timeout)?;
        a.xor(eax, eax)?;
        self.fatal_rax("xenstore: no reply")?;

        // xs_poll: consume complete messages from the response ring.
        let whdr = g(G_TMP0);
        let mut l = self.rt.xs_poll;
        self.x.set(&mut l)?;
        let mut next = self.x.label();
        let mut out = self.x.label();
        let mut watch = self.x.label();
        let mut consume = self.x.label();
        let mut tok = self.x.label();
        let mut toklp = self.x.label();
        let mut proto = self.x.label();
        let a = &mut self.x.a;
        a.push(rbx)?;
        a.push(r12)?;
        a.push(r13)?;
        a.mov(r13, m64(g(G_STORE_VA)))?;
        a.test(r13, r13)?;
        a.jz(out)?;
        a.set_label(&mut next)?;
        a.mov(ebx, dword_ptr(r13 + XS_RING_RSP_CONS as i32))?;
        a.mov(eax, dword_ptr(r13 + XS_RING_RSP_PROD as i32))?;
        a.sub(eax, ebx)?;
        a.cmp(eax, 16)?;
        a.jb(out)?;
        a.mov(m32(whdr), eax)?;
        a.mov(edi, g(G_XS_HDR) as u32)?;
        a.lea(rsi, r13 + XS_RING_RSP as i32)?;
        a.mov(edx, ebx)?;
        a.mov(ecx, 16u32)?;
        a.call(self.rt.ring_get)?;
        a.mov(r12d, m32(g(G_XS_HDR) + 12))?;
        a.cmp(r12d, ring - 16)?;
        a.ja(proto)?;
        a.lea(eax, r12 + 16)?;
        a.cmp(m32(whdr), eax)?;
        a.jb(out)?;
        a.cmp(m32(g(G_XS_HDR)), XS_WATCH_EVENT)?;
        a.je(watch)?;
        a.cmp(m64(g(G_XS_WAITING)), 0)?;
        a.je(consume)?;
        a.cmp(m64(g(G_XS_HAVE_REPLY)), 0)?;
        a.jne(consume)?;
        a.mov(edi, va(PG_XS_REPLY) as u32)?;
        a.lea(rsi, r13 + XS_RING_RSP as i32)?;
        a.lea(edx, rbx + 16)?;
        a.mov(ecx, r12d)?;
        a.call(self.rt.ring_get)?;
        a.mov(byte_ptr(r12 + va(PG_XS_REPLY) as i32), 0u32)?;
        a.mov(eax, m32(g(G_XS_HDR)))?;
        a.mov(m64(g(G_XS_REPLY_TYPE)), rax)?;
        a.mov(m64(g(G_XS_REPLY_LEN)), r12)?;
        a.mov(m64(g(G_XS_HAVE_REPLY)), 1)?;
        a.jmp(consume)?;
        // Watch event "path\0token\0": set bit `token` for a one-digit token.
        a.set_label(&mut watch)?;
        a.mov(edi, s(S_WATCH) as u32)?;
        a.lea(rsi, r13 + XS_RING_RSP as i32)?;
        a.lea(edx, rbx + 16)?;
        a.mov(ecx, r12d)?;
        a.call(self.rt.ring_get)?;
        a.mov(byte_ptr(r12 + s(S_WATCH) as i32), 0u32)?;
        a.xor(ecx, ecx)?;
        a.set_label(&mut toklp)?;
        a.cmp(ecx, r12d)?;
        a.jae(consume)?;
        a.cmp(byte_ptr(rcx + s(S_WATCH) as i32), 0)?;
        a.je(tok)?;
        a.inc(ecx)?;
        a.jmp(toklp)?;
        a.set_label(&mut tok)?;
        a.movzx(ecx, byte_ptr(rcx + (s(S_WATCH) + 1) as i32))?;
        a.sub(ecx, 0x30)?;
        a.cmp(ecx, 9)?;
        a.ja(consume)?;
        a.mov(eax, 1u32)?;
        a.shl(eax, cl)?;
        a.or(m64(g(G_WATCH_FIRED)), rax)?;
        a.set_label(&mut consume)?;
        a.lea(eax, rbx + r12 + 16)?;
        a.mov(dword_ptr(r13 + XS_RING_RSP_CONS as i32), eax)?;
        a.call(self.rt.xs_notify)?;
        a.jmp(next)?;
        a.set_label(&mut out)?;
        a.pop(r13)?;
        a.pop(r12)?;
        a.pop(rbx)?;
        a.ret()?;
        a.set_label(&mut proto)?;
        a.mov(eax, r12d)?;
        self.fatal_rax("xenstore: message too long")
    }

    fn emit_memory(&mut self) -> AsmResult {
        // mfn_to_pfn(rdi = mfn) -> rax: the M2P Xen maps read-only.
        let mut l = self.rt.mfn_to_pfn;
        self.x.set(&mut l)?;
        let a = &mut self.x.a;
        a.mov(rax, MACH2PHYS_VIRT_START)?;
        a.mov(rax, qword_ptr(rax + rdi * 8))?;
        a.ret()?;

        // pfn_to_mfn(rdi = pfn) -> rax: the p2m list at start_info.mfn_list.
        let mut l = self.rt.pfn_to_mfn;
        self.x.set(&mut l)?;
        let mut ok = self.x.label();
        let a = &mut self.x.a;
        a.cmp(rdi, m64(g(G_NR_PAGES)))?;
        a.jb(ok)?;
        a.mov(rax, rdi)?;
        self.fatal_rax("pfn out of range")?;
        self.x.set(&mut ok)?;
        let a = &mut self.x.a;
        a.mov(rax, m64(g(G_MFN_LIST)))?;
        a.mov(rax, qword_ptr(rax + rdi * 8))?;
        a.ret()?;

        // va_to_mfn(rdi = va in the bootstrap region) -> rax.
        let mut l = self.rt.va_to_mfn;
        self.x.set(&mut l)?;
        let a = &mut self.x.a;
        a.sub(rdi, VIRT_BASE as i32)?;
        a.shr(rdi, 12)?;
        a.jmp(self.rt.pfn_to_mfn)?;

        // pfn_to_va(rdi = pfn) -> rax.
        let mut l = self.rt.pfn_to_va;
        self.x.set(&mut l)?;
        let mut ok = self.x.label();
        let a = &mut self.x.a;
        a.cmp(rdi, m64(g(G_NR_PAGES)))?;
        a.jb(ok)?;
        a.mov(rax, rdi)?;
        self.fatal_rax("pfn out of range")?;
        self.x.set(&mut ok)?;
        let a = &mut self.x.a;
        a.shl(rdi, 12)?;
        a.lea(rax, rdi + VIRT_BASE as i32)?;
        a.ret()?;

        // map_shared_info: point the PG_SHINFO slot at start_info.shared_info (a machine
        // address), then mask events.
        let mut l = self.rt.map_shared_info;
        self.x.set(&mut l)?;
        let a = &mut self.x.a;
        a.mov(rax, m64(g(G_START_INFO)))?;
        a.mov(rsi, qword_ptr(rax + SI_SHARED_INFO))?;
        a.mov(rax, rsi)?;
        a.shr(rax, 12)?;
        a.mov(m64(g(G_SI_MFN)), rax)?;
        a.or(rsi, PTE_KERNEL_RW as i32)?;
        a.mov(edi, SHINFO as u32)?;
        a.mov(edx, hc::UVMF_INVLPG as u32)?;
        self.hc(hc::HYPERVISOR_UPDATE_VA_MAPPING)?;
        self.check_zero("map shared_info")?;
        self.x.a.mov(m8(V_MASK), 1u32)?;
        self.x.a.ret()?;

        // unmap_shared_info: drop the mapping (nothing may touch events until remapped).
        let mut l = self.rt.unmap_shared_info;
        self.x.set(&mut l)?;
        let a = &mut self.x.a;
        a.mov(edi, SHINFO as u32)?;
        a.xor(esi, esi)?;
        a.mov(edx, hc::UVMF_INVLPG as u32)?;
        self.hc(hc::HYPERVISOR_UPDATE_VA_MAPPING)?;
        self.check_zero("unmap shared_info")?;
        self.x.a.ret()?;

        // setup_fll: the 3-level p2m frame list for the toolstack (as Linux's
        // xen_setup_mfn_list_list): FL[k] = MFN of p2m page k, FLL[0] = MFN of FL,
        // shared_info.arch = {max_pfn = nr_pages, frame_list_list = MFN of FLL}.
        let mut l = self.rt.setup_fll;
        self.x.set(&mut l)?;
        let mut ok = self.x.label();
        let mut aligned = self.x.label();
        let mut lp = self.x.label();
        let mut done = self.x.label();
        let a = &mut self.x.a;
        a.push(rbx)?;
        a.push(r12)?;
        a.mov(rax, m64(g(G_MFN_LIST)))?;
        a.test(eax, 0xfff)?;
        a.jz(aligned)?;
        self.fatal_rax("p2m list not page aligned")?;
        self.x.set(&mut aligned)?;
        let a = &mut self.x.a;
        a.mov(r12, m64(g(G_NR_PAGES)))?;
        a.add(r12, 511)?;
        a.shr(r12, 9)?;
        a.cmp(r12, MAX_P2M_PAGES as i32)?;
        a.jbe(ok)?;
        a.mov(rax, r12)?;
        self.fatal_rax("p2m too large")?;
        self.x.set(&mut ok)?;
        let a = &mut self.x.a;
        a.xor(ebx, ebx)?;
        a.set_label(&mut lp)?;
        a.cmp(rbx, r12)?;
        a.jae(done)?;
        a.mov(rdi, rbx)?;
        a.shl(rdi, 12)?;
        a.add(rdi, m64(g(G_MFN_LIST)))?;
        a.call(self.rt.va_to_mfn)?;
        a.mov(qword_ptr(rbx * 8 + va(PG_FL)), rax)?;
        a.inc(rbx)?;
        a.jmp(lp)?;
        a.set_label(&mut done)?;
        a.mov(edi, va(PG_FL) as u32)?;
        a.call(self.rt.va_to_mfn)?;
        a.mov(m64(va(PG_FLL)), rax)?;
        a.mov(rax, m64(g(G_NR_PAGES)))?;
        a.mov(m64(SH_MAX_PFN), rax)?;
        a.mov(edi, va(PG_FLL) as u32)?;
        a.call(self.rt.va_to_mfn)?;
        a.mov(m64(SH_FLL), rax)?;
        a.pop(r12)?;
        a.pop(rbx)?;
        a.ret()?;

        // connect_rings: store and console ring VAs (MFN → M2P → PFN → VA), ports,
        // handlers, unmask.
        let mut l = self.rt.connect_rings;
        self.x.set(&mut l)?;
        let a = &mut self.x.a;
        a.push(rbx)?;
        a.mov(rbx, m64(g(G_START_INFO)))?;
        a.mov(rdi, qword_ptr(rbx + SI_STORE_MFN))?;
        a.call(self.rt.mfn_to_pfn)?;
        a.mov(rdi, rax)?;
        a.call(self.rt.pfn_to_va)?;
        a.mov(m64(g(G_STORE_VA)), rax)?;
        a.mov(eax, dword_ptr(rbx + SI_STORE_EVTCHN))?;
        a.mov(m64(g(G_STORE_PORT)), rax)?;
        a.mov(rdi, qword_ptr(rbx + SI_CONSOLE_MFN))?;
        a.call(self.rt.mfn_to_pfn)?;
        a.mov(rdi, rax)?;
        a.call(self.rt.pfn_to_va)?;
        a.mov(m64(g(G_CONSOLE_VA)), rax)?;
        a.mov(eax, dword_ptr(rbx + SI_CONSOLE_EVTCHN))?;
        a.mov(m64(g(G_CONSOLE_PORT)), rax)?;
        a.mov(edi, m32(g(G_STORE_PORT)))?;
        a.lea(rsi, ptr(self.rt.xs_poll))?;
        a.call(self.rt.register_handler)?;
        a.mov(edi, m32(g(G_CONSOLE_PORT)))?;
        a.lea(rsi, ptr(self.rt.nop_handler))?;
        a.call(self.rt.register_handler)?;
        a.mov(edi, m32(g(G_STORE_PORT)))?;
        a.call(self.rt.evtchn_unmask)?;
        self.check_zero("unmask store port")?;
        self.x.a.mov(edi, m32(g(G_CONSOLE_PORT)))?;
        self.x.a.call(self.rt.evtchn_unmask)?;
        self.check_zero("unmask console port")?;
        self.x.a.pop(rbx)?;
        self.x.a.ret()
    }

    fn emit_suspend(&mut self) -> AsmResult {
        // check_shutdown: read control/shutdown and act on it.
        let mut l = self.rt.check_shutdown;
        self.x.set(&mut l)?;
        let mut r = self.x.label();
        let mut poweroff = self.x.label();
        let mut reboot = self.x.label();
        self.xs_read_lit("control/shutdown")?;
        self.x.a.test(eax, eax)?;
        self.x.a.jnz(r)?;
        self.reply_is("suspend")?;
        self.x.a.test(eax, eax)?;
        self.x.a.jnz(self.rt.do_suspend)?;
        self.reply_is("poweroff")?;
        self.x.a.test(eax, eax)?;
        self.x.a.jnz(poweroff)?;
        self.reply_is("halt")?;
        self.x.a.test(eax, eax)?;
        self.x.a.jnz(poweroff)?;
        self.reply_is("reboot")?;
        self.x.a.test(eax, eax)?;
        self.x.a.jnz(reboot)?;
        self.x.set(&mut r)?;
        self.x.a.ret()?;
        self.x.set(&mut poweroff)?;
        self.xs_write_lit("control/shutdown", "")?;
        self.print_tagged("poweroff\n")?;
        self.x.a.mov(m64(g(ST_STATE)), STATE_DONE as i32)?;
        self.x.a.mov(edi, SHUTDOWN_POWEROFF)?;
        self.x.a.jmp(self.rt.shutdown)?;
        self.x.set(&mut reboot)?;
        self.xs_write_lit("control/shutdown", "")?;
        self.print_tagged("reboot\n")?;
        self.x.a.mov(m64(g(ST_STATE)), STATE_DONE as i32)?;
        self.x.a.mov(edi, SHUTDOWN_REBOOT)?;
        self.x.a.jmp(self.rt.shutdown)?;

        // do_suspend: the Linux PV suspend sequence.
        let mut l = self.rt.do_suspend;
        self.x.set(&mut l)?;
        let mut not_cancel = self.x.label();
        let mut cancelled = self.x.label();
        let mut valid = self.x.label();
        let mut nohook = self.x.label();
        self.x.a.push(rbx)?;
        self.x.a.push(r12)?;
        self.x.a.push(r13)?;
        self.print_tagged("suspending\n")?;
        // Acknowledge: any value other than "suspend" counts; Linux writes "".
        self.xs_write_lit("control/shutdown", "")?;
        self.x.a.mov(eax, eax)?;
        self.check_zero("ack control/shutdown")?;
        let a = &mut self.x.a;
        a.inc(m64(g(ST_SUSPENDS)))?;
        // start_info: store and console MFN → PFN (the toolstack does not).
        a.mov(rbx, m64(g(G_START_INFO)))?;
        a.mov(rdi, qword_ptr(rbx + SI_STORE_MFN))?;
        a.call(self.rt.mfn_to_pfn)?;
        a.mov(qword_ptr(rbx + SI_STORE_MFN), rax)?;
        a.mov(rdi, qword_ptr(rbx + SI_CONSOLE_MFN))?;
        a.call(self.rt.mfn_to_pfn)?;
        a.mov(qword_ptr(rbx + SI_CONSOLE_MFN), rax)?;
        a.mov(rdi, rbx)?;
        a.call(self.rt.va_to_mfn)?;
        a.mov(r12, rax)?;
        // No PTE may reference a non-guest frame: drop the shared_info mapping (unless
        // built to violate exactly this).
        if self.p.hostile != Some(crate::params::Hostile::KeepSharedInfo) {
            a.call(self.rt.unmap_shared_info)?;
        }
        // sched_op(SCHEDOP_shutdown, &{SHUTDOWN_suspend}), rdx = start_info MFN.
        let a = &mut self.x.a;
        a.mov(m32(g(G_ARG_SCHED)), SHUTDOWN_SUSPEND)?;
        a.mov(edi, SCHEDOP_SHUTDOWN as u32)?;
        a.mov(esi, g(G_ARG_SCHED) as u32)?;
        a.mov(rdx, r12)?;
        self.hc(hc::HYPERVISOR_SCHED_OP)?;
        let a = &mut self.x.a;
        a.mov(r13, rax)?;
        a.mov(m64(g(G_SUSPEND_RC)), rax)?;
        a.cmp(r13, 1)?;
        a.jbe(valid)?;
        // Neither 0 nor 1: nothing sensible to continue with (shared_info is unmapped,
        // so the report goes out without event polling).
        self.fatal_rax("suspend hypercall failed")?;
        self.x.set(&mut valid)?;
        let a = &mut self.x.a;
        a.cmp(r13, 1)?;
        a.jne(not_cancel)?;
        // Cancelled: convert back.
        a.mov(rdi, qword_ptr(rbx + SI_STORE_MFN))?;
        a.call(self.rt.pfn_to_mfn)?;
        a.mov(qword_ptr(rbx + SI_STORE_MFN), rax)?;
        a.mov(rdi, qword_ptr(rbx + SI_CONSOLE_MFN))?;
        a.call(self.rt.pfn_to_mfn)?;
        a.mov(qword_ptr(rbx + SI_CONSOLE_MFN), rax)?;
        a.set_label(&mut not_cancel)?;
        // Both cases: re-map shared_info (a new machine address after restore) and
        // rebuild the p2m frame list list.
        a.call(self.rt.map_shared_info)?;
        a.call(self.rt.setup_fll)?;
        a.cmp(r13, 1)?;
        a.je(cancelled)?;
        // Resumed in a new domain: rings and ports come fresh from start_info, every
        // other binding is gone, watches must be re-registered.
        a.inc(m64(g(ST_RESUMES)))?;
        a.call(self.rt.clear_handlers)?;
        a.call(self.rt.connect_rings)?;
        a.mov(rax, m64(g(G_RESUME_HOOK)))?;
        a.test(rax, rax)?;
        a.jz(nohook)?;
        a.call(rax)?;
        a.set_label(&mut nohook)?;
        self.xs_watch_lit("control/shutdown", "0")?;
        self.x.a.mov(eax, eax)?;
        self.check_zero("re-watch control/shutdown")?;
        self.print_tagged("resumed ")?;
        self.x.a.mov(rdi, m64(g(ST_RESUMES)))?;
        self.x.a.call(self.rt.print_u64)?;
        self.print("\n")?;
        let a = &mut self.x.a;
        a.pop(r13)?;
        a.pop(r12)?;
        a.pop(rbx)?;
        a.ret()?;
        a.set_label(&mut cancelled)?;
        a.inc(m64(g(ST_CANCELS)))?;
        self.print_tagged("suspend cancelled ")?;
        self.x.a.mov(rdi, m64(g(ST_CANCELS)))?;
        self.x.a.call(self.rt.print_u64)?;
        self.print("\n")?;
        let a = &mut self.x.a;
        a.pop(r13)?;
        a.pop(r12)?;
        a.pop(rbx)?;
        a.ret()
    }

    fn emit_traps(&mut self) -> AsmResult {
        for (i, &(vector, has_err)) in TRAPS.iter().enumerate() {
            let mut l = self.rt.traps[i];
            self.x.set(&mut l)?;
            let a = &mut self.x.a;
            if vector == 14 {
                a.cmp(m64(g(G_EXPECT)), EXPECT_PAGE_FAULT as i32)?;
                a.je(self.rt.user_fault)?;
            }
            // Frame: [rcx, r11, (error code), rip, cs, rflags, rsp, ss].
            a.mov(edi, u32::from(vector))?;
            if has_err {
                a.mov(rdx, qword_ptr(rsp + 16))?;
                a.mov(rsi, qword_ptr(rsp + 24))?;
            } else {
                a.xor(edx, edx)?;
                a.mov(rsi, qword_ptr(rsp + 16))?;
            }
            a.jmp(self.rt.trap_report)?;
        }

        // user_fault: the expected #PF from user mode: record error code and cr2, then
        // abandon the frame and continue after enter_user.
        let mut l = self.rt.user_fault;
        self.x.set(&mut l)?;
        let a = &mut self.x.a;
        a.mov(rax, qword_ptr(rsp + 16))?;
        a.mov(m64(g(G_TRAP_ERR)), rax)?;
        a.mov(rax, m64(V_CR2))?;
        a.mov(m64(g(G_TRAP_CR2)), rax)?;
        a.mov(m64(g(G_EXPECT)), 0)?;
        a.mov(rsp, m64(g(G_SAVED_KSP)))?;
        a.jmp(m64(g(G_USER_RESUME)))?;

        // syscall_callback: a system call from user mode (frame on the trap stack).
        let mut l = self.rt.syscall_callback;
        self.x.set(&mut l)?;
        let mut bad = self.x.label();
        let a = &mut self.x.a;
        a.cmp(m64(g(G_EXPECT)), EXPECT_SYSCALL as i32)?;
        a.jne(bad)?;
        a.mov(m64(g(G_SYSCALL_RAX)), rax)?;
        a.mov(m64(g(G_EXPECT)), 0)?;
        a.mov(rsp, m64(g(G_SAVED_KSP)))?;
        a.jmp(m64(g(G_USER_RESUME)))?;
        self.x.set(&mut bad)?;
        self.fatal_rax("unexpected syscall, rax")?;

        // failsafe_callback.
        let mut l = self.rt.failsafe_callback;
        self.x.set(&mut l)?;
        self.x.a.xor(eax, eax)?;
        self.fatal_rax("failsafe callback")?;

        // enter_user(rdi = rip, rsi = user rsp, rdx = rax for user, rcx = expected exit):
        // iret to user mode (CS RPL 3) with events masked; comes back here through the
        // syscall callback or the expected page fault. Returns normally.
        let mut l = self.rt.enter_user;
        self.x.set(&mut l)?;
        let mut back = self.x.label();
        let a = &mut self.x.a;
        a.push(rbx)?;
        a.push(rbp)?;
        a.push(r12)?;
        a.push(r13)?;
        a.push(r14)?;
        a.push(r15)?;
        a.mov(m64(g(G_EXPECT)), rcx)?;
        a.mov(m64(g(G_SAVED_KSP)), rsp)?;
        a.lea(rax, ptr(back))?;
        a.mov(m64(g(G_USER_RESUME)), rax)?;
        a.push(i32::from(FLAT_USER_SS64))?;
        a.push(rsi)?;
        a.push(2)?;
        a.push(i32::from(FLAT_USER_CS64))?;
        a.push(rdi)?;
        a.push(0)?;
        a.mov(rax, rdx)?;
        a.jmp(hypercall_stub(hc::HYPERVISOR_IRET))?;
        a.set_label(&mut back)?;
        a.pop(r15)?;
        a.pop(r14)?;
        a.pop(r13)?;
        a.pop(r12)?;
        a.pop(rbp)?;
        a.pop(rbx)?;
        a.ret()?;

        // trap_report(edi = vector, rsi = rip, rdx = error code): print and crash.
        let mut l = self.rt.trap_report;
        self.x.set(&mut l)?;
        let a = &mut self.x.a;
        a.mov(r12, rdi)?;
        a.mov(r13, rsi)?;
        a.mov(r14, rdx)?;
        a.lea(rax, rdi + 0x1000)?;
        a.mov(m64(g(ST_ERROR)), rax)?;
        a.cmp(m64(g(G_IN_FATAL)), 0)?;
        a.jne(self.rt.crash)?;
        a.mov(m64(g(G_IN_FATAL)), 1)?;
        self.print_tagged("trap ")?;
        self.x.a.mov(rdi, r12)?;
        self.x.a.call(self.rt.print_u64)?;
        self.print(" rip ")?;
        self.x.a.mov(rdi, r13)?;
        self.x.a.call(self.rt.print_u64)?;
        self.print(" err ")?;
        self.x.a.mov(rdi, r14)?;
        self.x.a.call(self.rt.print_u64)?;
        self.print("\n")?;
        self.x.a.jmp(self.rt.crash)
    }

    fn emit_misc(&mut self) -> AsmResult {
        // fatal(rdi = msg, rsi = len, rdx = value): print "<name>: error: msg value" and
        // crash.
        let mut l = self.rt.fatal;
        self.x.set(&mut l)?;
        let a = &mut self.x.a;
        a.mov(m64(g(ST_ERROR)), rdx)?;
        a.cmp(m64(g(G_IN_FATAL)), 0)?;
        a.jne(self.rt.crash)?;
        a.mov(m64(g(G_IN_FATAL)), 1)?;
        a.push(rdi)?;
        a.push(rsi)?;
        self.print_tagged("error: ")?;
        self.x.a.pop(rsi)?;
        self.x.a.pop(rdi)?;
        self.x.a.call(self.rt.console_write)?;
        self.print(" ")?;
        self.x.a.mov(rdi, m64(g(ST_ERROR)))?;
        self.x.a.call(self.rt.print_i64)?;
        self.print("\n")?;
        self.x.a.jmp(self.rt.crash)?;

        // crash: SHUTDOWN_crash.
        let mut l = self.rt.crash;
        self.x.set(&mut l)?;
        self.x.a.mov(m64(g(ST_STATE)), STATE_CRASHED as i32)?;
        self.x.a.mov(edi, SHUTDOWN_CRASH)?;
        self.x.a.jmp(self.rt.shutdown)?;

        // done: the steps= limit was reached.
        let mut l = self.rt.done;
        self.x.set(&mut l)?;
        self.print_tagged("done ")?;
        self.x.a.mov(rdi, m64(g(ST_STEPS)))?;
        self.x.a.call(self.rt.print_u64)?;
        self.print("\n")?;
        self.x.a.mov(m64(g(ST_STATE)), STATE_DONE as i32)?;
        self.x.a.mov(edi, SHUTDOWN_POWEROFF)?;
        self.x.a.jmp(self.rt.shutdown)?;

        // shutdown(edi = reason): never returns.
        let mut l = self.rt.shutdown;
        self.x.set(&mut l)?;
        let mut hang = self.x.label();
        let a = &mut self.x.a;
        a.mov(m32(g(G_ARG_SCHED)), edi)?;
        a.mov(edi, SCHEDOP_SHUTDOWN as u32)?;
        a.mov(esi, g(G_ARG_SCHED) as u32)?;
        a.xor(edx, edx)?;
        self.hc(hc::HYPERVISOR_SCHED_OP)?;
        self.x.set(&mut hang)?;
        self.x.a.mov(edi, SCHEDOP_YIELD as u32)?;
        self.x.a.xor(esi, esi)?;
        self.hc(hc::HYPERVISOR_SCHED_OP)?;
        self.x.a.jmp(hang)?;

        // xen_clock_ns -> rax: system time from vcpu_info.time (pvclock, seqlock).
        let mut l = self.rt.xen_clock_ns;
        self.x.set(&mut l)?;
        let retry = self.rt.xen_clock_ns;
        let mut right = self.x.label();
        let mut shifted = self.x.label();
        let a = &mut self.x.a;
        a.mov(r8d, m32(T_VERSION))?;
        a.test(r8d, 1)?;
        a.jnz(retry)?;
        a.rdtsc()?;
        a.shl(rdx, 32)?;
        a.or(rax, rdx)?;
        a.sub(rax, m64(T_TSC))?;
        a.movzx(ecx, m8(T_SHIFT))?;
        a.cmp(ecx, 0x80)?;
        a.jae(right)?;
        a.shl(rax, cl)?;
        a.jmp(shifted)?;
        a.set_label(&mut right)?;
        a.mov(r9d, 0x100u32)?;
        a.sub(r9d, ecx)?;
        a.mov(ecx, r9d)?;
        a.shr(rax, cl)?;
        a.set_label(&mut shifted)?;
        a.mov(ecx, m32(T_MUL))?;
        a.imul(rcx)?;
        a.shr(rax, 32)?;
        a.shl(rdx, 32)?;
        a.or(rax, rdx)?;
        a.add(rax, m64(T_SYSTIME))?;
        a.cmp(r8d, m32(T_VERSION))?;
        a.jne(retry)?;
        a.ret()?;

        // set_timer(rdi = absolute ns) -> rax: VCPUOP_set_singleshot_timer on vcpu 0.
        let mut l = self.rt.set_timer;
        self.x.set(&mut l)?;
        let t = g(G_ARG_TIMER);
        let a = &mut self.x.a;
        a.mov(m64(t), rdi)?;
        a.mov(m64(t + 8), 0)?;
        a.mov(edi, hc::VCPUOP_SET_SINGLESHOT_TIMER as u32)?;
        a.xor(esi, esi)?;
        a.mov(edx, t as u32)?;
        self.hc(hc::HYPERVISOR_VCPU_OP)?;
        self.x.a.ret()
    }
}
