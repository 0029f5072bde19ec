//! `domctl` and `sysctl` as the model's Xen 4.17 decodes them from their ABI bytes.
//!
//! Each command checks the interface version (`EACCES` on mismatch, as Xen does), that
//! the caller is privileged (`EPERM`), and then acts on the typed model state.

use zerocopy::{FromBytes, FromZeros, IntoBytes};

use crate::abi::domctl::{self as dc, XenDomctl};
use crate::abi::sysctl::{self as sc, XenSysctl};
use crate::abi::vcpu::{self as vc, VcpuGuestContext};
use crate::error::{Errno, XenResult};
use crate::model::domain::{held_gdt_frames, CreateDomain, Trap, Vcpu};
use crate::model::mm::PageType;
use crate::model::Model;
use crate::types::{DomId, Mfn};

/// Xen's `FIRST_RESERVED_GDT_ENTRY` (page 14 × 512 entries).
const FIRST_RESERVED_GDT_ENTRY: u64 = 14 * 512;
/// Size of a 64-bit `vcpu_guest_context`.
const VGC_SIZE: usize = core::mem::size_of::<VcpuGuestContext>();

/// Is `va` a canonical 48-bit address?
pub(crate) fn is_canonical(va: u64) -> bool {
    let top = (va as i64) >> 47;
    top == 0 || top == -1
}

/// Xen's `SHUTDOWN_CODE_INVALID` (`~0u`): the `shutdown_code` of a domain that has
/// not shut down (nor latched a code).
pub(crate) const SHUTDOWN_CODE_INVALID: u32 = !0;

/// `PV_XSAVE_HDR_SIZE`: the `xcr0`, `xcr0_accum` pair before an XSAVE area.
const PV_XSAVE_HDR_SIZE: u64 = 16;
/// `XSTATE_AREA_MIN_SIZE`: the legacy FXSAVE region plus the XSAVE header.
const XSTATE_AREA_MIN_SIZE: u64 = 512 + 64;
/// `X86_XCR0_FP`.
const XSTATE_FP: u64 = 1;
/// The model host's `xfeature_mask`: a CPU with XSAVE for x87 and SSE state only.
/// (The lab's QEMU `-cpu max,-smap` reports 0x21f, size 2712; the model keeps the
/// smallest mask any XSAVE CPU has.)
pub(crate) const MODEL_XFEATURE_MASK: u64 = 0x3;
/// The MSRs Xen 4.17 migrates for a PV vCPU (`msrs_to_send`): SPEC_CTRL,
/// INTEL_MISC_FEATURES_ENABLES, TSC_AUX and the four AMD DR address masks.
const PV_MSRS: [u32; 7] = [
    0x0000_0048,
    0x0000_0140,
    0xc000_0103,
    0xc001_1027,
    0xc001_1019,
    0xc001_101a,
    0xc001_101b,
];
/// How many of them a NULL-handle query reports (7: the model's CPU has no DBEXT).
const PV_MSRS_TO_SEND: u32 = PV_MSRS.len() as u32;

/// `PV_XSAVE_SIZE(xfeature_mask)` on the model host: the header plus an uncompressed
/// XSAVE area of x87 and SSE state, which is the legacy region and the XSAVE header
/// (the same for every nonzero `xcr0_accum` the model accepts).
const MODEL_PV_XSAVE_SIZE: u64 = PV_XSAVE_HDR_SIZE + XSTATE_AREA_MIN_SIZE;

