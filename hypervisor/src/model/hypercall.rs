//! The guest side: `Model::hypercall`, entered when a PV guest's vCPU executes
//! `syscall` from its hypercall page, with the number in rax and arguments in rdi, rsi,
//! rdx, r10, r8. Pointer arguments are guest virtual addresses, read and written
//! through the vCPU's current page tables with Xen's copy_from/to_guest checks
//! (`-EFAULT` on any fault).
//!
//! Commands shared with the toolstack's [`Xen`](crate::Xen) path (memory_op,
//! event_channel_op, xen_version, mmuext pins) go through one implementation that reads
//! its arguments through an [`ArgIo`], so the guest and dom0 see the same semantics.

use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

use crate::abi::evtchn as ev;
use crate::abi::hypercall as hc;
use crate::abi::memory as xm;
use crate::abi::mm::{self as abimm, MmuUpdate, MmuextOp};
use crate::abi::sched as sch;
use crate::abi::version as ver;
use crate::error::{Errno, XenResult};
use crate::model::domain::{Trap, SHUTDOWN_SUSPEND};
use crate::model::domctl::is_canonical;
use crate::model::mm::PageType;
use crate::model::{walk, Model};
use crate::types::{DomId, Mfn, Port, VcpuId};

/// What the vCPU does after a hypercall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HypercallOutcome {
    /// Put this value in rax and continue.
    Return(i64),
    /// Put this value in rax, then end the vCPU's time slice (yield, block, shutdown).
    Preempt(i64),
    /// The hypercall replaced the register state (iret): leave rax alone.
    NoReturn,
}

/// Most elements one hypercall processes from a guest array before Xen would preempt
/// and continue it; the model processes the whole request but reads it in chunks of
/// this size so that a guest claiming a huge count cannot make the host allocate it.
const CHUNK: usize = 512;

/// Reads and writes the memory a hypercall's pointer arguments name.
pub(crate) trait ArgIo {
    /// Copies `out.len()` bytes from `addr`.
    fn read(&mut self, m: &mut Model, addr: u64, out: &mut [u8]) -> XenResult<()>;
    /// Copies `data` to `addr`.
    fn write(&mut self, m: &mut Model, addr: u64, data: &[u8]) -> XenResult<()>;
}

/// Guest virtual memory of a vCPU (its current page tables).
pub(crate) struct GuestIo {
    pub(crate) cr3: Mfn,
}

impl ArgIo for GuestIo {
    fn read(&mut self, m: &mut Model, addr: u64, out: &mut [u8]) -> XenResult<()> {
        walk::copy_from_guest(&mut m.mem, self.cr3, addr, out)
    }
    fn write(&mut self, m: &mut Model, addr: u64, data: &[u8]) -> XenResult<()> {
        walk::copy_to_guest(&mut m.mem, self.cr3, addr, data)
    }
}

/// A toolstack buffer: "addresses" are byte offsets into it.
pub(crate) struct BufIo<'a>(pub(crate) &'a mut [u8]);

impl ArgIo for BufIo<'_> {
    fn read(&mut self, _: &mut Model, addr: u64, out: &mut [u8]) -> XenResult<()> {
        let start = usize::try_from(addr).map_err(|_| Errno::EFAULT)?;
        let end = start.checked_add(out.len()).ok_or(Errno::EFAULT)?;
        out.copy_from_slice(self.0.get(start..end).ok_or(Errno::EFAULT)?);
        Ok(())
    }
    fn write(&mut self, _: &mut Model, addr: u64, data: &[u8]) -> XenResult<()> {
        let start = usize::try_from(addr).map_err(|_| Errno::EFAULT)?;
        let end = start.checked_add(data.len()).ok_or(Errno::EFAULT)?;
        self.0
            .get_mut(start..end)
            .ok_or(Errno::EFAULT)?
            .copy_from_slice(data);
        Ok(())
    }
}

fn read_struct<T: FromBytes + IntoBytes + KnownLayout + Immutable>(
    io: &mut dyn ArgIo,
    m: &mut Model,
    addr: u64,
) -> XenResult<T> {
    let mut v = T::new_zeroed();
    io.read(m, addr, v.as_mut_bytes())?;
    Ok(v)
}

fn write_struct<T: IntoBytes + Immutable>(
    io: &mut dyn ArgIo,
    m: &mut Model,
    addr: u64,
    v: &T,
) -> XenResult<()> {
    io.write(m, addr, v.as_bytes())
}

fn ret(r: XenResult<i64>) -> HypercallOutcome {
    HypercallOutcome::Return(r.unwrap_or_else(Errno::to_ret))
}

