//! What the harness observes of a host through the [`Xen`] trait: the domain list, free
//! memory, a domain's memory by PFN (as digests), its event channels.

use std::collections::BTreeMap;

use hypervisor::abi::shared::SharedInfo;
use hypervisor::abi::sysctl::{self as sc, SysctlGetDomainInfoList, SysctlPhysinfo, XenSysctl};
use hypervisor::model::Model;
use hypervisor::record::fnv1a;
use hypervisor::types::PAGE_SIZE;
use hypervisor::{DomId, Mfn, Xen, XenError};
use toolstack::save::xc;
use zerocopy::{FromBytes, IntoBytes};

/// Stride of `xen_domctl_getdomaininfo` in a getdomaininfolist buffer.
const DOMINFO_SIZE: usize = 112;

/// The ids of every domain on the host (dom0 included), ascending.
///
/// # Errors
/// The sysctl's error.
pub fn domains<X: Xen + ?Sized>(x: &mut X) -> Result<Vec<u16>, XenError> {
    let mut s = XenSysctl::new(sc::XEN_SYSCTL_GETDOMAININFOLIST);
    s.set_payload(&SysctlGetDomainInfoList {
        first_domain: 0,
        max_domains: 256,
        ..Default::default()
    });
    let mut buf = vec![0u8; 256 * DOMINFO_SIZE];
    x.sysctl(&mut s, &mut buf)?;
    let p: SysctlGetDomainInfoList = s.payload();
    Ok((0..p.num_domains as usize)
        .map(|i| u16::from_le_bytes([buf[i * DOMINFO_SIZE], buf[i * DOMINFO_SIZE + 1]]))
        .collect())
}

/// Free machine frames.
///
/// # Errors
/// The sysctl's error.
pub fn free_pages<X: Xen + ?Sized>(x: &mut X) -> Result<u64, XenError> {
    let mut s = XenSysctl::new(sc::XEN_SYSCTL_PHYSINFO);
    x.sysctl(&mut s, &mut [])?;
    let p: SysctlPhysinfo = s.payload();
    Ok(p.free_pages)
}

/// Every page of `dom` by PFN (`p2m[pfn]`; invalid entries skipped), as FNV-1a digests.
/// A page that cannot be read has digest 0 (and a real page digesting to 0 is
/// vanishingly unlikely).
///
/// # Errors
/// A failure of the read as a whole.
pub fn memory_digests<X: Xen + ?Sized>(
    x: &mut X,
    dom: DomId,
    p2m: &[Mfn],
) -> Result<BTreeMap<u64, u64>, XenError> {
    Ok(memory_pages(x, dom, p2m)?
        .into_iter()
        .map(|(pfn, page)| (pfn, page.map_or(0, |p| fnv1a(&p))))
        .collect())
}

/// Every page of `dom` by PFN (`None`: Xen refused to map it).
///
/// # Errors
/// A failure of the read as a whole.
pub fn memory_pages<X: Xen + ?Sized>(
    x: &mut X,
    dom: DomId,
    p2m: &[Mfn],
) -> Result<BTreeMap<u64, Option<Vec<u8>>>, XenError> {
    let present: Vec<(u64, Mfn)> = p2m
        .iter()
        .enumerate()
        .filter(|(_, m)| **m != Mfn::INVALID)
        .map(|(p, m)| (p as u64, *m))
        .collect();
    let mut out = BTreeMap::new();
    for chunk in present.chunks(256) {
        let mfns: Vec<Mfn> = chunk.iter().map(|(_, m)| *m).collect();
        let mut buf = vec![0u8; mfns.len() * PAGE_SIZE];
        let mut errs = vec![0i32; mfns.len()];
        x.foreign_read(dom, &mfns, &mut buf, &mut errs)?;
        for (i, (pfn, _)) in chunk.iter().enumerate() {
            let page = (errs[i] == 0).then(|| buf[i * PAGE_SIZE..(i + 1) * PAGE_SIZE].to_vec());
            out.insert(*pfn, page);
        }
    }
    Ok(out)
}

/// `dom`'s event channels: every port and its state as the model holds them (in port
/// order), and the digests of shared_info's `evtchn_mask` and `evtchn_pending` arrays
/// (the pending bits of a domain's own timer move while it is paused; the masks and
/// the ports do not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventChannels {
    /// `port: state`.
    pub ports: Vec<String>,
    /// FNV-1a of `evtchn_mask` (0 if shared_info is unreadable).
    pub mask: u64,
    /// FNV-1a of `evtchn_pending` (0 if shared_info is unreadable).
    pub pending: u64,
}

/// See [`EventChannels`].
#[must_use]
pub fn event_channels(m: &mut Model, dom: DomId) -> EventChannels {
    let ports = m
        .evtchn_ports(dom)
        .into_iter()
        .map(|(p, s)| format!("{}: {s:?}", p.get()))
        .collect();
    let page = xc::domain_info(m, dom)
        .ok()
        .and_then(|i| xc::read_frames(m, dom, &[Mfn::new(i.shared_info_frame)]).ok())
        .and_then(Result::ok);
    let (mask, pending) = page
        .and_then(|p| SharedInfo::read_from_prefix(&p[..]).ok().map(|(s, _)| s))
        .map_or((0, 0), |s| {
            (
                fnv1a(s.evtchn_mask.as_bytes()),
                fnv1a(s.evtchn_pending.as_bytes()),
            )
        });
    EventChannels {
        ports,
        mask,
        pending,
    }
}