impl Model {
    /// Executes one `domctl` issued by `caller`.
    ///
    /// # Errors
    /// Xen's errno for the command.
    pub(crate) fn do_domctl(
        &mut self,
        caller: DomId,
        op: &mut XenDomctl,
        buf: &mut [u8],
    ) -> XenResult<i64> {
        if op.interface_version != dc::XEN_DOMCTL_INTERFACE_VERSION {
            return Err(Errno::EACCES);
        }
        if !self.domain(caller).map(|d| d.privileged).unwrap_or(false) {
            return Err(Errno::EPERM);
        }
        let dom = DomId::new(op.domain);
        match op.cmd {
            dc::XEN_DOMCTL_CREATEDOMAIN => {
                let p: dc::DomctlCreateDomain = op.payload();
                let id = self.create_domain(&CreateDomain {
                    domid: op.domain,
                    ssidref: p.ssidref,
                    handle: p.handle,
                    flags: p.flags,
                    iommu_opts: p.iommu_opts,
                    max_vcpus: p.max_vcpus,
                    max_evtchn_port: p.max_evtchn_port,
                    max_grant_frames: p.max_grant_frames,
                    max_maptrack_frames: p.max_maptrack_frames,
                    grant_opts: p.grant_opts,
                    vmtrace_size: p.vmtrace_size,
                    cpupool_id: p.cpupool_id,
                    emulation_flags: p.arch.emulation_flags,
                    misc_flags: p.arch.misc_flags,
                })?;
                op.domain = id.get();
                Ok(0)
            }
            dc::XEN_DOMCTL_DESTROYDOMAIN => self.destroy_domain(dom).map(|()| 0),
            dc::XEN_DOMCTL_PAUSEDOMAIN => self.pause_domain(dom).map(|()| 0),
            dc::XEN_DOMCTL_UNPAUSEDOMAIN => self.unpause_domain(dom).map(|()| 0),
            dc::XEN_DOMCTL_RESUMEDOMAIN => self.resume_domain(dom).map(|()| 0),
            dc::XEN_DOMCTL_GETDOMAININFO => {
                // 4.17: reserved ids are EINVAL; otherwise the first domain ≥ the id.
                if dom.is_reserved() {
                    return Err(Errno::EINVAL);
                }
                let found = self
                    .domains
                    .range(dom..)
                    .next()
                    .map(|(id, _)| *id)
                    .ok_or(Errno::ESRCH)?;
                let info = self.domain_info(found)?;
                op.domain = found.get();
                op.set_payload(&info);
                Ok(0)
            }
            dc::XEN_DOMCTL_MAX_MEM => {
                let p: dc::DomctlMaxMem = op.payload();
                self.domain(dom)?;
                // Xen keeps pages = KiB >> 2, capped at u32::MAX pages.
                let pages = (p.max_memkb >> 2).min(u64::from(u32::MAX));
                self.mem.set_max_pages(dom, pages);
                Ok(0)
            }
            dc::XEN_DOMCTL_MAX_VCPUS => {
                let p: dc::DomctlMaxVcpus = op.payload();
                self.set_max_vcpus(dom, p.max).map(|()| 0)
            }
            dc::XEN_DOMCTL_SETVCPUCONTEXT => {
                let p: dc::DomctlVcpuContext = op.payload();
                let ctx = VcpuGuestContext::read_from_prefix(buf)
                    .map_err(|_| Errno::EFAULT)?
                    .0;
                self.set_vcpu_context(dom, p.vcpu, &ctx).map(|()| 0)
            }
            dc::XEN_DOMCTL_GETVCPUCONTEXT => {
                let p: dc::DomctlVcpuContext = op.payload();
                let ctx = self.get_vcpu_context(dom, p.vcpu)?;
                let out = buf.get_mut(..VGC_SIZE).ok_or(Errno::EFAULT)?;
                out.copy_from_slice(ctx.as_bytes());
                Ok(0)
            }
            dc::XEN_DOMCTL_GETVCPUINFO => {
                let mut p: dc::DomctlGetVcpuInfo = op.payload();
                let d = self.domain(dom)?;
                if p.vcpu >= d.max_vcpus {
                    return Err(Errno::EINVAL);
                }
                let v = d.vcpus.get(p.vcpu as usize).ok_or(Errno::ESRCH)?;
                p.online = u8::from(v.up);
                p.blocked = u8::from(v.blocked || v.poll.is_some());
                p.running = u8::from(self.vcpu_runnable(dom, v.id));
                p.cpu_time = v.cpu_time_ns;
                p.cpu = 0;
                op.set_payload(&p);
                Ok(0)
            }
            dc::XEN_DOMCTL_SET_ADDRESS_SIZE => {
                let p: dc::DomctlAddressSize = op.payload();
                self.domain(dom)?;
                match p.size {
                    64 => Ok(0),
                    // 32-bit PV (compat) guests are not modelled.
                    32 => Err(Errno::EOPNOTSUPP),
                    _ => Err(Errno::EINVAL),
                }
            }
            dc::XEN_DOMCTL_GET_ADDRESS_SIZE => {
                let size = self.domain(dom)?.address_size;
                op.set_payload(&dc::DomctlAddressSize { size });
                Ok(0)
            }
            dc::XEN_DOMCTL_GETTSCINFO => {
                let t = self.domain(dom)?.tsc;
                let elapsed = (self.time.now_ns as i64).wrapping_add(t.elapsed_offset_ns) as u64;
                op.set_payload(&dc::DomctlTscInfo {
                    tsc_mode: t.mode,
                    gtsc_khz: t.khz,
                    incarnation: t.incarnation,
                    pad: 0,
                    elapsed_nsec: elapsed,
                });
                Ok(0)
            }
            dc::XEN_DOMCTL_SETTSCINFO => {
                let p: dc::DomctlTscInfo = op.payload();
                if p.tsc_mode > 3 {
                    return Err(Errno::EINVAL);
                }
                let now = self.time.now_ns as i64;
                let d = self.domain_mut(dom)?;
                d.tsc.mode = p.tsc_mode;
                d.tsc.khz = p.gtsc_khz;
                d.tsc.incarnation = p.incarnation;
                d.tsc.elapsed_offset_ns = (p.elapsed_nsec as i64).wrapping_sub(now);
                Ok(0)
            }
            dc::XEN_DOMCTL_GETPAGEFRAMEINFO3 => {
                let p: dc::DomctlGetPageFrameInfo3 = op.payload();
                self.domain(dom)?;
                if p.num > 1024 {
                    return Err(Errno::E2BIG);
                }
                let n = p.num as usize;
                let arr = buf.get_mut(..n * 8).ok_or(Errno::EFAULT)?;
                for chunk in arr.chunks_exact_mut(8) {
                    let mfn = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
                    let word = self.mem.page_type_info(dom, Mfn::new(mfn));
                    chunk.copy_from_slice(&u64::from(word).to_le_bytes());
                }
                Ok(0)
            }
            dc::XEN_DOMCTL_SHADOW_OP => {
                let mut p: dc::DomctlShadowOp = op.payload();
                let r = self.shadow_op(caller, dom, &mut p, buf)?;
                op.set_payload(&p);
                Ok(r)
            }
            dc::XEN_DOMCTL_GET_EXT_VCPUCONTEXT => {
                let p: dc::DomctlExtVcpuContext = op.payload();
                let d = self.domain(dom)?;
                let v = d.vcpus.get(p.vcpu as usize).ok_or(Errno::ESRCH)?;
                let e = v.ext;
                let out = dc::DomctlExtVcpuContext {
                    vcpu: p.vcpu,
                    size: core::mem::size_of::<dc::DomctlExtVcpuContext>() as u32,
                    syscall32_callback_eip: e.syscall32_callback_eip,
                    sysenter_callback_eip: e.sysenter_callback_eip,
                    syscall32_callback_cs: e.syscall32_callback_cs,
                    sysenter_callback_cs: e.sysenter_callback_cs,
                    syscall32_disables_events: u8::from(e.syscall32_disables_events),
                    sysenter_disables_events: u8::from(e.sysenter_disables_events),
                    ..dc::DomctlExtVcpuContext::new_zeroed()
                };
                op.set_payload(&out);
                Ok(0)
            }
            dc::XEN_DOMCTL_SET_EXT_VCPUCONTEXT => {
                let p: dc::DomctlExtVcpuContext = op.payload();
                // The vmce part is optional; anything shorter than the PV fields is bad.
                if (p.size as usize) < core::mem::offset_of!(dc::DomctlExtVcpuContext, vmce)
                    || p.size as usize > core::mem::size_of::<dc::DomctlExtVcpuContext>()
                {
                    return Err(Errno::EINVAL);
                }
                let d = self.domain_mut(dom)?;
                let v = d.vcpus.get_mut(p.vcpu as usize).ok_or(Errno::ESRCH)?;
                v.ext.syscall32_callback_eip = p.syscall32_callback_eip;
                v.ext.sysenter_callback_eip = p.sysenter_callback_eip;
                v.ext.syscall32_callback_cs = p.syscall32_callback_cs;
                v.ext.sysenter_callback_cs = p.sysenter_callback_cs;
                v.ext.syscall32_disables_events = p.syscall32_disables_events != 0;
                v.ext.sysenter_disables_events = p.sysenter_disables_events != 0;
                Ok(0)
            }
            dc::XEN_DOMCTL_GETVCPUEXTSTATE => {
                let mut p: dc::DomctlVcpuExtState = op.payload();
                let d = self.domain(dom)?;
                d.vcpus.get(p.vcpu as usize).ok_or(Errno::ESRCH)?;
                if (p.size == 0 && p.xfeature_mask == 0) || buf.is_empty() {
                    // A size query: the most this host could ever hand back.
                    p.xfeature_mask = MODEL_XFEATURE_MASK;
                    p.size = MODEL_PV_XSAVE_SIZE;
                    op.set_payload(&p);
                    return Ok(0);
                }
                // No model vCPU ever loads XCR0 (the interpreter has no XSETBV), so
                // xcr0 and xcr0_accum are 0 and only the header is handed back, as
                // real Xen 4.17 does for a PV guest that never enabled XSAVE.
                let size = PV_XSAVE_HDR_SIZE;
                if p.size < size || p.xfeature_mask != MODEL_XFEATURE_MASK {
                    return Err(Errno::EINVAL);
                }
                let out = buf.get_mut(..size as usize).ok_or(Errno::EFAULT)?;
                out.fill(0);
                p.size = size;
                op.set_payload(&p);
                Ok(0)
            }
            dc::XEN_DOMCTL_SETVCPUEXTSTATE => {
                let p: dc::DomctlVcpuExtState = op.payload();
                let d = self.domain(dom)?;
                d.vcpus.get(p.vcpu as usize).ok_or(Errno::ESRCH)?;
                if p.size < PV_XSAVE_HDR_SIZE || p.size > MODEL_PV_XSAVE_SIZE {
                    return Err(Errno::EINVAL);
                }
                let data = buf.get(..p.size as usize).ok_or(Errno::EFAULT)?;
                let xcr0 = u64::from_le_bytes(data[0..8].try_into().expect("8 bytes"));
                let accum = u64::from_le_bytes(data[8..16].try_into().expect("8 bytes"));
                if accum == 0 {
                    // Without xcr0_accum, only "no state at all" is legitimate.
                    if xcr0 != 0 || p.size != PV_XSAVE_HDR_SIZE {
                        return Err(Errno::EINVAL);
                    }
                    return Ok(0);
                }
                // Xen's validate_xstate: xcr0 ⊆ xcr0_accum ⊆ the host's features,
                // x87 always on, and enough data to be an XSAVE area.
                if p.size < PV_XSAVE_HDR_SIZE + XSTATE_AREA_MIN_SIZE
                    || xcr0 & !accum != 0
                    || accum & !MODEL_XFEATURE_MASK != 0
                    || accum & XSTATE_FP == 0
                {
                    return Err(Errno::EINVAL);
                }
                if p.size != MODEL_PV_XSAVE_SIZE {
                    return Err(Errno::EINVAL);
                }
                // State Xen would load: the model's vCPUs keep x87/SSE state in the
                // basic context's FXSAVE image only and cannot take an XSAVE area.
                Err(Errno::EOPNOTSUPP)
            }
            dc::XEN_DOMCTL_GET_VCPU_MSRS => {
                let mut p: dc::DomctlVcpuMsrs = op.payload();
                let d = self.domain(dom)?;
                d.vcpus.get(p.vcpu as usize).ok_or(Errno::ESRCH)?;
                if buf.is_empty() {
                    // A NULL handle asks for the most there could be.
                    p.msr_count = PV_MSRS_TO_SEND;
                } else {
                    // Xen sends only the MSRs whose value is nonzero; the model's
                    // vCPUs have none of them set (see XEN_DOMCTL_SET_VCPU_MSRS).
                    p.msr_count = 0;
                }
                op.set_payload(&p);
                Ok(0)
            }
            dc::XEN_DOMCTL_SET_VCPU_MSRS => {
                // (Xen also copies back how many entries it took before a failure; the
                // model, like its other domctls, leaves the struct alone on error.)
                let p: dc::DomctlVcpuMsrs = op.payload();
                let d = self.domain(dom)?;
                d.vcpus.get(p.vcpu as usize).ok_or(Errno::ESRCH)?;
                if p.msr_count > PV_MSRS_TO_SEND {
                    return Err(Errno::EINVAL);
                }
                let entry = core::mem::size_of::<dc::VcpuMsr>();
                for i in 0..p.msr_count {
                    let at = i as usize * entry;
                    let b = buf.get(at..at + entry).ok_or(Errno::EFAULT)?;
                    let index = u32::from_le_bytes(b[0..4].try_into().expect("4 bytes"));
                    let reserved = u32::from_le_bytes(b[4..8].try_into().expect("4 bytes"));
                    let value = u64::from_le_bytes(b[8..16].try_into().expect("8 bytes"));
                    // Only the MSRs Xen migrates, and (the model's CPU having none of
                    // the features behind them: no SPEC_CTRL, CPUID faulting, RDTSCP or
                    // DBEXT) only the value 0 that guest_wrmsr accepts without them.
                    if reserved != 0 || !PV_MSRS.contains(&index) || value != 0 {
                        return Err(Errno::EINVAL);
                    }
                }
                Ok(0)
            }
            dc::XEN_DOMCTL_HYPERCALL_INIT => {
                let gmfn: u64 = op.payload();
                self.hypercall_init(dom, Mfn::new(gmfn)).map(|()| 0)
            }
            _ => Err(Errno::ENOSYS),
        }
    }

