//! Running guests: the interpreter's [`Bus`] over the model's page tables, the vCPU run
//! loop (hypercalls, guest system calls, exception and event bounces, `iret`), virtual
//! time and the deterministic round-robin scheduler.
//!
//! # Time
//! One retired guest instruction is one nanosecond of virtual time, and the guest TSC
//! runs at 1 GHz ([`TSC_KHZ`](super::time::TSC_KHZ)), so TSC = guest ns. A domain's
//! guest time is host time plus the domain's `elapsed_offset_ns` (set by `settscinfo`
//! on restore, so time continues across a save/restore). Only the running vCPU's
//! instructions advance host time; a host with nothing runnable jumps to the next
//! timer.
//!
//! # Scheduling
//! [`Model::run`] visits runnable vCPUs in (domain id, vCPU id) order, each for a slice
//! of at most [`SLICE`] instructions (less if it exits early: hypercalls that yield or
//! block end the slice), running dom0's services and firing timers between slices. The
//! same inputs always interleave the same way.

use crate::abi::vcpu as vc;
use crate::cpu::{self, gpr, Bus, CodePage, Exit, Fault, RunLimits};
use crate::model::hypercall::HypercallOutcome;
use crate::model::mm::Memory;
use crate::model::walk::{self, Access, WalkError};
use crate::model::Model;
use crate::types::{DomId, Mfn, VcpuId, PAGE_SIZE};

/// Instructions per scheduler slice.
pub const SLICE: u64 = 20_000;

/// `FLAT_KERNEL_CS64` / `FLAT_KERNEL_SS64` (64-bit PV kernels run in ring 3).
const KERNEL_CS: u16 = 0xe033;
const KERNEL_SS: u16 = 0xe02b;
const RFLAGS_IF: u64 = 1 << 9;
/// RFLAGS bits a guest may hold (CF PF AF ZF SF TF DF OF, plus the fixed bit 1 and IF).
const RFLAGS_GUEST: u64 = 0x0dd5;

#[derive(Clone, Copy, Default)]
struct TlbEntry {
    /// `va >> 12` + 1 (0 = empty).
    tag: u64,
    mfn: u64,
    /// Writes may go straight through (RW at every level and D already set).
    write: bool,
    /// Fetches may go straight through.
    exec: bool,
}

const TLB_SIZE: usize = 64;

/// The interpreter's memory: translations through one page-table root, cached for the
/// duration of a slice. The cache is valid because nothing inside a slice can change a
/// page table: page-table frames never have writable mappings (Xen's type rules), and
/// every page-table update is a hypercall, which ends the interpreter's run.
pub(crate) struct ModelBus<'a> {
    mem: &'a mut Memory,
    cr3: Mfn,
    user: bool,
    tlb: [TlbEntry; TLB_SIZE],
}

impl<'a> ModelBus<'a> {
    pub(crate) fn new(mem: &'a mut Memory, cr3: Mfn, user: bool) -> Self {
        ModelBus {
            mem,
            cr3,
            user,
            tlb: [TlbEntry::default(); TLB_SIZE],
        }
    }

    fn fault(e: WalkError) -> Fault {
        match e {
            WalkError::PageFault(pf) => Fault::pf(pf.cr2, pf.error_code),
            WalkError::NonCanonical(_) => Fault::gp(0),
        }
    }

    /// Translates one page for `acc`, through the TLB where possible.
    fn xlate(&mut self, va: u64, write: bool, fetch: bool) -> Result<Mfn, Fault> {
        let vpn = va >> 12;
        let slot = (vpn as usize) % TLB_SIZE;
        let e = self.tlb[slot];
        if e.tag == vpn + 1 && (!write || e.write) && (!fetch || e.exec) {
            return Ok(Mfn::new(e.mfn));
        }
        let t = walk::translate(
            self.mem,
            self.cr3,
            va,
            Access {
                write,
                user: self.user,
                fetch,
            },
        )
        .map_err(Self::fault)?;
        self.tlb[slot] = TlbEntry {
            tag: vpn + 1,
            mfn: t.mfn.get(),
            write: t.writable && t.dirty,
            exec: t.executable && (!self.user || t.user),
        };
        Ok(t.mfn)
    }

    /// Splits `[va, va+len)` at a page boundary: (first part length, second part).
    fn split(va: u64, len: usize) -> (usize, usize) {
        let room = PAGE_SIZE - (va & 0xfff) as usize;
        if len <= room {
            (len, 0)
        } else {
            (room, len - room)
        }
    }
}