impl Model {
    /// The page-table root a vCPU's hypercall arguments are translated through.
    fn current_cr3(&self, dom: DomId, vcpu: VcpuId) -> XenResult<Mfn> {
        let v = self
            .domain(dom)?
            .vcpus
            .get(vcpu.index())
            .ok_or(Errno::EINVAL)?;
        let root = if v.pv.in_kernel {
            v.pv.cr3
        } else {
            v.pv.user_cr3.or(v.pv.cr3)
        };
        root.ok_or(Errno::EFAULT)
    }

    /// A hypercall from vCPU `vcpu` of `dom`: number `nr`, arguments in rdi, rsi, rdx,
    /// r10, r8 order. Never panics, whatever the guest passes.
    pub fn hypercall(
        &mut self,
        dom: DomId,
        vcpu: VcpuId,
        nr: u64,
        args: [u64; 5],
    ) -> HypercallOutcome {
        let cr3 = match self.current_cr3(dom, vcpu) {
            Ok(c) => c,
            Err(e) => return HypercallOutcome::Return(e.to_ret()),
        };
        let mut io = GuestIo { cr3 };
        let [a1, a2, a3, a4, a5] = args;
        match nr {
            hc::HYPERVISOR_MMU_UPDATE => ret(self.guest_mmu_update(dom, &mut io, a1, a2, a3, a4)),
            hc::HYPERVISOR_MMUEXT_OP => {
                ret(self.guest_mmuext_op(dom, vcpu, &mut io, a1, a2, a3, a4))
            }
            hc::HYPERVISOR_UPDATE_VA_MAPPING => ret(self.update_va_mapping(dom, vcpu, a1, a2, a3)),
            hc::HYPERVISOR_MEMORY_OP => ret(self.memory_op_io(dom, &mut io, a1, a2)),
            hc::HYPERVISOR_EVENT_CHANNEL_OP => ret(self.event_channel_op_io(dom, &mut io, a1, a2)),
            hc::HYPERVISOR_XEN_VERSION => ret(self.xen_version_io(&mut io, a1, a2)),
            hc::HYPERVISOR_SCHED_OP => self.sched_op(dom, vcpu, &mut io, a1, a2, a3),
            hc::HYPERVISOR_IRET => self.do_iret(dom, vcpu),
            hc::HYPERVISOR_SET_TRAP_TABLE => ret(self.set_trap_table(dom, vcpu, &mut io, a1)),
            hc::HYPERVISOR_SET_CALLBACKS => ret(self.with_vcpu(dom, vcpu, |v| {
                if ![a1, a2, a3].iter().all(|&a| is_canonical(a)) {
                    return Err(Errno::EINVAL);
                }
                v.pv.event_callback = a1;
                v.pv.failsafe_callback = a2;
                v.pv.syscall_callback = a3;
                Ok(0)
            })),
            hc::HYPERVISOR_CALLBACK_OP => ret(self.callback_op(dom, vcpu, &mut io, a1, a2)),
            hc::HYPERVISOR_STACK_SWITCH => ret(self.with_vcpu(dom, vcpu, |v| {
                v.pv.kernel_ss = a1;
                v.pv.kernel_sp = a2;
                Ok(0)
            })),
            hc::HYPERVISOR_FPU_TASKSWITCH => ret(self.with_vcpu(dom, vcpu, |v| {
                // The model keeps no lazy FPU state: CR0.TS is recorded, never faults.
                if a1 != 0 {
                    v.pv.ctrlreg[0] |= 1 << 3;
                } else {
                    v.pv.ctrlreg[0] &= !(1 << 3);
                }
                Ok(0)
            })),
            hc::HYPERVISOR_SET_SEGMENT_BASE => ret(self.set_segment_base(dom, vcpu, a1, a2)),
            hc::HYPERVISOR_VM_ASSIST => ret(self.with_vcpu(dom, vcpu, |v| {
                // Types Xen accepts for 64-bit PV: writable_pagetables (2, accepted but
                // not emulated by the model), runstate_update_flag (5), m2p_strict (32).
                let allowed = (1u64 << 2) | (1 << 5) | (1 << 32);
                let bit = 1u64
                    .checked_shl(a2 as u32)
                    .filter(|_| a2 < 64)
                    .ok_or(Errno::EINVAL)?;
                if bit & allowed == 0 {
                    return Err(Errno::EINVAL);
                }
                match a1 {
                    0 => v.pv.vm_assist |= bit,
                    1 => v.pv.vm_assist &= !bit,
                    _ => return Err(Errno::ENOSYS),
                }
                Ok(0)
            })),
            hc::HYPERVISOR_VCPU_OP => ret(self.vcpu_op(dom, vcpu, &mut io, a1, a2, a3)),
            hc::HYPERVISOR_SET_TIMER_OP => ret(self.with_vcpu(dom, vcpu, |v| {
                v.timer_deadline_ns = (a1 != 0).then_some(a1);
                Ok(0)
            })),
            hc::HYPERVISOR_CONSOLE_IO => {
                // Xen's console is dom0's (XSM default): a domU gets EPERM.
                ret(Err(Errno::EPERM))
            }
            _ => {
                let _ = (a4, a5);
                ret(Err(Errno::ENOSYS))
            }
        }
    }

