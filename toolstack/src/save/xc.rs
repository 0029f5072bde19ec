//! Thin libxc-style wrappers over the [`Xen`] trait used by save, restore and suspend.
//!
//! Each function issues exactly the hypercall its name says, with the guest handle
//! passed as the trait's `buf`, and returns Xen's error unchanged.

use hypervisor::abi::domctl::{
    self as dc, DomctlCreateDomain, DomctlExtVcpuContext, DomctlGetDomainInfo,
    DomctlGetPageFrameInfo3, DomctlGetVcpuInfo, DomctlMaxMem, DomctlMaxVcpus, DomctlTscInfo,
    DomctlVcpuContext, DomctlVcpuExtState, DomctlVcpuMsrs, VcpuMsr, XenDomctl,
};
use hypervisor::abi::evtchn::{EvtchnAllocUnbound, EVTCHNOP_ALLOC_UNBOUND};
use hypervisor::abi::memory::{MemoryReservation, XENMEM_POPULATE_PHYSMAP};
use hypervisor::abi::mm::MmuextOp;
use hypervisor::abi::vcpu::VcpuGuestContext;
use hypervisor::types::PAGE_SIZE;
use hypervisor::{DomId, Errno, Mfn, Port, Xen, XenError};
use zerocopy::{FromBytes, FromZeros, IntoBytes};

/// Most frames per getpageframeinfo3 call (Xen's limit).
pub const PFINFO_BATCH: usize = 1024;
/// Attempts at destroydomain while Xen answers `EAGAIN`.
const DESTROY_ATTEMPTS: usize = 64;

fn domctl0<X: Xen + ?Sized>(x: &mut X, cmd: u32, dom: DomId) -> Result<XenDomctl, XenError> {
    let mut d = XenDomctl::new(cmd, dom.get());
    x.domctl(&mut d, &mut [])?;
    Ok(d)
}

/// `XEN_DOMCTL_getdomaininfo` for exactly `dom` (`ESRCH` if Xen describes another).
///
/// # Errors
/// Xen's errno.
pub fn domain_info<X: Xen + ?Sized>(
    x: &mut X,
    dom: DomId,
) -> Result<DomctlGetDomainInfo, XenError> {
    let d = domctl0(x, dc::XEN_DOMCTL_GETDOMAININFO, dom)?;
    if d.domain != dom.get() {
        return Err(XenError::xen("domctl getdomaininfo", Errno::ESRCH));
    }
    Ok(d.payload())
}

/// `XEN_DOMCTL_pausedomain`.
///
/// # Errors
/// Xen's errno.
pub fn pause<X: Xen + ?Sized>(x: &mut X, dom: DomId) -> Result<(), XenError> {
    domctl0(x, dc::XEN_DOMCTL_PAUSEDOMAIN, dom).map(|_| ())
}

/// `XEN_DOMCTL_unpausedomain`.
///
/// # Errors
/// Xen's errno.
pub fn unpause<X: Xen + ?Sized>(x: &mut X, dom: DomId) -> Result<(), XenError> {
    domctl0(x, dc::XEN_DOMCTL_UNPAUSEDOMAIN, dom).map(|_| ())
}

/// `XEN_DOMCTL_resumedomain`.
///
/// # Errors
/// Xen's errno.
pub fn resume_domain<X: Xen + ?Sized>(x: &mut X, dom: DomId) -> Result<(), XenError> {
    domctl0(x, dc::XEN_DOMCTL_RESUMEDOMAIN, dom).map(|_| ())
}

/// Destroys `dom` as libxl does: xenstored releases it, `XEN_DOMCTL_destroydomain`
/// (retried while Xen answers `EAGAIN`), then its xenstore home goes.
///
/// # Errors
/// Xen's errno from destroydomain.
pub fn destroy<X: Xen + ?Sized>(x: &mut X, dom: DomId) -> Result<(), XenError> {
    let _ = x.xs_release(dom);
    let mut last = Ok(());
    for _ in 0..DESTROY_ATTEMPTS {
        last = domctl0(x, dc::XEN_DOMCTL_DESTROYDOMAIN, dom).map(|_| ());
        match &last {
            Err(e) if e.errno() == Some(Errno::EAGAIN) => continue,
            _ => break,
        }
    }
    let _ = x.xs_rm(
        hypervisor::XS_NO_TX,
        &format!("/local/domain/{}", dom.get()),
    );
    last
}