    /// `XEN_DOMCTL_hypercall_init`: fills the guest's hypercall page (a frame it owns;
    /// for PV the GMFN is the MFN) with 128 stubs of 32 bytes, as Xen writes them for a
    /// 64-bit PV kernel: `push %rcx; push %r11; mov $nr,%eax; syscall; pop %r11;
    /// pop %rcx; ret`, except `iret` (23), which also pushes rax and never returns.
    pub(crate) fn hypercall_init(&mut self, dom: DomId, mfn: Mfn) -> XenResult<()> {
        self.domain(dom)?;
        if self.mem.frame(mfn).and_then(|f| f.owner) != Some(dom) {
            return Err(Errno::EINVAL);
        }
        // The page must be ordinary RAM the guest can write (Xen takes a writable type
        // reference while it fills the page).
        self.mem
            .foreign_write_check(dom, mfn)
            .map_err(|_| Errno::EINVAL)?;
        let page = hypercall_page();
        self.mem.guest_write(mfn, 0, &page)
    }

    /// `xen_domctl_getdomaininfo` for `dom`.
    pub(crate) fn domain_info(&self, dom: DomId) -> XenResult<dc::DomctlGetDomainInfo> {
        let d = self.domain(dom)?;
        let online: Vec<&Vcpu> = d.vcpus.iter().filter(|v| v.up).collect();
        let mut flags = 0u32;
        if d.dying {
            flags |= dc::XEN_DOMINF_DYING;
        }
        if d.shutdown.is_some() {
            flags |= dc::XEN_DOMINF_SHUTDOWN;
        }
        // Xen ORs in `shutdown_code << XEN_DOMINF_shutdownshift` unconditionally: the
        // reason once shut down (or latched by SCHEDOP_shutdown_code), else
        // SHUTDOWN_CODE_INVALID (~0u), whose shift leaves 0xffff0000 in the flags.
        let code = d
            .shutdown
            .or(d.shutdown_code)
            .map_or(SHUTDOWN_CODE_INVALID, |r| r & 0xff);
        flags |= code << dc::XEN_DOMINF_SHUTDOWNSHIFT;
        if d.pause_count > 0 {
            flags |= dc::XEN_DOMINF_PAUSED;
        }
        if !online.is_empty() {
            if online.iter().all(|v| v.blocked || v.poll.is_some()) {
                flags |= dc::XEN_DOMINF_BLOCKED;
            }
            if online.iter().any(|v| self.vcpu_runnable(dom, v.id)) {
                flags |= dc::XEN_DOMINF_RUNNING;
            }
        }
        Ok(dc::DomctlGetDomainInfo {
            domain: dom.get(),
            flags,
            tot_pages: self.mem.tot_pages(dom),
            max_pages: self.mem.max_pages(dom),
            shared_info_frame: d.shared_info.get(),
            cpu_time: d.vcpus.iter().map(|v| v.cpu_time_ns).sum(),
            nr_online_vcpus: online.len() as u32,
            max_vcpu_id: if d.vcpus.is_empty() {
                u32::MAX
            } else {
                d.vcpus.len() as u32 - 1
            },
            ssidref: d.ssidref,
            handle: d.handle,
            cpupool: 0,
            gpaddr_bits: 52,
            ..dc::DomctlGetDomainInfo::new_zeroed()
        })
    }