impl Bus for ModelBus<'_> {
    fn fetch_page(&mut self, va: u64) -> Result<CodePage, Fault> {
        let mfn = self.xlate(va, false, true)?;
        self.mem.mark_code(mfn);
        Ok(CodePage {
            key: mfn.get(),
            gen: self.mem.frame_gen(mfn),
        })
    }

    fn code_bytes(&self, key: u64) -> &[u8; 4096] {
        // fetch_page returned this frame, so it is a machine frame.
        self.mem.page(Mfn::new(key)).unwrap_or(&ZERO_PAGE)
    }

    fn code_page_current(&self, page: CodePage) -> bool {
        self.mem.frame_gen(Mfn::new(page.key)) == page.gen
    }

    fn read(&mut self, va: u64, buf: &mut [u8]) -> Result<(), Fault> {
        let (a, b) = Self::split(va, buf.len());
        let m1 = self.xlate(va, false, false)?;
        let m2 = if b > 0 {
            Some(self.xlate(va.wrapping_add(a as u64), false, false)?)
        } else {
            None
        };
        let off = (va & 0xfff) as usize;
        let p1 = self.mem.page(m1).map_err(|_| Fault::gp(0))?;
        buf[..a].copy_from_slice(&p1[off..off + a]);
        if let Some(m2) = m2 {
            let p2 = self.mem.page(m2).map_err(|_| Fault::gp(0))?;
            buf[a..].copy_from_slice(&p2[..b]);
        }
        Ok(())
    }

    fn write(&mut self, va: u64, data: &[u8]) -> Result<(), Fault> {
        let (a, b) = Self::split(va, data.len());
        let m1 = self.xlate(va, true, false)?;
        let m2 = if b > 0 {
            Some(self.xlate(va.wrapping_add(a as u64), true, false)?)
        } else {
            None
        };
        let off = (va & 0xfff) as usize;
        self.mem
            .guest_write(m1, off, &data[..a])
            .map_err(|_| Fault::gp(0))?;
        if let Some(m2) = m2 {
            self.mem
                .guest_write(m2, 0, &data[a..])
                .map_err(|_| Fault::gp(0))?;
        }
        Ok(())
    }
}

static ZERO_PAGE: [u8; 4096] = [0; 4096];

/// Byte offsets inside a vcpu_info (shared_info starts with 32 of them, 64 bytes each).
const VI_PENDING: usize = 0;
const VI_MASK: usize = 1;
const VI_CR2: usize = 16;
const VI_TIME: usize = 32;

impl Model {
    /// Guest time (ns) of `dom`: host time plus the domain's offset.
    pub(crate) fn guest_now(&self, dom: DomId) -> u64 {
        let off = self
            .domains
            .get(&dom)
            .map_or(0, |d| d.tsc.elapsed_offset_ns);
        (self.time.now_ns as i64).wrapping_add(off) as u64
    }

    fn vcpu_info_byte(&mut self, dom: DomId, vcpu: VcpuId, off: usize) -> Option<&mut u8> {
        let si = self.domains.get(&dom)?.shared_info;
        let base = vcpu.index().checked_mul(64).filter(|&b| b < 2048)?;
        self.mem.page_mut_raw(si).ok()?.get_mut(base + off)
    }

    fn upcall_mask(&mut self, dom: DomId, vcpu: VcpuId) -> u8 {
        self.vcpu_info_byte(dom, vcpu, VI_MASK).map_or(1, |b| *b)
    }

    fn set_upcall_mask(&mut self, dom: DomId, vcpu: VcpuId, v: u8) {
        if let Some(b) = self.vcpu_info_byte(dom, vcpu, VI_MASK) {
            *b = v;
        }
    }