    fn with_vcpu(
        &mut self,
        dom: DomId,
        vcpu: VcpuId,
        f: impl FnOnce(&mut crate::model::Vcpu) -> XenResult<i64>,
    ) -> XenResult<i64> {
        let v = self
            .domain_mut(dom)?
            .vcpus
            .get_mut(vcpu.index())
            .ok_or(Errno::EINVAL)?;
        f(v)
    }

    fn guest_mmu_update(
        &mut self,
        dom: DomId,
        io: &mut dyn ArgIo,
        reqs: u64,
        count: u64,
        pdone: u64,
        fd: u64,
    ) -> XenResult<i64> {
        let mut done_total: u64 = 0;
        let mut result = Ok(0);
        while done_total < count {
            let n = (count - done_total).min(CHUNK as u64) as usize;
            let mut batch = vec![MmuUpdate::new_zeroed(); n];
            let at = reqs.wrapping_add(done_total * 16);
            if let Err(e) = io.read(self, at, batch.as_mut_bytes()) {
                result = Err(e);
                break;
            }
            let mut done = 0u32;
            let r = self
                .mem
                .mmu_update(dom, false, &batch, fd as u32, &mut done);
            done_total += u64::from(done);
            if let Err(e) = r {
                result = Err(e);
                break;
            }
        }
        if pdone != 0 {
            write_struct(io, self, pdone, &(done_total as u32))?;
        }
        result
    }

    fn guest_mmuext_op(
        &mut self,
        dom: DomId,
        vcpu: VcpuId,
        io: &mut dyn ArgIo,
        ops: u64,
        count: u64,
        pdone: u64,
        fd: u64,
    ) -> XenResult<i64> {
        let mut done_total: u64 = 0;
        let mut result = Ok(0);
        while done_total < count {
            let n = (count - done_total).min(CHUNK as u64) as usize;
            let mut batch = vec![MmuextOp::new_zeroed(); n];
            let at = ops.wrapping_add(done_total * 24);
            if let Err(e) = io.read(self, at, batch.as_mut_bytes()) {
                result = Err(e);
                break;
            }
            let mut done = 0u32;
            let r = self.mmuext_ops(dom, Some(vcpu), &batch, fd as u32, &mut done);
            done_total += u64::from(done);
            if let Err(e) = r {
                result = Err(e);
                break;
            }
        }
        if pdone != 0 {
            write_struct(io, self, pdone, &(done_total as u32))?;
        }
        result
    }