    /// `XEN_DOMCTL_getvcpucontext`: the 64-bit PV layout.
    pub(crate) fn get_vcpu_context(&self, dom: DomId, vcpu: u32) -> XenResult<VcpuGuestContext> {
        let d = self.domain(dom)?;
        let v = d.vcpus.get(vcpu as usize).ok_or(Errno::EINVAL)?;
        if !v.initialised {
            return Err(Errno::ENODATA);
        }
        let mut c = VcpuGuestContext::new_zeroed();
        c.fpu_ctxt = v.pv.fpu;
        let mut flags = v.pv.flags
            & (vc::VGCF_I387_VALID
                | vc::VGCF_FAILSAFE_DISABLES_EVENTS
                | vc::VGCF_SYSCALL_DISABLES_EVENTS);
        if v.pv.in_kernel {
            flags |= vc::VGCF_IN_KERNEL;
        }
        if v.up {
            flags |= vc::VGCF_ONLINE;
        }
        c.flags = flags;
        let r = &v.regs;
        let g = &r.gpr;
        use crate::cpu::gpr::*;
        c.user_regs = vc::CpuUserRegs {
            r15: g[R15],
            r14: g[R14],
            r13: g[R13],
            r12: g[R12],
            rbp: g[RBP],
            rbx: g[RBX],
            r11: g[R11],
            r10: g[R10],
            r9: g[R9],
            r8: g[R8],
            rax: g[RAX],
            rcx: g[RCX],
            rdx: g[RDX],
            rsi: g[RSI],
            rdi: g[RDI],
            rip: r.rip,
            cs: r.cs,
            rflags: r.rflags,
            rsp: g[RSP],
            ss: r.ss,
            es: r.es,
            ds: r.ds,
            fs: r.fs,
            gs: r.gs,
            ..vc::CpuUserRegs::new_zeroed()
        };
        for (i, t) in v.pv.trap_table.iter().enumerate() {
            c.trap_ctxt[i] = vc::TrapInfo {
                vector: t.vector,
                flags: t.flags,
                cs: t.cs,
                pad: 0,
                address: t.address,
            };
        }
        c.ldt_base = v.pv.ldt_base;
        c.ldt_ents = v.pv.ldt_ents;
        c.gdt_frames = v.pv.gdt_frames;
        c.gdt_ents = v.pv.gdt_ents;
        c.kernel_ss = v.pv.kernel_ss;
        c.kernel_sp = v.pv.kernel_sp;
        c.ctrlreg = v.pv.ctrlreg;
        c.ctrlreg[2] = v.pv.cr2;
        c.ctrlreg[3] = v.pv.cr3.map_or(0, |m| vc::xen_pfn_to_cr3(m.get()));
        c.ctrlreg[1] = v.pv.user_cr3.map_or(0, |m| vc::xen_pfn_to_cr3(m.get()));
        c.debugreg = v.pv.debugreg;
        c.event_callback_eip = v.pv.event_callback;
        c.failsafe_callback_eip = v.pv.failsafe_callback;
        c.syscall_callback_eip = v.pv.syscall_callback;
        c.vm_assist = v.pv.vm_assist;
        c.fs_base = r.fs_base;
        // Xen reports the kernel and user gs bases whichever mode the vCPU is in.
        let (kgs, ugs) = if v.pv.in_kernel {
            (r.gs_base, r.gs_base_shadow)
        } else {
            (r.gs_base_shadow, r.gs_base)
        };
        c.gs_base_kernel = kgs;
        c.gs_base_user = ugs;
        Ok(c)
    }