    /// Publishes `vcpu_time_info` for a vCPU (seqlock: odd version while updating).
    fn update_vcpu_time(&mut self, dom: DomId, vcpu: VcpuId) {
        let now = self.guest_now(dom);
        let Some(si) = self.domains.get(&dom).map(|d| d.shared_info) else {
            return;
        };
        let base = vcpu.index() * 64 + VI_TIME;
        if base + 32 > 2048 {
            return;
        }
        let Ok(page) = self.mem.page_mut_raw(si) else {
            return;
        };
        let t = &mut page[base..base + 32];
        let ver = u32::from_le_bytes(t[0..4].try_into().expect("4 bytes"));
        let odd = ver.wrapping_add(1) | 1;
        t[0..4].copy_from_slice(&odd.to_le_bytes());
        t[8..16].copy_from_slice(&now.to_le_bytes()); // tsc_timestamp (TSC = ns)
        t[16..24].copy_from_slice(&now.to_le_bytes()); // system_time
                                                       // ns = ((tsc - ts) << 1) * 2^31 >> 32: exactly 1 ns per tick.
        t[24..28].copy_from_slice(&(1u32 << 31).to_le_bytes());
        t[28] = 1; // tsc_shift
        t[29] = 1; // XEN_PVCLOCK_TSC_STABLE_BIT
        t[0..4].copy_from_slice(&odd.wrapping_add(1).to_le_bytes());
    }

    /// Switches a vCPU between guest kernel and guest user mode (Xen's
    /// `toggle_guest_mode`): the page-table root follows `in_kernel`, gs bases swap.
    fn toggle_guest_mode(&mut self, dom: DomId, vcpu: VcpuId) {
        if let Some(v) = self
            .domains
            .get_mut(&dom)
            .and_then(|d| d.vcpus.get_mut(vcpu.index()))
        {
            v.pv.in_kernel = !v.pv.in_kernel;
            std::mem::swap(&mut v.regs.gs_base, &mut v.regs.gs_base_shadow);
        }
    }

    /// Crashes a domain whose guest did something Xen cannot recover from.
    fn crash(&mut self, dom: DomId) {
        self.shutdown_domain(dom, crate::abi::sched::SHUTDOWN_CRASH);
    }

    /// Builds a bounce frame on the guest kernel stack and enters `handler` (Xen's
    /// `create_bounce_frame`); see [`crate::abi::vcpu`] for the layout. Crashes the
    /// domain if there is no handler or the frame cannot be written.
    fn bounce(
        &mut self,
        dom: DomId,
        vcpu: VcpuId,
        handler: u64,
        error_code: Option<u64>,
        mask_events: bool,
    ) {
        if handler == 0 {
            self.crash(dom);
            return;
        }
        let saved_mask = self.upcall_mask(dom, vcpu);
        let Some(in_kernel) = self
            .domains
            .get(&dom)
            .and_then(|d| d.vcpus.get(vcpu.index()))
            .map(|v| v.pv.in_kernel)
        else {
            return;
        };
        // Interrupted state, before any mode switch.
        let v = &self.domains[&dom].vcpus[vcpu.index()];
        let (rip, rsp, rflags, cs, ss) = (
            v.regs.rip,
            v.regs.gpr[gpr::RSP],
            v.regs.rflags,
            v.regs.cs,
            v.regs.ss,
        );
        let (rcx, r11) = (v.regs.gpr[gpr::RCX], v.regs.gpr[gpr::R11]);
        let kernel_sp = v.pv.kernel_sp;
        let (stack, saved_cs) = if in_kernel {
            (rsp, cs & !3)
        } else {
            self.toggle_guest_mode(dom, vcpu);
            (kernel_sp, cs | 3)
        };
        let stack = stack & !(vc::BOUNCE_FRAME_ALIGN - 1);
        let flags_out = (rflags & !RFLAGS_IF) | if saved_mask == 0 { RFLAGS_IF } else { 0 };
        let mut words: Vec<u64> = vec![rcx, r11];
        if let Some(e) = error_code {
            words.push(e);
        }
        words.extend([
            rip,
            u64::from(saved_cs) | (u64::from(saved_mask) << vc::BOUNCE_CS_UPCALL_MASK_SHIFT),
            flags_out,
            rsp,
            u64::from(ss),
        ]);
        let new_rsp = stack.wrapping_sub(words.len() as u64 * 8);
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        let cr3 = match self.domains[&dom].vcpus[vcpu.index()].pv.cr3 {
            Some(c) => c,
            None => return self.crash(dom),
        };
        if walk::copy_to_guest(&mut self.mem, cr3, new_rsp, &bytes).is_err() {
            self.crash(dom);
            return;
        }
        let v = &mut self.domains.get_mut(&dom).expect("domain").vcpus[vcpu.index()];
        v.regs.gpr[gpr::RSP] = new_rsp;
        v.regs.rip = handler;
        v.regs.cs = KERNEL_CS;
        v.regs.ss = KERNEL_SS;
        v.regs.rflags &= !vc::BOUNCE_RFLAGS_CLEAR;
        if mask_events {
            self.set_upcall_mask(dom, vcpu, 1);
        }
    }