    /// `mmuext_op` for `caller` (a guest vCPU, or dom0 on behalf of `foreigndom`).
    pub(crate) fn mmuext_ops(
        &mut self,
        caller: DomId,
        vcpu: Option<VcpuId>,
        ops: &[MmuextOp],
        foreigndom: u32,
        done: &mut u32,
    ) -> XenResult<()> {
        let privileged = self.domain(caller)?.privileged;
        let fd = match foreigndom as u16 {
            x if DomId::new(x) == DomId::SELF => caller,
            x => DomId::new(x),
        };
        if fd != caller && !privileged {
            return Err(Errno::EPERM);
        }
        self.domain(fd)?;
        for op in ops {
            let mfn = Mfn::new(op.arg1);
            let r = match op.cmd {
                abimm::MMUEXT_PIN_L1_TABLE => {
                    self.mem.pin(caller, privileged, fd, mfn, PageType::L1)
                }
                abimm::MMUEXT_PIN_L2_TABLE => {
                    self.mem.pin(caller, privileged, fd, mfn, PageType::L2)
                }
                abimm::MMUEXT_PIN_L3_TABLE => {
                    self.mem.pin(caller, privileged, fd, mfn, PageType::L3)
                }
                abimm::MMUEXT_PIN_L4_TABLE => {
                    self.mem.pin(caller, privileged, fd, mfn, PageType::L4)
                }
                abimm::MMUEXT_UNPIN_TABLE => self.mem.unpin(caller, privileged, fd, mfn),
                abimm::MMUEXT_NEW_BASEPTR | abimm::MMUEXT_NEW_USER_BASEPTR => match vcpu {
                    Some(v) => {
                        self.new_baseptr(caller, v, mfn, op.cmd == abimm::MMUEXT_NEW_USER_BASEPTR)
                    }
                    None => Err(Errno::EINVAL),
                },
                abimm::MMUEXT_TLB_FLUSH_LOCAL
                | abimm::MMUEXT_TLB_FLUSH_MULTI
                | abimm::MMUEXT_TLB_FLUSH_ALL
                | abimm::MMUEXT_INVLPG_LOCAL
                | abimm::MMUEXT_INVLPG_MULTI
                | abimm::MMUEXT_INVLPG_ALL
                | abimm::MMUEXT_FLUSH_CACHE
                | abimm::MMUEXT_FLUSH_CACHE_GLOBAL => {
                    // Translations are not cached across hypercalls yet: nothing to flush.
                    if vcpu.is_some() {
                        Ok(())
                    } else {
                        Err(Errno::EINVAL)
                    }
                }
                abimm::MMUEXT_SET_LDT => match vcpu {
                    Some(v) => {
                        let (base, ents) = (op.arg1, op.arg2);
                        if base & 0xfff != 0 || ents > 8192 || !is_canonical(base) {
                            Err(Errno::EINVAL)
                        } else {
                            self.with_vcpu(caller, v, |vc| {
                                vc.pv.ldt_base = base;
                                vc.pv.ldt_ents = ents;
                                Ok(0)
                            })
                            .map(|_| ())
                        }
                    }
                    None => Err(Errno::EINVAL),
                },
                abimm::MMUEXT_CLEAR_PAGE => self.mem.clear_page(fd, mfn),
                abimm::MMUEXT_COPY_PAGE => self.mem.copy_page(fd, mfn, Mfn::new(op.arg2)),
                _ => Err(Errno::ENOSYS),
            };
            r?;
            *done += 1;
        }
        Ok(())
    }

    /// MMUEXT_NEW_BASEPTR / NEW_USER_BASEPTR: take an L4 reference on the new root,
    /// drop the one on the old root.
    fn new_baseptr(&mut self, dom: DomId, vcpu: VcpuId, mfn: Mfn, user: bool) -> XenResult<()> {
        if user && mfn.get() == 0 {
            let old = self.with_vcpu_root(dom, vcpu, true, None)?;
            if let Some(o) = old {
                self.mem.put_page_and_type(o);
            }
            return Ok(());
        }
        self.mem.get_page_and_type(mfn, dom, PageType::L4)?;
        let old = self.with_vcpu_root(dom, vcpu, user, Some(mfn))?;
        if let Some(o) = old {
            self.mem.put_page_and_type(o);
        }
        Ok(())
    }

    fn with_vcpu_root(
        &mut self,
        dom: DomId,
        vcpu: VcpuId,
        user: bool,
        new: Option<Mfn>,
    ) -> XenResult<Option<Mfn>> {
        let v = self
            .domain_mut(dom)?
            .vcpus
            .get_mut(vcpu.index())
            .ok_or(Errno::EINVAL)?;
        let slot = if user {
            &mut v.pv.user_cr3
        } else {
            &mut v.pv.cr3
        };
        Ok(std::mem::replace(slot, new))
    }

    fn update_va_mapping(
        &mut self,
        dom: DomId,
        vcpu: VcpuId,
        va: u64,
        pte: u64,
        flags: u64,
    ) -> XenResult<i64> {
        let cr3 = self.current_cr3(dom, vcpu)?;
        self.mem.update_va_mapping(dom, cr3, va, pte)?;
        // UVMF_* flush requests: nothing cached to flush; a bad vcpumask pointer in
        // the MULTI form is not dereferenced.
        let _ = flags;
        Ok(0)
    }

    fn set_segment_base(
        &mut self,
        dom: DomId,
        vcpu: VcpuId,
        which: u64,
        value: u64,
    ) -> XenResult<i64> {
        self.with_vcpu(dom, vcpu, |v| {
            match which {
                // SEGBASE_FS
                0 => {
                    if !is_canonical(value) {
                        return Err(Errno::EINVAL);
                    }
                    v.regs.fs_base = value;
                }
                // SEGBASE_GS_USER
                1 => {
                    if !is_canonical(value) {
                        return Err(Errno::EINVAL);
                    }
                    if v.pv.in_kernel {
                        v.regs.gs_base_shadow = value;
                    } else {
                        v.regs.gs_base = value;
                    }
                }
                // SEGBASE_GS_KERNEL
                2 => {
                    if !is_canonical(value) {
                        return Err(Errno::EINVAL);
                    }
                    if v.pv.in_kernel {
                        v.regs.gs_base = value;
                    } else {
                        v.regs.gs_base_shadow = value;
                    }
                }
                // SEGBASE_GS_USER_SEL
                3 => v.regs.gs = value as u16,
                _ => return Err(Errno::EINVAL),
            }
            Ok(0)
        })
    }