/// `XEN_DOMCTL_createdomain` for a PV guest (id chosen by Xen).
///
/// # Errors
/// Xen's errno.
pub fn create_domain<X: Xen + ?Sized>(
    x: &mut X,
    handle: [u8; 16],
    max_vcpus: u32,
) -> Result<DomId, XenError> {
    let mut d = XenDomctl::new(dc::XEN_DOMCTL_CREATEDOMAIN, crate::build::DOMID_ANY);
    d.set_payload(&DomctlCreateDomain {
        handle,
        max_vcpus,
        max_evtchn_port: 1023,
        max_grant_frames: 32,
        max_maptrack_frames: 1024,
        grant_opts: dc::xen_domctl_grant_version(2),
        ..DomctlCreateDomain::default()
    });
    x.domctl(&mut d, &mut [])?;
    Ok(DomId::new(d.domain))
}

/// `XEN_DOMCTL_max_vcpus`.
///
/// # Errors
/// Xen's errno.
pub fn max_vcpus<X: Xen + ?Sized>(x: &mut X, dom: DomId, max: u32) -> Result<(), XenError> {
    let mut d = XenDomctl::new(dc::XEN_DOMCTL_MAX_VCPUS, dom.get());
    d.set_payload(&DomctlMaxVcpus { max });
    x.domctl(&mut d, &mut []).map(|_| ())
}

/// `XEN_DOMCTL_max_mem`.
///
/// # Errors
/// Xen's errno.
pub fn max_mem<X: Xen + ?Sized>(x: &mut X, dom: DomId, max_memkb: u64) -> Result<(), XenError> {
    let mut d = XenDomctl::new(dc::XEN_DOMCTL_MAX_MEM, dom.get());
    d.set_payload(&DomctlMaxMem { max_memkb });
    x.domctl(&mut d, &mut []).map(|_| ())
}

/// `XEN_DOMCTL_getvcpucontext`.
///
/// # Errors
/// Xen's errno.
pub fn get_vcpu_context<X: Xen + ?Sized>(
    x: &mut X,
    dom: DomId,
    vcpu: u32,
) -> Result<VcpuGuestContext, XenError> {
    let mut d = XenDomctl::new(dc::XEN_DOMCTL_GETVCPUCONTEXT, dom.get());
    d.set_payload(&DomctlVcpuContext {
        vcpu,
        pad: 0,
        ctxt: 0,
    });
    let mut ctx = VcpuGuestContext::new_zeroed();
    x.domctl(&mut d, ctx.as_mut_bytes())?;
    Ok(ctx)
}

/// `XEN_DOMCTL_setvcpucontext`.
///
/// # Errors
/// Xen's errno.
pub fn set_vcpu_context<X: Xen + ?Sized>(
    x: &mut X,
    dom: DomId,
    vcpu: u32,
    ctx: &VcpuGuestContext,
) -> Result<(), XenError> {
    let mut d = XenDomctl::new(dc::XEN_DOMCTL_SETVCPUCONTEXT, dom.get());
    d.set_payload(&DomctlVcpuContext {
        vcpu,
        pad: 0,
        ctxt: 0,
    });
    let mut copy = *ctx;
    x.domctl(&mut d, copy.as_mut_bytes()).map(|_| ())
}

/// `XEN_DOMCTL_getvcpuinfo`: whether the vCPU is online.
///
/// # Errors
/// Xen's errno.
pub fn vcpu_online<X: Xen + ?Sized>(x: &mut X, dom: DomId, vcpu: u32) -> Result<bool, XenError> {
    let mut d = XenDomctl::new(dc::XEN_DOMCTL_GETVCPUINFO, dom.get());
    d.set_payload(&DomctlGetVcpuInfo {
        vcpu,
        ..DomctlGetVcpuInfo::default()
    });
    x.domctl(&mut d, &mut [])?;
    let p: DomctlGetVcpuInfo = d.payload();
    Ok(p.online != 0)
}

/// `XEN_DOMCTL_get_ext_vcpucontext`: the payload bytes Xen reports valid (`size`).
///
/// # Errors
/// Xen's errno.
pub fn get_ext_vcpu_context<X: Xen + ?Sized>(
    x: &mut X,
    dom: DomId,
    vcpu: u32,
) -> Result<Vec<u8>, XenError> {
    let mut d = XenDomctl::new(dc::XEN_DOMCTL_GET_EXT_VCPUCONTEXT, dom.get());
    d.set_payload(&DomctlExtVcpuContext {
        vcpu,
        ..DomctlExtVcpuContext::new_zeroed()
    });
    x.domctl(&mut d, &mut [])?;
    let p: DomctlExtVcpuContext = d.payload();
    let size = (p.size as usize).min(dc::PAYLOAD_BYTES);
    Ok(d.u.as_bytes()[..size].to_vec())
}