    /// Delivers an exception the interpreter raised to the guest's trap table.
    fn inject_exception(&mut self, dom: DomId, vcpu: VcpuId, f: Fault) {
        let Some(v) = self
            .domains
            .get_mut(&dom)
            .and_then(|d| d.vcpus.get_mut(vcpu.index()))
        else {
            return;
        };
        let trap = v.pv.trap_table[usize::from(f.vector)];
        if let Some(cr2) = f.cr2 {
            v.pv.cr2 = cr2;
            let base = vcpu.index() * 64 + VI_CR2;
            let si = self.domains[&dom].shared_info;
            if base + 8 <= 2048 {
                if let Ok(page) = self.mem.page_mut_raw(si) {
                    page[base..base + 8].copy_from_slice(&cr2.to_le_bytes());
                }
            }
        }
        self.bounce(
            dom,
            vcpu,
            trap.address,
            f.error_code.map(u64::from),
            trap.flags & vc::TI_IF != 0,
        );
    }

    /// Enters the event callback if an upcall is pending and not masked.
    fn maybe_upcall(&mut self, dom: DomId, vcpu: VcpuId) {
        let pending = self
            .vcpu_info_byte(dom, vcpu, VI_PENDING)
            .is_some_and(|b| *b != 0);
        if !pending || self.upcall_mask(dom, vcpu) != 0 {
            return;
        }
        let cb = self.domains[&dom].vcpus[vcpu.index()].pv.event_callback;
        if cb != 0 {
            self.bounce(dom, vcpu, cb, None, true);
        }
    }