    /// `XEN_DOMCTL_setvcpucontext` for a 64-bit PV vCPU, validated as Xen's
    /// `arch_set_info_guest` does.
    pub(crate) fn set_vcpu_context(
        &mut self,
        dom: DomId,
        vcpu: u32,
        c: &VcpuGuestContext,
    ) -> XenResult<()> {
        let d = self.domain(dom)?;
        if d.privileged {
            return Err(Errno::EINVAL);
        }
        let v = d.vcpus.get(vcpu as usize).ok_or(Errno::EINVAL)?;
        let u = &c.user_regs;
        let addrs = [
            u.rip,
            u.rsp,
            c.kernel_sp,
            c.fs_base,
            c.gs_base_kernel,
            c.gs_base_user,
            c.event_callback_eip,
            c.syscall_callback_eip,
            c.failsafe_callback_eip,
        ];
        if !addrs.iter().all(|&a| is_canonical(a)) || (c.ldt_ents != 0 && !is_canonical(c.ldt_base))
        {
            return Err(Errno::EINVAL);
        }
        if c.trap_ctxt.iter().any(|t| !is_canonical(t.address)) {
            return Err(Errno::EINVAL);
        }
        if c.ldt_base & 0xfff != 0 || c.ldt_ents > 8192 || c.gdt_ents > FIRST_RESERVED_GDT_ENTRY {
            return Err(Errno::EINVAL);
        }
        let cr3 = Mfn::new(vc::xen_cr3_to_pfn(c.ctrlreg[3]));
        let user_cr3 = (c.ctrlreg[1] != 0).then(|| Mfn::new(vc::xen_cr3_to_pfn(c.ctrlreg[1])));
        let gdt_needed = c.gdt_ents.div_ceil(512) as usize;
        if v.initialised {
            // An initialised vCPU keeps its tables: changing them is EOPNOTSUPP.
            let same = v.pv.cr3 == Some(cr3)
                && v.pv.user_cr3 == user_cr3
                && v.pv.gdt_ents == c.gdt_ents
                && v.pv.gdt_frames[..gdt_needed] == c.gdt_frames[..gdt_needed]
                && v.pv.ldt_base == c.ldt_base
                && v.pv.ldt_ents == c.ldt_ents;
            if !same {
                return Err(Errno::EOPNOTSUPP);
            }
        } else {
            // Take the references the new context needs; undo them all on failure.
            let mut taken: Vec<Mfn> = Vec::new();
            let mut take = |m: &mut Model, mfn: Mfn, ty: PageType| -> XenResult<()> {
                m.mem.get_page_and_type(mfn, dom, ty)?;
                taken.push(mfn);
                Ok(())
            };
            let mut result = Ok(());
            for &f in &c.gdt_frames[..gdt_needed] {
                result = take(self, Mfn::new(f), PageType::SegDesc);
                if result.is_err() {
                    break;
                }
            }
            if result.is_ok() {
                result = take(self, cr3, PageType::L4);
            }
            if result.is_ok() {
                if let Some(u) = user_cr3 {
                    result = take(self, u, PageType::L4);
                }
            }
            if let Err(e) = result {
                for m in taken {
                    self.mem.put_page_and_type(m);
                }
                // Xen reports a root that cannot be validated as EINVAL.
                return Err(if e == Errno::ENOMEM { e } else { Errno::EINVAL });
            }
        }
        let d = self.domain_mut(dom)?;
        let v = &mut d.vcpus[vcpu as usize];
        use crate::cpu::gpr::*;
        let g = &mut v.regs.gpr;
        g[R15] = u.r15;
        g[R14] = u.r14;
        g[R13] = u.r13;
        g[R12] = u.r12;
        g[RBP] = u.rbp;
        g[RBX] = u.rbx;
        g[R11] = u.r11;
        g[R10] = u.r10;
        g[R9] = u.r9;
        g[R8] = u.r8;
        g[RAX] = u.rax;
        g[RCX] = u.rcx;
        g[RDX] = u.rdx;
        g[RSI] = u.rsi;
        g[RDI] = u.rdi;
        g[RSP] = u.rsp;
        v.regs.rip = u.rip;
        // The guest runs with interrupts "on" and IOPL 0; only arithmetic flags and DF
        // are its own (Xen forces IF and clears IOPL for PV).
        v.regs.rflags = (u.rflags & 0x0cd5) | 0x202;
        v.regs.cs = u.cs;
        v.regs.ss = u.ss;
        v.regs.ds = u.ds;
        v.regs.es = u.es;
        v.regs.fs = u.fs;
        v.regs.gs = u.gs;
        v.regs.fs_base = c.fs_base;
        let in_kernel = c.flags & vc::VGCF_IN_KERNEL != 0;
        v.pv.in_kernel = in_kernel;
        if in_kernel {
            v.regs.gs_base = c.gs_base_kernel;
            v.regs.gs_base_shadow = c.gs_base_user;
        } else {
            v.regs.gs_base = c.gs_base_user;
            v.regs.gs_base_shadow = c.gs_base_kernel;
        }
        v.pv.fpu = c.fpu_ctxt;
        v.pv.flags = c.flags;
        for (i, t) in c.trap_ctxt.iter().enumerate() {
            v.pv.trap_table[i] = Trap {
                vector: t.vector,
                flags: t.flags,
                cs: t.cs,
                address: t.address,
            };
        }
        v.pv.kernel_ss = c.kernel_ss;
        v.pv.kernel_sp = c.kernel_sp;
        v.pv.ctrlreg = c.ctrlreg;
        v.pv.cr2 = c.ctrlreg[2];
        v.pv.debugreg = c.debugreg;
        v.pv.event_callback = c.event_callback_eip;
        v.pv.failsafe_callback = c.failsafe_callback_eip;
        v.pv.syscall_callback = c.syscall_callback_eip;
        v.pv.vm_assist = c.vm_assist;
        if !v.initialised {
            v.pv.gdt_frames = c.gdt_frames;
            v.pv.gdt_ents = c.gdt_ents;
            v.pv.ldt_base = c.ldt_base;
            v.pv.ldt_ents = c.ldt_ents;
            v.pv.cr3 = Some(cr3);
            v.pv.user_cr3 = user_cr3;
            v.initialised = true;
        }
        v.up = c.flags & vc::VGCF_ONLINE != 0;
        Ok(())
    }