/// `XEN_DOMCTL_set_ext_vcpucontext` with the blob as saved (it carries its own vcpu
/// and size fields, which Xen checks).
///
/// # Errors
/// Xen's errno.
pub fn set_ext_vcpu_context<X: Xen + ?Sized>(
    x: &mut X,
    dom: DomId,
    blob: &[u8],
) -> Result<(), XenError> {
    let mut d = XenDomctl::new(dc::XEN_DOMCTL_SET_EXT_VCPUCONTEXT, dom.get());
    let n = blob.len().min(dc::PAYLOAD_BYTES);
    d.u.as_mut_bytes()[..n].copy_from_slice(&blob[..n]);
    x.domctl(&mut d, &mut []).map(|_| ())
}

/// `XEN_DOMCTL_getvcpuextstate`: `u64 xcr0, u64 xcr0_accum, area`, or empty when
/// the vCPU has no extended state (size 0).
///
/// # Errors
/// Xen's errno.
pub fn get_vcpu_xsave<X: Xen + ?Sized>(
    x: &mut X,
    dom: DomId,
    vcpu: u32,
) -> Result<Vec<u8>, XenError> {
    let mut d = XenDomctl::new(dc::XEN_DOMCTL_GETVCPUEXTSTATE, dom.get());
    d.set_payload(&DomctlVcpuExtState {
        vcpu,
        ..DomctlVcpuExtState::default()
    });
    x.domctl(&mut d, &mut [])?;
    let q: DomctlVcpuExtState = d.payload();
    if q.size == 0 {
        return Ok(Vec::new());
    }
    let size = usize::try_from(q.size).unwrap_or(usize::MAX).min(1 << 20);
    let mut buf = vec![0u8; size];
    let mut d = XenDomctl::new(dc::XEN_DOMCTL_GETVCPUEXTSTATE, dom.get());
    d.set_payload(&DomctlVcpuExtState {
        vcpu,
        xfeature_mask: q.xfeature_mask,
        size: size as u64,
        ..DomctlVcpuExtState::default()
    });
    x.domctl(&mut d, &mut buf)?;
    let out: DomctlVcpuExtState = d.payload();
    buf.truncate(usize::try_from(out.size).unwrap_or(0).min(size));
    if buf.len() < 16 {
        return Ok(Vec::new());
    }
    Ok(buf)
}

/// `XEN_DOMCTL_setvcpuextstate` with a saved X86_PV_VCPU_XSAVE blob (`u64 xcr0,
/// u64 xcr0_accum, area`) as the buffer, as libxc's restore does (Xen reads the two
/// masks from the buffer itself).
///
/// # Errors
/// Xen's errno.
pub fn set_vcpu_xsave<X: Xen + ?Sized>(
    x: &mut X,
    dom: DomId,
    vcpu: u32,
    blob: &[u8],
) -> Result<(), XenError> {
    let mut d = XenDomctl::new(dc::XEN_DOMCTL_SETVCPUEXTSTATE, dom.get());
    d.set_payload(&DomctlVcpuExtState {
        vcpu,
        size: blob.len() as u64,
        ..DomctlVcpuExtState::default()
    });
    let mut buf = blob.to_vec();
    x.domctl(&mut d, &mut buf).map(|_| ())
}

/// `XEN_DOMCTL_set_vcpu_msrs` with `msrs`.
///
/// # Errors
/// Xen's errno.
pub fn set_vcpu_msrs<X: Xen + ?Sized>(
    x: &mut X,
    dom: DomId,
    vcpu: u32,
    msrs: &[VcpuMsr],
) -> Result<(), XenError> {
    let mut d = XenDomctl::new(dc::XEN_DOMCTL_SET_VCPU_MSRS, dom.get());
    d.set_payload(&DomctlVcpuMsrs {
        vcpu,
        msr_count: u32::try_from(msrs.len()).unwrap_or(u32::MAX),
        msrs: 0,
    });
    let mut buf = msrs.to_vec();
    x.domctl(&mut d, buf.as_mut_bytes()).map(|_| ())
}