    /// The `iret` hypercall: restores the frame the guest left on its stack.
    pub(crate) fn do_iret(&mut self, dom: DomId, vcpu: VcpuId) -> HypercallOutcome {
        let Some(v) = self
            .domains
            .get(&dom)
            .and_then(|d| d.vcpus.get(vcpu.index()))
        else {
            return HypercallOutcome::Return(crate::Errno::EINVAL.to_ret());
        };
        let rsp = v.regs.gpr[gpr::RSP];
        let Some(cr3) = (if v.pv.in_kernel {
            v.pv.cr3
        } else {
            v.pv.user_cr3
        }) else {
            self.crash(dom);
            return HypercallOutcome::NoReturn;
        };
        let mut raw = [0u8; 72];
        if walk::copy_from_guest(&mut self.mem, cr3, rsp, &mut raw).is_err() {
            self.crash(dom);
            return HypercallOutcome::NoReturn;
        }
        let w = |i: usize| u64::from_le_bytes(raw[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        let (rax, r11, rcx, flags, rip, cs, rflags, new_rsp, ss) =
            (w(0), w(1), w(2), w(3), w(4), w(5), w(6), w(7), w(8));
        if !crate::model::domctl::is_canonical(rip) || !crate::model::domctl::is_canonical(new_rsp)
        {
            self.crash(dom);
            return HypercallOutcome::NoReturn;
        }
        let to_user = cs & 3 == 3 && self.domains[&dom].vcpus[vcpu.index()].pv.in_kernel;
        if to_user {
            if self.domains[&dom].vcpus[vcpu.index()].pv.user_cr3.is_none() {
                // "Guest switching to user mode with no user page tables".
                self.crash(dom);
                return HypercallOutcome::NoReturn;
            }
            self.toggle_guest_mode(dom, vcpu);
        }
        let v = &mut self.domains.get_mut(&dom).expect("domain").vcpus[vcpu.index()];
        v.regs.gpr[gpr::RAX] = rax;
        // As Xen's do_iret: a frame flagged VGCF_in_syscall (a return from a system call,
        // Linux's sysret path) leaves rcx and r11 as the hypercall's syscall left them.
        if flags & crate::abi::vcpu::VGCF_IN_SYSCALL == 0 {
            v.regs.gpr[gpr::R11] = r11;
            v.regs.gpr[gpr::RCX] = rcx;
        }
        v.regs.rip = rip;
        v.regs.cs = (cs as u16) | 3;
        v.regs.rflags = (rflags & RFLAGS_GUEST) | RFLAGS_IF | 2;
        v.regs.gpr[gpr::RSP] = new_rsp;
        v.regs.ss = (ss as u16) | 3;
        // Events are unmasked exactly when the restored context had IF set.
        let mask = u8::from(rflags & RFLAGS_IF == 0);
        self.set_upcall_mask(dom, vcpu, mask);
        HypercallOutcome::NoReturn
    }

    /// Runs one vCPU for at most `budget` instructions. Returns the number retired and
    /// whether the slice ended early (the vCPU yielded, blocked or the domain stopped).
    pub(crate) fn run_vcpu(&mut self, dom: DomId, vcpu: VcpuId, budget: u64) -> (u64, bool) {
        self.update_vcpu_time(dom, vcpu);
        self.maybe_upcall(dom, vcpu);
        if !self.vcpu_runnable(dom, vcpu) {
            return (0, true);
        }
        let tsc = self.guest_now(dom);
        let Some(v) = self
            .domains
            .get_mut(&dom)
            .and_then(|d| d.vcpus.get_mut(vcpu.index()))
        else {
            return (0, true);
        };
        let user = !v.pv.in_kernel;
        let Some(cr3) = (if user { v.pv.user_cr3 } else { v.pv.cr3 }) else {
            self.crash(dom);
            return (0, true);
        };
        let mut regs = std::mem::take(&mut v.regs);
        let mut icache = std::mem::take(&mut self.icache);
        let res = {
            let mut bus = ModelBus::new(&mut self.mem, cr3, user);
            cpu::run(
                &mut regs,
                &mut bus,
                &mut icache,
                RunLimits {
                    budget,
                    tsc,
                    tsc_aux: vcpu.get(),
                },
            )
        };
        self.icache = icache;
        let v = &mut self.domains.get_mut(&dom).expect("domain").vcpus[vcpu.index()];
        v.regs = regs;
        v.instructions += res.retired;
        v.cpu_time_ns += res.retired;
        self.time.now_ns += res.retired;
        let ended = match res.exit {
            Exit::Budget => false,
            Exit::Syscall => self.on_syscall(dom, vcpu),
            Exit::Exception(f) => {
                self.inject_exception(dom, vcpu, f);
                false
            }
        };
        (res.retired, ended || !self.vcpu_runnable(dom, vcpu))
    }

    /// `syscall` from the guest: a hypercall from kernel mode, a system call to the
    /// guest kernel's syscall callback from user mode. Returns whether the slice ends.
    fn on_syscall(&mut self, dom: DomId, vcpu: VcpuId) -> bool {
        let v = &self.domains[&dom].vcpus[vcpu.index()];
        if !v.pv.in_kernel {
            let cb = v.pv.syscall_callback;
            let mask = v.pv.flags & vc::VGCF_SYSCALL_DISABLES_EVENTS != 0;
            self.bounce(dom, vcpu, cb, None, mask);
            return false;
        }
        let g = v.regs.gpr;
        let nr = g[gpr::RAX];
        let args = [
            g[gpr::RDI],
            g[gpr::RSI],
            g[gpr::RDX],
            g[gpr::R10],
            g[gpr::R8],
        ];
        let out = self.hypercall(dom, vcpu, nr, args);
        let set_rax = |m: &mut Model, val: i64| {
            if let Some(v) = m
                .domains
                .get_mut(&dom)
                .and_then(|d| d.vcpus.get_mut(vcpu.index()))
            {
                v.regs.gpr[gpr::RAX] = val as u64;
            }
        };
        match out {
            HypercallOutcome::Return(r) => {
                set_rax(self, r);
                false
            }
            HypercallOutcome::Preempt(r) => {
                set_rax(self, r);
                true
            }
            HypercallOutcome::NoReturn => false,
        }
    }

    /// Runs the host for up to `max_insns` guest instructions (all vCPUs together),
    /// round-robin in slices, with dom0's services and timers between slices. Returns
    /// the instructions retired; stops early when nothing can run and no timer is armed.
    pub fn run(&mut self, max_insns: u64) -> u64 {
        let mut done = 0;
        while done < max_insns {
            let runnable: Vec<(DomId, VcpuId)> = self
                .domains
                .values()
                .flat_map(|d| d.vcpus.iter().map(move |v| (d.id, v.id)))
                .filter(|&(d, v)| self.vcpu_runnable(d, v))
                .collect();
            if runnable.is_empty() {
                if !self.advance_to_next_timer(u64::MAX) {
                    break;
                }
                continue;
            }
            for (d, v) in runnable {
                if done >= max_insns {
                    break;
                }
                let (n, _) = self.run_vcpu(d, v, SLICE.min(max_insns - done));
                done += n;
                self.fire_timers();
                self.dom0_services();
            }
        }
        done
    }

    /// Runs guests until host time reaches `deadline_ns`. Returns false when nothing can
    /// happen before the deadline (time is then at the deadline).
    pub(crate) fn run_until(&mut self, deadline_ns: u64) -> bool {
        self.dom0_services();
        if self.time.now_ns >= deadline_ns {
            return false;
        }
        let runnable = self
            .domains
            .values()
            .any(|d| d.vcpus.iter().any(|v| self.vcpu_runnable(d.id, v.id)));
        if runnable {
            let left = deadline_ns - self.time.now_ns;
            let n = self.run(left.min(SLICE * 4));
            if n > 0 {
                return true;
            }
        }
        if self.advance_to_next_timer(deadline_ns) {
            return true;
        }
        self.time.now_ns = deadline_ns;
        false
    }

    /// Jumps host time to the earliest armed timer or poll timeout at or before `limit`
    /// and fires it. Returns whether one was found.
    fn advance_to_next_timer(&mut self, limit: u64) -> bool {
        let now = self.time.now_ns;
        let next = self
            .domains
            .values()
            .flat_map(|d| {
                let off = d.tsc.elapsed_offset_ns;
                d.vcpus.iter().filter_map(move |v| {
                    let t = v
                        .timer_deadline_ns
                        .or(v.poll.as_ref().and_then(|p| p.deadline_ns))?;
                    Some((t as i64).wrapping_sub(off) as u64)
                })
            })
            .map(|t| t.max(now))
            .min();
        match next {
            Some(t) if t <= limit => {
                self.time.now_ns = t;
                self.fire_timers();
                self.dom0_services();
                true
            }
            _ => false,
        }
    }

    /// Fires every expired singleshot timer (VIRQ_TIMER) and poll timeout.
    pub(crate) fn fire_timers(&mut self) {
        let mut fire = Vec::new();
        let ids: Vec<DomId> = self.domains.keys().copied().collect();
        for dom in ids {
            let now = self.guest_now(dom);
            let d = self.domains.get_mut(&dom).expect("domain");
            for v in &mut d.vcpus {
                if v.timer_deadline_ns.is_some_and(|t| t <= now) {
                    v.timer_deadline_ns = None;
                    fire.push((dom, v.id));
                }
                if v.poll
                    .as_ref()
                    .and_then(|p| p.deadline_ns)
                    .is_some_and(|t| t <= now)
                {
                    v.poll = None;
                }
            }
        }
        for (dom, vcpu) in fire {
            self.send_virq(dom, vcpu, crate::abi::evtchn::VIRQ_TIMER);
        }
    }
}

/// The interpreter on [`ModelBus`]: hardware paging rules, A/D bits and log-dirty
/// through the guest's own page tables, and the bus's TLB never widening a permission.
#[cfg(test)]
mod bus_tests {
    use iced_x86::code_asm::*;

    use super::ModelBus;
    use crate::cpu::{self, gpr, pf_error as pfe, DecodeCache, Exit, Fault, Regs, RunLimits};
    use crate::model::testkit::MiniGuest;
    use crate::model::{Model, ModelConfig};

    const PAGES: usize = 8;
    const P: u64 = 1;
    const RW: u64 = 2;
    const US: u64 = 4;
    const ACCESSED: u64 = 1 << 5;
    const DIRTY: u64 = 1 << 6;
    const NX: u64 = 1 << 63;

    fn setup() -> (Model, MiniGuest) {
        let mut m = Model::new(ModelConfig {
            machine_frames: 1024,
        });
        let g = MiniGuest::build(&mut m, PAGES).unwrap();
        (m, g)
    }

    /// The L1 entry mapping data page `pfn` (the builder's L1 maps PFN i at slot i).
    fn l1e(m: &Model, g: &MiniGuest, pfn: usize) -> u64 {
        m.mem.pte(g.tables[3].get() as usize, pfn)
    }

    /// Rewrites the flags of that entry behind the type system's back (same frame, so
    /// no reference changes).
    fn set_l1e_flags(m: &mut Model, g: &MiniGuest, pfn: usize, flags: u64) {
        let e = l1e(m, g, pfn) & 0x000f_ffff_ffff_f000;
        m.mem.write_pte(g.tables[3].get() as usize, pfn, e | flags);
    }

    /// Runs `code` (assembled at PFN 0) in kernel or user mode through the bus; returns
    /// the exit and the registers.
    fn exec(
        m: &mut Model,
        g: &MiniGuest,
        user: bool,
        code: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>,
    ) -> (Exit, Regs) {
        let mut a = CodeAssembler::new(64).unwrap();
        code(&mut a).unwrap();
        a.ud2().unwrap();
        let bytes = a.assemble(g.va(0)).unwrap();
        m.mem.guest_write(g.data[0], 0, &bytes).unwrap();
        let mut regs = Regs {
            rip: g.va(0),
            rflags: 0x202,
            ..Regs::default()
        };
        regs.gpr[gpr::RSP] = g.va(PAGES);
        let mut cache = DecodeCache::new();
        let mut bus = ModelBus::new(&mut m.mem, g.tables[0], user);
        let r = cpu::run(
            &mut regs,
            &mut bus,
            &mut cache,
            RunLimits {
                budget: 1000,
                tsc: 0,
                tsc_aux: 0,
            },
        );
        (r.exit, regs)
    }

    fn pf(at: u64, code: u32) -> Exit {
        Exit::Exception(Fault::pf(at, code))
    }

    #[test]
    fn not_present_and_read_only_faults_carry_the_hardware_error_code() {
        let (mut m, g) = setup();
        let missing = g.va(PAGES + 40);
        let (e, _) = exec(&mut m, &g, false, |a| a.mov(rax, qword_ptr(missing)));
        assert_eq!(e, pf(missing, 0), "kernel read, not present");
        let (e, _) = exec(&mut m, &g, true, |a| a.mov(qword_ptr(missing + 8), rax));
        assert_eq!(e, pf(missing + 8, pfe::WRITE | pfe::USER), "user write");
        // The page tables are mapped read-only right after the data pages.
        let table = g.table_va(1);
        let (e, r) = exec(&mut m, &g, false, |a| {
            a.mov(rbx, qword_ptr(table))?; // reading is fine
            a.mov(qword_ptr(table + 16), rbx)
        });
        assert_eq!(e, pf(table + 16, pfe::PRESENT | pfe::WRITE));
        assert_eq!(r.gpr[gpr::RBX], l1e(&m, &g, 0), "the read saw the L1");
        // A write straddling from the last data page into the read-only L4 faults at
        // the read-only half and writes neither.
        let l4 = g.table_va(4);
        assert_eq!(l4, g.va(PAGES));
        let before = m.mem.page(g.tables[0]).unwrap()[..4].to_vec();
        let (e, _) = exec(&mut m, &g, false, |a| {
            a.mov(rax, -1i64)?;
            a.mov(qword_ptr(l4 - 4), rax)
        });
        assert_eq!(e, pf(l4, pfe::PRESENT | pfe::WRITE));
        assert_eq!(m.mem.page(g.tables[0]).unwrap()[..4], before[..]);
        assert_eq!(m.mem.page(g.data[PAGES - 1]).unwrap()[4092..], [0; 4]);
    }

    #[test]
    fn pages_without_us_nx_and_reserved_bits() {
        let (mut m, g) = setup();
        // PFN 2: written without US. The kernel (ring 3, not guest user mode) may use it.
        set_l1e_flags(&mut m, &g, 2, P | RW);
        let sup = g.va(2);
        let (e, _) = exec(&mut m, &g, false, |a| a.mov(qword_ptr(sup), rax));
        assert_eq!(e, Exit::Exception(Fault::UD), "kernel store went through");
        // Xen ORs _PAGE_USER into every entry of a 64-bit PV guest (adjust_guest_l1e),
        // so guest user mode is not stopped by a missing US either: kernel and user are
        // separated only by the user page-table root.
        let (e, r) = exec(&mut m, &g, true, |a| a.mov(rax, qword_ptr(sup + 8)));
        assert_eq!(e, Exit::Exception(Fault::UD), "user read went through");
        assert_eq!(r.rip, g.va(0) + 10, "after the 10-byte load");
        // PFN 3: NX. Data access is fine, a fetch faults at the branch target.
        set_l1e_flags(&mut m, &g, 3, P | RW | US | NX);
        let nx = g.va(3);
        let (e, r) = exec(&mut m, &g, false, |a| {
            a.mov(qword_ptr(nx), rax)?;
            a.mov(rax, nx + 0x10)?;
            a.jmp(rax)
        });
        assert_eq!(e, pf(nx + 0x10, pfe::PRESENT | pfe::FETCH));
        assert_eq!(r.rip, nx + 0x10);
        let (e, _) = exec(&mut m, &g, true, |a| {
            a.mov(rax, nx)?;
            a.call(rax)
        });
        assert_eq!(e, pf(nx, pfe::PRESENT | pfe::FETCH | pfe::USER));
        // PFN 4: a reserved bit (51) in the leaf.
        set_l1e_flags(&mut m, &g, 4, P | RW | US | 1 << 51);
        let rsvd = g.va(4);
        let (e, _) = exec(&mut m, &g, false, |a| a.mov(eax, dword_ptr(rsvd + 0x40)));
        assert_eq!(e, pf(rsvd + 0x40, pfe::PRESENT | pfe::RSVD));
    }

    #[test]
    fn accessed_and_dirty_bits_are_set_by_interpreted_accesses_and_logged() {
        let (mut m, g) = setup();
        for pfn in 2..4 {
            set_l1e_flags(&mut m, &g, pfn, P | RW | US);
        }
        m.mem.logdirty_enable(g.dom).unwrap();
        let mut pages = 64;
        m.mem
            .logdirty_clean(g.dom, None, &mut pages, false)
            .unwrap();
        // Read PFN 2 (A only), then write it in the same run: the cached read-only
        // translation must not let the write skip D. Write PFN 3 only.
        let (e, _) = exec(&mut m, &g, false, |a| {
            a.mov(rax, qword_ptr(g.va(2)))?;
            a.mov(qword_ptr(g.va(2) + 8), rax)?;
            a.mov(dword_ptr(g.va(3)), 7i32)
        });
        assert_eq!(e, Exit::Exception(Fault::UD));
        assert_eq!(l1e(&m, &g, 2) & (ACCESSED | DIRTY), ACCESSED | DIRTY);
        assert_eq!(l1e(&m, &g, 3) & (ACCESSED | DIRTY), ACCESSED | DIRTY);
        // A read alone sets A, not D.
        set_l1e_flags(&mut m, &g, 5, P | RW | US);
        let (_, _) = exec(&mut m, &g, false, |a| a.mov(rax, qword_ptr(g.va(5))));
        assert_eq!(l1e(&m, &g, 5) & (ACCESSED | DIRTY), ACCESSED);
        // Log-dirty saw the data stores (PFNs 0 code, 2, 3) and the A/D updates of the
        // L1 (PFN PAGES + 3), but not PFN 5, only read.
        let mut bm = [0u8; 2];
        let mut pages = 16;
        m.mem
            .logdirty_peek(g.dom, Some(&mut bm), &mut pages)
            .unwrap();
        let bit = |p: usize| bm[p / 8] >> (p % 8) & 1 == 1;
        assert!(bit(2) && bit(3), "stored pages are dirty: {bm:?}");
        assert!(bit(PAGES + 3), "the L1's A/D updates are logged: {bm:?}");
        assert!(!bit(5), "a page only read is clean: {bm:?}");
        assert_eq!(m.mem.read_u64(g.data[3], 0).unwrap(), 7);
    }

    #[test]
    fn a_cached_translation_never_widens_permissions() {
        let (mut m, g) = setup();
        // Within one run: read a read-only page (cached), then write it; read a
        // supervisor page in kernel mode, then fetch from an NX page after reading it.
        let ro = g.table_va(2);
        let (e, _) = exec(&mut m, &g, false, |a| {
            a.mov(rax, qword_ptr(ro))?;
            a.mov(qword_ptr(ro), rax)
        });
        assert_eq!(e, pf(ro, pfe::PRESENT | pfe::WRITE));
        set_l1e_flags(&mut m, &g, 6, P | RW | US | NX);
        let nx = g.va(6);
        let (e, _) = exec(&mut m, &g, false, |a| {
            a.mov(rax, qword_ptr(nx))?;
            a.mov(rax, nx)?;
            a.jmp(rax)
        });
        assert_eq!(e, pf(nx, pfe::PRESENT | pfe::FETCH));
    }
}