    /// The references a vCPU holds outside page tables (for the invariant checker).
    pub(crate) fn vcpu_roots(v: &Vcpu) -> Vec<(Mfn, PageType)> {
        let mut r: Vec<(Mfn, PageType)> = [v.pv.cr3, v.pv.user_cr3]
            .into_iter()
            .flatten()
            .map(|m| (m, PageType::L4))
            .collect();
        if v.initialised {
            r.extend(
                held_gdt_frames(v)
                    .into_iter()
                    .map(|m| (m, PageType::SegDesc)),
            );
        }
        r
    }

    /// `XEN_DOMCTL_shadow_op` (4.17 x86 semantics for PV log-dirty).
    fn shadow_op(
        &mut self,
        caller: DomId,
        dom: DomId,
        p: &mut dc::DomctlShadowOp,
        buf: &mut [u8],
    ) -> XenResult<i64> {
        if dom == caller {
            return Err(Errno::EINVAL);
        }
        let d = self.domain(dom)?;
        if d.dying {
            // 4.17 silently succeeds on a dying domain.
            return Ok(0);
        }
        if d.vcpus.is_empty() {
            return Err(Errno::EINVAL);
        }
        match p.op {
            dc::XEN_DOMCTL_SHADOW_OP_OFF => {
                self.mem.logdirty_disable(dom);
                Ok(0)
            }
            dc::XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY => self.mem.logdirty_enable(dom).map(|()| 0),
            dc::XEN_DOMCTL_SHADOW_OP_ENABLE => {
                if p.mode & dc::XEN_DOMCTL_SHADOW_ENABLE_LOG_DIRTY != 0 {
                    self.mem.logdirty_enable(dom).map(|()| 0)
                } else {
                    Err(Errno::EINVAL)
                }
            }
            dc::XEN_DOMCTL_SHADOW_OP_CLEAN | dc::XEN_DOMCTL_SHADOW_OP_PEEK => {
                if p.mode & !dc::XEN_DOMCTL_SHADOW_LOGDIRTY_FINAL != 0 {
                    return Err(Errno::EINVAL);
                }
                let bytes = p.pages.div_ceil(8);
                let bytes = usize::try_from(bytes).map_err(|_| Errno::EFAULT)?;
                let bitmap = buf.get_mut(..bytes).ok_or(Errno::EFAULT)?;
                let mut pages = p.pages;
                let clean = p.op == dc::XEN_DOMCTL_SHADOW_OP_CLEAN;
                let (fault, dirty) = self.mem.logdirty_read(dom, bitmap, &mut pages, clean)?;
                p.pages = pages;
                p.stats = dc::ShadowOpStats {
                    fault_count: fault,
                    dirty_count: dirty,
                };
                Ok(0)
            }
            dc::XEN_DOMCTL_SHADOW_OP_GET_ALLOCATION => {
                p.mb = 0;
                Ok(0)
            }
            dc::XEN_DOMCTL_SHADOW_OP_SET_ALLOCATION => Ok(0),
            _ => Err(Errno::EINVAL),
        }
    }