    fn set_trap_table(
        &mut self,
        dom: DomId,
        vcpu: VcpuId,
        io: &mut dyn ArgIo,
        table: u64,
    ) -> XenResult<i64> {
        if table == 0 {
            // NULL clears the whole table.
            return self.with_vcpu(dom, vcpu, |v| {
                for t in v.pv.trap_table.iter_mut() {
                    *t = Trap::default();
                }
                Ok(0)
            });
        }
        // The table is terminated by an entry with address 0; at most 256 entries.
        let mut entries = Vec::new();
        for i in 0..256u64 {
            let t: crate::abi::vcpu::TrapInfo = read_struct(io, self, table.wrapping_add(i * 16))?;
            if t.address == 0 {
                break;
            }
            if !is_canonical(t.address) {
                return Err(Errno::EINVAL);
            }
            entries.push(t);
        }
        self.with_vcpu(dom, vcpu, |v| {
            for t in entries {
                v.pv.trap_table[t.vector as usize] = Trap {
                    vector: t.vector,
                    flags: t.flags,
                    cs: t.cs,
                    address: t.address,
                };
            }
            Ok(0)
        })
    }

    fn callback_op(
        &mut self,
        dom: DomId,
        vcpu: VcpuId,
        io: &mut dyn ArgIo,
        cmd: u64,
        arg: u64,
    ) -> XenResult<i64> {
        let cb: hc::CallbackRegister = read_struct(io, self, arg)?;
        let addr = match cmd {
            hc::CALLBACKOP_REGISTER => cb.address,
            hc::CALLBACKOP_UNREGISTER => 0,
            _ => return Err(Errno::ENOSYS),
        };
        if !is_canonical(addr) {
            return Err(Errno::EINVAL);
        }
        let mask = cb.flags & hc::CALLBACKF_MASK_EVENTS != 0;
        self.with_vcpu(dom, vcpu, |v| {
            let bit = match u32::from(cb.type_) {
                hc::CALLBACKTYPE_EVENT => {
                    v.pv.event_callback = addr;
                    None
                }
                hc::CALLBACKTYPE_FAILSAFE => {
                    v.pv.failsafe_callback = addr;
                    Some(crate::abi::vcpu::VGCF_FAILSAFE_DISABLES_EVENTS)
                }
                hc::CALLBACKTYPE_SYSCALL => {
                    v.pv.syscall_callback = addr;
                    Some(crate::abi::vcpu::VGCF_SYSCALL_DISABLES_EVENTS)
                }
                // syscall32/sysenter/NMI are for compat guests or not modelled.
                _ => return Err(Errno::EINVAL),
            };
            if let Some(b) = bit {
                if mask && cmd == hc::CALLBACKOP_REGISTER {
                    v.pv.flags |= b;
                } else {
                    v.pv.flags &= !b;
                }
            }
            Ok(0)
        })
    }

    fn vcpu_op(
        &mut self,
        dom: DomId,
        caller_vcpu: VcpuId,
        io: &mut dyn ArgIo,
        cmd: u64,
        target: u64,
        arg: u64,
    ) -> XenResult<i64> {
        let d = self.domain(dom)?;
        let t = usize::try_from(target).map_err(|_| Errno::ENOENT)?;
        if t >= d.vcpus.len() {
            return Err(Errno::ENOENT);
        }
        let tv = VcpuId::new(t as u32);
        match cmd {
            hc::VCPUOP_INITIALISE => {
                if d.vcpus[t].initialised {
                    return Err(Errno::EEXIST);
                }
                let ctx: crate::abi::vcpu::VcpuGuestContext = read_struct(io, self, arg)?;
                self.set_vcpu_context(dom, tv.get(), &ctx).map(|()| 0)
            }
            hc::VCPUOP_UP => self.with_vcpu(dom, tv, |v| {
                if !v.initialised {
                    return Err(Errno::EINVAL);
                }
                v.up = true;
                Ok(0)
            }),
            hc::VCPUOP_DOWN => self.with_vcpu(dom, tv, |v| {
                v.up = false;
                Ok(0)
            }),
            hc::VCPUOP_IS_UP => Ok(i64::from(d.vcpus[t].up)),
            hc::VCPUOP_SET_SINGLESHOT_TIMER => {
                if tv != caller_vcpu {
                    return Err(Errno::EINVAL);
                }
                let s: hc::VcpuSetSingleshotTimer = read_struct(io, self, arg)?;
                let now = self.guest_now(dom);
                if s.flags & hc::VCPU_SSHOTTMR_FUTURE != 0 && s.timeout_abs_ns < now {
                    return Err(Errno::ETIME);
                }
                self.with_vcpu(dom, tv, |v| {
                    v.timer_deadline_ns = Some(s.timeout_abs_ns);
                    Ok(0)
                })
            }
            hc::VCPUOP_STOP_SINGLESHOT_TIMER => {
                if tv != caller_vcpu {
                    return Err(Errno::EINVAL);
                }
                self.with_vcpu(dom, tv, |v| {
                    v.timer_deadline_ns = None;
                    Ok(0)
                })
            }
            hc::VCPUOP_STOP_PERIODIC_TIMER => Ok(0),
            _ => Err(Errno::ENOSYS),
        }
    }