/// `XEN_DOMCTL_get_vcpu_msrs`; a Xen without the call (`ENOSYS`/`EOPNOTSUPP`) has none.
///
/// # Errors
/// Xen's errno.
pub fn get_vcpu_msrs<X: Xen + ?Sized>(
    x: &mut X,
    dom: DomId,
    vcpu: u32,
) -> Result<Vec<VcpuMsr>, XenError> {
    let mut d = XenDomctl::new(dc::XEN_DOMCTL_GET_VCPU_MSRS, dom.get());
    d.set_payload(&DomctlVcpuMsrs {
        vcpu,
        msr_count: 0,
        msrs: 0,
    });
    match x.domctl(&mut d, &mut []) {
        Ok(_) => {}
        Err(e) if matches!(e.errno(), Some(Errno::ENOSYS | Errno::EOPNOTSUPP)) => {
            return Ok(Vec::new())
        }
        Err(e) => return Err(e),
    }
    let q: DomctlVcpuMsrs = d.payload();
    let n = (q.msr_count as usize).min(4096);
    if n == 0 {
        return Ok(Vec::new());
    }
    let mut msrs = vec![VcpuMsr::default(); n];
    let mut d = XenDomctl::new(dc::XEN_DOMCTL_GET_VCPU_MSRS, dom.get());
    d.set_payload(&DomctlVcpuMsrs {
        vcpu,
        msr_count: n as u32,
        msrs: 0,
    });
    x.domctl(&mut d, msrs.as_mut_bytes())?;
    let out: DomctlVcpuMsrs = d.payload();
    msrs.truncate((out.msr_count as usize).min(n));
    Ok(msrs)
}

/// `XEN_DOMCTL_gettscinfo`.
///
/// # Errors
/// Xen's errno.
pub fn get_tsc_info<X: Xen + ?Sized>(x: &mut X, dom: DomId) -> Result<DomctlTscInfo, XenError> {
    Ok(domctl0(x, dc::XEN_DOMCTL_GETTSCINFO, dom)?.payload())
}

/// `XEN_DOMCTL_settscinfo`.
///
/// # Errors
/// Xen's errno.
pub fn set_tsc_info<X: Xen + ?Sized>(
    x: &mut X,
    dom: DomId,
    info: &DomctlTscInfo,
) -> Result<(), XenError> {
    let mut d = XenDomctl::new(dc::XEN_DOMCTL_SETTSCINFO, dom.get());
    d.set_payload(info);
    x.domctl(&mut d, &mut []).map(|_| ())
}

/// `XEN_DOMCTL_getpageframeinfo3` over `mfns` (any length; batches of 1024): the
/// `XEN_DOMCTL_PFINFO_*` word of each frame.
///
/// # Errors
/// Xen's errno.
pub fn page_types<X: Xen + ?Sized>(
    x: &mut X,
    dom: DomId,
    mfns: &[Mfn],
) -> Result<Vec<u32>, XenError> {
    let mut out = Vec::with_capacity(mfns.len());
    page_types_into(x, dom, mfns, &mut out)?;
    Ok(out)
}

/// [`page_types`] into `out` (cleared first), reusing its allocation.
///
/// # Errors
/// Xen's errno.
pub fn page_types_into<X: Xen + ?Sized>(
    x: &mut X,
    dom: DomId,
    mfns: &[Mfn],
    out: &mut Vec<u32>,
) -> Result<(), XenError> {
    out.clear();
    let mut arr = [0u64; PFINFO_BATCH];
    for chunk in mfns.chunks(PFINFO_BATCH) {
        let arr = &mut arr[..chunk.len()];
        for (a, m) in arr.iter_mut().zip(chunk) {
            *a = m.get();
        }
        let mut d = XenDomctl::new(dc::XEN_DOMCTL_GETPAGEFRAMEINFO3, dom.get());
        d.set_payload(&DomctlGetPageFrameInfo3 {
            num: arr.len() as u64,
            array: 0,
        });
        x.domctl(&mut d, arr.as_mut_bytes())?;
        out.extend(arr.iter().map(|&w| w as u32));
    }
    Ok(())
}