    /// Executes one `sysctl` issued by `caller`.
    ///
    /// # Errors
    /// Xen's errno for the command.
    pub(crate) fn do_sysctl(
        &mut self,
        caller: DomId,
        op: &mut XenSysctl,
        buf: &mut [u8],
    ) -> XenResult<i64> {
        if op.interface_version != sc::XEN_SYSCTL_INTERFACE_VERSION {
            return Err(Errno::EACCES);
        }
        if !self.domain(caller).map(|d| d.privileged).unwrap_or(false) {
            return Err(Errno::EPERM);
        }
        match op.cmd {
            sc::XEN_SYSCTL_GETDOMAININFOLIST => {
                let mut p: sc::SysctlGetDomainInfoList = op.payload();
                let stride = core::mem::size_of::<dc::DomctlGetDomainInfo>();
                let mut n = 0usize;
                let ids: Vec<DomId> = self
                    .domains
                    .range(DomId::new(p.first_domain)..)
                    .map(|(id, _)| *id)
                    .take(p.max_domains as usize)
                    .collect();
                for id in ids {
                    let info = self.domain_info(id)?;
                    let slot = buf
                        .get_mut(n * stride..(n + 1) * stride)
                        .ok_or(Errno::EFAULT)?;
                    slot.copy_from_slice(info.as_bytes());
                    n += 1;
                }
                p.num_domains = n as u32;
                op.set_payload(&p);
                Ok(0)
            }
            sc::XEN_SYSCTL_PHYSINFO => {
                let p = sc::SysctlPhysinfo {
                    threads_per_core: 1,
                    cores_per_socket: 1,
                    nr_cpus: 1,
                    max_cpu_id: 0,
                    nr_nodes: 1,
                    max_node_id: 0,
                    cpu_khz: super::time::TSC_KHZ,
                    capabilities: sc::XEN_SYSCTL_PHYSCAP_PV,
                    total_pages: self.mem.nr_frames(),
                    free_pages: self.mem.free_frames(),
                    max_mfn: self.mem.nr_frames() - 1,
                    ..sc::SysctlPhysinfo::new_zeroed()
                };
                op.set_payload(&p);
                Ok(0)
            }
            _ => Err(Errno::ENOSYS),
        }
    }
}

/// The contents of a 64-bit PV hypercall page (see [`Model::hypercall_init`]).
#[must_use]
pub fn hypercall_page() -> [u8; 4096] {
    let mut page = [0u8; 4096];
    for nr in 0..128u32 {
        let s = &mut page[nr as usize * 32..nr as usize * 32 + 32];
        let mut code: Vec<u8> = vec![0x51, 0x41, 0x53]; // push %rcx; push %r11
        if u64::from(nr) == crate::abi::hypercall::HYPERVISOR_IRET {
            code.push(0x50); // push %rax
        }
        code.push(0xb8); // mov $nr, %eax
        code.extend_from_slice(&nr.to_le_bytes());
        code.extend_from_slice(&[0x0f, 0x05]); // syscall
        if u64::from(nr) != crate::abi::hypercall::HYPERVISOR_IRET {
            code.extend_from_slice(&[0x41, 0x5b, 0x59, 0xc3]); // pop %r11; pop %rcx; ret
        }
        s[..code.len()].copy_from_slice(&code);
        // Pad with int3 so a stray jump into the gap traps.
        for b in &mut s[code.len()..] {
            *b = 0xcc;
        }
    }
    page
}