    fn sched_op(
        &mut self,
        dom: DomId,
        vcpu: VcpuId,
        io: &mut dyn ArgIo,
        cmd: u64,
        arg: u64,
        rdx: u64,
    ) -> HypercallOutcome {
        let r: XenResult<i64> = (|| match cmd {
            sch::SCHEDOP_YIELD => Ok(0),
            sch::SCHEDOP_BLOCK => {
                // Unmask events, and sleep only if none is pending (atomically, so no
                // wakeup is lost).
                let si = self.domain(dom)?.shared_info;
                let page = self.mem.page_mut_raw(si)?;
                let off = vcpu.index() * 64;
                if off + 1 < 2048 {
                    page[off + 1] = 0;
                }
                let pending = off < 2048 && page[off] != 0;
                if !pending {
                    self.with_vcpu(dom, vcpu, |v| {
                        v.blocked = true;
                        Ok(0)
                    })?;
                }
                Ok(0)
            }
            sch::SCHEDOP_POLL => {
                let p: sch::SchedPoll = read_struct(io, self, arg)?;
                if p.nr_ports > 128 {
                    return Err(Errno::EINVAL);
                }
                let mut ports = Vec::with_capacity(p.nr_ports as usize);
                for i in 0..u64::from(p.nr_ports) {
                    let port: u32 = read_struct(io, self, p.ports.wrapping_add(i * 4))?;
                    ports.push(Port::new(port));
                }
                for &port in &ports {
                    if self.evtchn_is_pending(dom, port) {
                        return Ok(0);
                    }
                }
                let deadline = (p.timeout != 0).then_some(p.timeout);
                self.with_vcpu(dom, vcpu, |v| {
                    v.poll = Some(crate::model::domain::PollState {
                        ports,
                        deadline_ns: deadline,
                    });
                    Ok(0)
                })
            }
            sch::SCHEDOP_SHUTDOWN => {
                let s: sch::SchedShutdown = read_struct(io, self, arg)?;
                if s.reason > sch::SHUTDOWN_SOFT_RESET {
                    return Err(Errno::EINVAL);
                }
                if s.reason == SHUTDOWN_SUSPEND {
                    // A PV guest passes its start_info MFN in rdx.
                    self.domain_mut(dom)?.suspend_start_info = Some(Mfn::new(rdx));
                }
                self.shutdown_domain(dom, s.reason);
                Ok(0)
            }
            sch::SCHEDOP_SHUTDOWN_CODE => {
                let s: sch::SchedShutdown = read_struct(io, self, arg)?;
                if s.reason > sch::SHUTDOWN_SOFT_RESET {
                    return Err(Errno::EINVAL);
                }
                self.domain_mut(dom)?.shutdown_code = Some(s.reason);
                Ok(0)
            }
            sch::SCHEDOP_REMOTE_SHUTDOWN => {
                let s: sch::SchedRemoteShutdown = read_struct(io, self, arg)?;
                if !self.domain(dom)?.privileged {
                    return Err(Errno::EPERM);
                }
                let target = DomId::new(s.domain_id);
                self.domain(target)?;
                self.shutdown_domain(target, s.reason);
                Ok(0)
            }
            _ => Err(Errno::ENOSYS),
        })();
        match (cmd, r) {
            (_, Err(e)) => HypercallOutcome::Return(e.to_ret()),
            (
                sch::SCHEDOP_YIELD | sch::SCHEDOP_BLOCK | sch::SCHEDOP_POLL | sch::SCHEDOP_SHUTDOWN,
                Ok(v),
            ) => HypercallOutcome::Preempt(v),
            (_, Ok(v)) => HypercallOutcome::Return(v),
        }
    }