/// `XENMEM_populate_physmap` of `pfns` (order 0) in `dom`: the new MFNs, as many as
/// Xen allocated (fewer than asked means it ran out or hit `max_mem`).
///
/// # Errors
/// Xen's errno.
pub fn populate<X: Xen + ?Sized>(
    x: &mut X,
    dom: DomId,
    pfns: &[u64],
) -> Result<Vec<Mfn>, XenError> {
    let mut extents = pfns.to_vec();
    let mut res = MemoryReservation {
        extent_start: 0,
        nr_extents: extents.len() as u64,
        extent_order: 0,
        mem_flags: 0,
        domid: dom.get(),
        pad: [0; 6],
    };
    let done = x.memory_op(
        XENMEM_POPULATE_PHYSMAP as u32,
        res.as_mut_bytes(),
        extents.as_mut_bytes(),
    )?;
    let done = usize::try_from(done).unwrap_or(0).min(extents.len());
    Ok(extents[..done].iter().map(|&m| Mfn::new(m)).collect())
}

/// `EVTCHNOP_alloc_unbound`: a port in `dom` that `remote` may bind.
///
/// # Errors
/// Xen's errno.
pub fn alloc_unbound<X: Xen + ?Sized>(
    x: &mut X,
    dom: DomId,
    remote: DomId,
) -> Result<Port, XenError> {
    let mut op = EvtchnAllocUnbound {
        dom: dom.get(),
        remote_dom: remote.get(),
        port: 0,
    };
    x.event_channel_op(EVTCHNOP_ALLOC_UNBOUND as u32, op.as_mut_bytes())?;
    Ok(Port::new(op.port))
}

/// `mmuext_op` of `ops` on behalf of `dom`.
///
/// # Errors
/// Xen's errno for the first failing op.
pub fn mmuext<X: Xen + ?Sized>(x: &mut X, dom: DomId, ops: &[MmuextOp]) -> Result<(), XenError> {
    let mut done = 0u32;
    x.mmuext_op(ops, &mut done, u32::from(dom.get()))
        .map(|_| ())
}

/// Reads frames `mfns` of `dom` into whole pages; the per-page errno of the first page
/// that failed comes back as `Err((index, errno))`.
///
/// # Errors
/// The device error, or the first failing page.
pub fn read_frames<X: Xen + ?Sized>(
    x: &mut X,
    dom: DomId,
    mfns: &[Mfn],
) -> Result<Result<Vec<u8>, (usize, Errno)>, XenError> {
    let mut buf = vec![0u8; mfns.len() * PAGE_SIZE];
    let mut errs = vec![0i32; mfns.len()];
    x.foreign_read(dom, mfns, &mut buf, &mut errs)?;
    if let Some(i) = errs.iter().position(|&e| e != 0) {
        return Ok(Err((i, Errno(-errs[i]))));
    }
    Ok(Ok(buf))
}

/// [`read_frames`] into `buf` and `errs` (resized to fit, their allocations reused).
///
/// # Errors
/// The device error, or the first failing page.
pub fn read_frames_into<X: Xen + ?Sized>(
    x: &mut X,
    dom: DomId,
    mfns: &[Mfn],
    buf: &mut Vec<u8>,
    errs: &mut Vec<i32>,
) -> Result<Result<(), (usize, Errno)>, XenError> {
    // Only growth is zeroed; the backend overwrites every byte it is given.
    buf.resize(mfns.len() * PAGE_SIZE, 0);
    errs.clear();
    errs.resize(mfns.len(), 0);
    x.foreign_read(dom, mfns, buf, errs)?;
    if let Some(i) = errs.iter().position(|&e| e != 0) {
        return Ok(Err((i, Errno(-errs[i]))));
    }
    Ok(Ok(()))
}

/// Writes whole pages to frames `mfns` of `dom`; the first failing page as for
/// [`read_frames`].
///
/// # Errors
/// The device error, or the first failing page.
pub fn write_frames<X: Xen + ?Sized>(
    x: &mut X,
    dom: DomId,
    mfns: &[Mfn],
    data: &[u8],
) -> Result<Result<(), (usize, Errno)>, XenError> {
    let mut errs = vec![0i32; mfns.len()];
    x.foreign_write(dom, mfns, data, &mut errs)?;
    if let Some(i) = errs.iter().position(|&e| e != 0) {
        return Ok(Err((i, Errno(-errs[i]))));
    }
    Ok(Ok(()))
}

/// Reads a little-endian `u64` at `off` of `bytes` (0 past the end).
#[must_use]
pub fn le64(bytes: &[u8], off: usize) -> u64 {
    bytes
        .get(off..off + 8)
        .and_then(|b| <[u8; 8]>::read_from_bytes(b).ok())
        .map_or(0, u64::from_le_bytes)
}