    /// `memory_op(cmd, arg)` for `caller` (guest or dom0).
    pub(crate) fn memory_op_io(
        &mut self,
        caller: DomId,
        io: &mut dyn ArgIo,
        cmd: u64,
        arg: u64,
    ) -> XenResult<i64> {
        let privileged = self.domain(caller)?.privileged;
        let target = |raw: u16| -> XenResult<DomId> {
            let d = DomId::new(raw);
            if d == DomId::SELF || d == caller {
                Ok(caller)
            } else if privileged {
                Ok(d)
            } else {
                Err(Errno::EPERM)
            }
        };
        let op = cmd & xm::MEMOP_CMD_MASK;
        match op {
            xm::XENMEM_INCREASE_RESERVATION
            | xm::XENMEM_DECREASE_RESERVATION
            | xm::XENMEM_POPULATE_PHYSMAP => {
                let r: xm::MemoryReservation = read_struct(io, self, arg)?;
                let dom = target(r.domid)?;
                self.domain(dom)?;
                if r.extent_order > 0 {
                    // No superpages in the model (see mm docs).
                    return Err(Errno::EINVAL);
                }
                let mut done: u64 = 0;
                while done < r.nr_extents {
                    let n = (r.nr_extents - done).min(CHUNK as u64) as usize;
                    let mut ext = vec![0u64; n];
                    let at = r.extent_start.wrapping_add(done * 8);
                    if op != xm::XENMEM_INCREASE_RESERVATION {
                        io.read(self, at, ext.as_mut_bytes())?;
                    }
                    let k = match op {
                        xm::XENMEM_INCREASE_RESERVATION => {
                            self.mem.increase_reservation(dom, &mut ext, 0)?
                        }
                        xm::XENMEM_DECREASE_RESERVATION => {
                            self.mem.decrease_reservation(dom, &ext, 0)?
                        }
                        _ => self.mem.populate_physmap(dom, &mut ext, 0)?,
                    };
                    if op != xm::XENMEM_DECREASE_RESERVATION && k > 0 && r.extent_start != 0 {
                        io.write(self, at, ext[..k].as_bytes())?;
                    }
                    done += k as u64;
                    if k < n {
                        break;
                    }
                }
                Ok(done as i64)
            }
            xm::XENMEM_MAXIMUM_RAM_PAGE => Ok(self.mem.maximum_ram_page() as i64),
            xm::XENMEM_CURRENT_RESERVATION | xm::XENMEM_MAXIMUM_RESERVATION => {
                let d: xm::MemoryDomain = read_struct(io, self, arg)?;
                let dom = target(d.domid)?;
                self.domain(dom)?;
                Ok(if op == xm::XENMEM_CURRENT_RESERVATION {
                    self.mem.tot_pages(dom)
                } else {
                    self.mem.max_pages(dom)
                } as i64)
            }
            xm::XENMEM_MACHPHYS_MFN_LIST => {
                let mut l: xm::MachphysMfnList = read_struct(io, self, arg)?;
                let mut list = vec![
                    0u64;
                    (l.max_extents as usize)
                        .min(self.mem.nr_frames() as usize / 512 + 1)
                ];
                let n = self.mem.machphys_mfn_list(&mut list);
                io.write(self, l.extent_start, list[..n].as_bytes())?;
                l.nr_extents = n as u32;
                write_struct(io, self, arg, &l)?;
                Ok(0)
            }
            xm::XENMEM_MACHPHYS_MAPPING => {
                let m = xm::MachphysMapping {
                    v_start: abimm::MACH2PHYS_VIRT_START,
                    v_end: abimm::MACH2PHYS_VIRT_START + self.mem.nr_frames() * 8,
                    max_mfn: self.mem.nr_frames() - 1,
                };
                write_struct(io, self, arg, &m)?;
                Ok(0)
            }
            _ => Err(Errno::ENOSYS),
        }
    }

    /// `xen_version(cmd, arg)`: the model presents Xen 4.17.
    pub(crate) fn xen_version_io(
        &mut self,
        io: &mut dyn ArgIo,
        cmd: u64,
        arg: u64,
    ) -> XenResult<i64> {
        match cmd {
            ver::XENVER_VERSION => Ok(XEN_VERSION_417),
            ver::XENVER_EXTRAVERSION => {
                let mut b = [0u8; 16];
                b[..8].copy_from_slice(b".7-model");
                io.write(self, arg, &b)?;
                Ok(0)
            }
            ver::XENVER_CAPABILITIES => {
                let mut b = [0u8; 1024];
                let s = b"xen-3.0-x86_64 ";
                b[..s.len()].copy_from_slice(s);
                io.write(self, arg, &b)?;
                Ok(0)
            }
            ver::XENVER_PLATFORM_PARAMETERS => {
                write_struct(io, self, arg, &abimm::HYPERVISOR_VIRT_START)?;
                Ok(0)
            }
            ver::XENVER_GET_FEATURES => {
                let mut f: ver::XenFeatureInfo = read_struct(io, self, arg)?;
                f.submap = if f.submap_idx == 0 {
                    (1 << ver::XENFEAT_MMU_PT_UPDATE_PRESERVE_AD)
                        | (1 << ver::XENFEAT_GNTTAB_MAP_AVAIL_BITS)
                } else {
                    0
                };
                write_struct(io, self, arg, &f)?;
                Ok(0)
            }
            ver::XENVER_PAGESIZE => Ok(4096),
            _ => Err(Errno::ENOSYS),
        }
    }

    /// `event_channel_op(cmd, arg)` for `caller`.
    pub(crate) fn event_channel_op_io(
        &mut self,
        caller: DomId,
        io: &mut dyn ArgIo,
        cmd: u64,
        arg: u64,
    ) -> XenResult<i64> {
        match cmd {
            ev::EVTCHNOP_ALLOC_UNBOUND => {
                let mut a: ev::EvtchnAllocUnbound = read_struct(io, self, arg)?;
                a.port = self
                    .evtchn_alloc_unbound(caller, DomId::new(a.dom), DomId::new(a.remote_dom))?
                    .get();
                write_struct(io, self, arg, &a)?;
            }
            ev::EVTCHNOP_BIND_INTERDOMAIN => {
                let mut a: ev::EvtchnBindInterdomain = read_struct(io, self, arg)?;
                a.local_port = self
                    .evtchn_bind_interdomain(
                        caller,
                        DomId::new(a.remote_dom),
                        Port::new(a.remote_port),
                    )?
                    .get();
                write_struct(io, self, arg, &a)?;
            }
            ev::EVTCHNOP_BIND_VIRQ => {
                let mut a: ev::EvtchnBindVirq = read_struct(io, self, arg)?;
                a.port = self
                    .evtchn_bind_virq(caller, a.virq, VcpuId::new(a.vcpu))?
                    .get();
                write_struct(io, self, arg, &a)?;
            }
            ev::EVTCHNOP_BIND_IPI => {
                let mut a: ev::EvtchnBindIpi = read_struct(io, self, arg)?;
                a.port = self.evtchn_bind_ipi(caller, VcpuId::new(a.vcpu))?.get();
                write_struct(io, self, arg, &a)?;
            }
            ev::EVTCHNOP_CLOSE => {
                let a: ev::EvtchnClose = read_struct(io, self, arg)?;
                self.evtchn_close(caller, DomId::SELF, Port::new(a.port))?;
            }
            ev::EVTCHNOP_SEND => {
                let a: ev::EvtchnSend = read_struct(io, self, arg)?;
                self.evtchn_send(caller, Port::new(a.port))?;
            }
            ev::EVTCHNOP_UNMASK => {
                let a: ev::EvtchnUnmask = read_struct(io, self, arg)?;
                self.evtchn_unmask(caller, Port::new(a.port))?;
            }
            ev::EVTCHNOP_STATUS => {
                let a: ev::EvtchnStatus = read_struct(io, self, arg)?;
                let s = self.evtchn_status(caller, DomId::new(a.dom), Port::new(a.port))?;
                let out = ev::EvtchnStatus {
                    status: s.status_code(),
                    vcpu: s.vcpu.get(),
                    u: {
                        let b = s.union_bytes();
                        [
                            u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
                            u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
                        ]
                    },
                    ..a
                };
                write_struct(io, self, arg, &out)?;
            }
            ev::EVTCHNOP_BIND_VCPU => {
                let a: ev::EvtchnBindVcpu = read_struct(io, self, arg)?;
                self.evtchn_bind_vcpu(caller, Port::new(a.port), VcpuId::new(a.vcpu))?;
            }
            ev::EVTCHNOP_RESET => {
                let a: ev::EvtchnReset = read_struct(io, self, arg)?;
                self.evtchn_reset(caller, DomId::new(a.dom))?;
            }
            ev::EVTCHNOP_BIND_PIRQ
            | ev::EVTCHNOP_INIT_CONTROL
            | ev::EVTCHNOP_EXPAND_ARRAY
            | ev::EVTCHNOP_SET_PRIORITY => {
                // No physical IRQs and no FIFO ABI in the model.
                return Err(Errno::ENOSYS);
            }
            _ => return Err(Errno::ENOSYS),
        }
        Ok(0)
    }
}

/// `XENVER_version` of the model: 4.17.
pub const XEN_VERSION_417: i64 = (4 << 16) | 17;
