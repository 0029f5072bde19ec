//! What `xi` asks of a host about its domains: the `xl list` rows, names and ids, the
//! recorded configuration of a domain, its console ring.
//!
//! # Where xi keeps a domain's configuration
//!
//! `xi create` and `xi restore` write the domain's [`DomainConfig`] as JSON to the
//! xenstore node [`config_node`] = `/libxl/<domid>/xi-config`, owned by dom0 with no
//! access for anyone else (permissions `n0`): the guest cannot read or change it. It is
//! a dom0-only subtree that exists on a real Xen host too (libxl keeps per-domain
//! toolstack state under `/libxl/<domid>`). `xi save` reads it when no config file is
//! given, and `xi destroy` (or a save that destroys the domain) removes it. Names are
//! where `xl` keeps them: `/local/domain/<id>/name`.

use anyhow::{anyhow, bail, Context, Result};
use hypervisor::abi::console::{mask_xencons_out, XENCONS_OUT, XENCONS_OUT_PROD, XENCONS_OUT_SIZE};
use hypervisor::abi::domctl::{self as dc};
use hypervisor::abi::sysctl::{self as sc, XenSysctl};
use hypervisor::types::PAGE_SIZE;
use hypervisor::{DomId, Mfn, Xen, XsAccess, XsPerm, XS_NO_TX};
use zerocopy::FromBytes;

use crate::config::DomainConfig;
use crate::save::xc;

/// The name `xl list` shows for domain 0.
pub const DOM0_NAME: &str = "Domain-0";

/// One row of `xi list` (the columns of `xl list`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainRow {
    /// Name (xenstore `name`; `Domain-0` for dom0).
    pub name: String,
    /// Domain id.
    pub id: u16,
    /// Memory in MiB (`tot_pages`).
    pub mem_mib: u64,
    /// Online vCPUs.
    pub vcpus: u32,
    /// `rbpscd` as `xl list` prints it, `-` for each flag not set.
    pub state: String,
    /// CPU time in ns.
    pub cpu_time_ns: u64,
}

/// Every domain's `getdomaininfo`, by id.
///
/// # Errors
/// The sysctl's error.
pub fn domain_infos(x: &mut dyn Xen) -> Result<Vec<dc::DomctlGetDomainInfo>> {
    const BATCH: u32 = 256;
    let stride = std::mem::size_of::<dc::DomctlGetDomainInfo>();
    let mut out = Vec::new();
    let mut first = 0u16;
    loop {
        let mut buf = vec![0u8; BATCH as usize * stride];
        let mut s = XenSysctl::new(sc::XEN_SYSCTL_GETDOMAININFOLIST);
        s.set_payload(&sc::SysctlGetDomainInfoList {
            first_domain: first,
            max_domains: BATCH,
            ..Default::default()
        });
        x.sysctl(&mut s, &mut buf).context("list domains")?;
        let n = s.payload::<sc::SysctlGetDomainInfoList>().num_domains as usize;
        for chunk in buf.chunks_exact(stride).take(n) {
            let info = dc::DomctlGetDomainInfo::read_from_bytes(chunk)
                .map_err(|_| anyhow!("short domain info from the hypervisor"))?;
            out.push(info);
        }
        match out.last() {
            Some(last) if n == BATCH as usize && last.domain < u16::MAX => {
                first = last.domain + 1;
            }
            _ => return Ok(out),
        }
    }
}

/// The `xl list` state string of a domain's flags.
#[must_use]
pub fn state_string(flags: u32) -> String {
    let st = |bit: u32, c: char| if flags & bit != 0 { c } else { '-' };
    let shutdown = flags & dc::XEN_DOMINF_SHUTDOWN != 0;
    let reason = (flags >> dc::XEN_DOMINF_SHUTDOWNSHIFT) & 0xff;
    [
        st(dc::XEN_DOMINF_RUNNING, 'r'),
        st(dc::XEN_DOMINF_BLOCKED, 'b'),
        st(dc::XEN_DOMINF_PAUSED, 'p'),
        // `s` for any shutdown but a crash, `c` for SHUTDOWN_crash (3), as xl does.
        if shutdown && reason != 3 { 's' } else { '-' },
        if shutdown && reason == 3 { 'c' } else { '-' },
        st(dc::XEN_DOMINF_DYING, 'd'),
    ]
    .iter()
    .collect()
}

/// A domain's name: xenstore `name`, `Domain-0` for dom0, `None` if it has none.
pub fn domain_name(x: &mut dyn Xen, id: u16) -> Option<String> {
    if id == 0 {
        return Some(DOM0_NAME.to_owned());
    }
    x.xs_read(XS_NO_TX, &format!("/local/domain/{id}/name"))
        .ok()
        .map(|v| String::from_utf8_lossy(&v).into_owned())
}

/// The rows of `xi list`.
///
/// # Errors
/// The sysctl's error.
pub fn list_domains(x: &mut dyn Xen) -> Result<Vec<DomainRow>> {
    let infos = domain_infos(x)?;
    Ok(infos
        .into_iter()
        .map(|info| {
            let id = info.domain;
            DomainRow {
                name: domain_name(x, id).unwrap_or_else(|| format!("(null)-{id}")),
                id,
                mem_mib: info.tot_pages * PAGE_SIZE as u64 / (1024 * 1024),
                vcpus: info.nr_online_vcpus,
                state: state_string(info.flags),
                cpu_time_ns: info.cpu_time,
            }
        })
        .collect())
}

/// `xl list`'s header line.
#[must_use]
pub fn list_header() -> String {
    format!(
        "{:<40} {:>5} {:>5} {:>5}     {:<6} {:>9}",
        "Name", "ID", "Mem", "VCPUs", "State", "Time(s)"
    )
}

/// One `xl list` line.
#[must_use]
pub fn list_line(r: &DomainRow) -> String {
    format!(
        "{:<40} {:>5} {:>5} {:>5}     {:<6} {:>9.1}",
        r.name,
        r.id,
        r.mem_mib,
        r.vcpus,
        r.state,
        r.cpu_time_ns as f64 / 1e9
    )
}

/// A domain as the user named it: an id (decimal) or a name.
///
/// # Errors
/// No such domain; a name that several domains have (use the id then).
pub fn resolve_domain(x: &mut dyn Xen, spec: &str) -> Result<(DomId, String)> {
    if !spec.is_empty() && spec.bytes().all(|b| b.is_ascii_digit()) {
        let id: u16 = spec
            .parse()
            .map_err(|_| anyhow!("{spec}: not a domain id (at most 65535)"))?;
        if xc::domain_info(x, DomId::new(id)).is_err() {
            bail!("no domain with id {id}");
        }
        let name = domain_name(x, id).unwrap_or_else(|| format!("domain {id}"));
        return Ok((DomId::new(id), name));
    }
    let ids: Vec<u16> = domain_infos(x)?
        .iter()
        .map(|i| i.domain)
        .filter(|&id| domain_name(x, id).as_deref() == Some(spec))
        .collect();
    match ids[..] {
        [id] => Ok((DomId::new(id), spec.to_owned())),
        [] => bail!("no domain named {spec:?}"),
        _ => bail!(
            "{} domains are named {spec:?} (ids {}): give the id",
            ids.len(),
            ids.iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The dom0-only directory of xi's state for `dom`: `/libxl/<domid>`.
#[must_use]
pub fn state_dir(dom: DomId) -> String {
    format!("/libxl/{}", dom.get())
}

/// The xenstore node holding `dom`'s configuration: `/libxl/<domid>/xi-config`.
#[must_use]
pub fn config_node(dom: DomId) -> String {
    format!("{}/xi-config", state_dir(dom))
}

/// Records `dom`'s configuration (JSON) at [`config_node`], readable by dom0 only.
///
/// # Errors
/// The xenstore error.
pub fn record_config(x: &mut dyn Xen, dom: DomId, json: &str) -> Result<()> {
    let dom0_only = [XsPerm {
        dom: DomId::DOM0,
        access: XsAccess::None,
    }];
    let dir = state_dir(dom);
    let node = config_node(dom);
    let _ = x.xs_rm(XS_NO_TX, &dir);
    x.xs_mkdir(XS_NO_TX, &dir)
        .and_then(|()| x.xs_set_perms(XS_NO_TX, &dir, &dom0_only))
        .and_then(|()| x.xs_write(XS_NO_TX, &node, json.as_bytes()))
        .and_then(|()| x.xs_set_perms(XS_NO_TX, &node, &dom0_only))
        .with_context(|| format!("record the configuration of domain {} in {node}", dom.get()))
}

/// The configuration JSON recorded for `dom`, if any.
pub fn recorded_config(x: &mut dyn Xen, dom: DomId) -> Option<String> {
    x.xs_read(XS_NO_TX, &config_node(dom))
        .ok()
        .and_then(|v| String::from_utf8(v).ok())
}

/// Forgets xi's state of a domain that is gone.
pub fn forget(x: &mut dyn Xen, dom: DomId) {
    let _ = x.xs_rm(XS_NO_TX, &state_dir(dom));
}

/// A configuration as the JSON xi records and saves: libxl's `libxl_domain_config`
/// form ([`DomainConfig::to_libxl_json`]), so `xl restore` of an xi save file needs
/// no config file. Read it back with [`DomainConfig::from_json`].
///
/// # Errors
/// None today (kept a `Result` for callers).
pub fn config_json(cfg: &DomainConfig) -> Result<String> {
    Ok(cfg.to_libxl_json())
}

/// The contents of `dom`'s console ring: the last (up to 2048) bytes the guest wrote,
/// read through a foreign mapping of the ring page named by xenstore
/// `console/ring-ref`. Output older than the ring's size is gone (the ring is a
/// circular buffer); the count of bytes ever written is returned too.
///
/// # Errors
/// No console ring known for the domain, or the page cannot be read.
pub fn console_ring(x: &mut dyn Xen, dom: DomId) -> Result<(Vec<u8>, u32)> {
    let node = format!("/local/domain/{}/console/ring-ref", dom.get());
    let v = x
        .xs_read(XS_NO_TX, &node)
        .with_context(|| format!("domain {} has no console ({node})", dom.get()))?;
    let mfn: u64 = std::str::from_utf8(&v)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| {
            anyhow!(
                "{node}: not a frame number: {:?}",
                String::from_utf8_lossy(&v)
            )
        })?;
    let page = match xc::read_frames(x, dom, &[Mfn::new(mfn)])
        .with_context(|| format!("read the console ring of domain {}", dom.get()))?
    {
        Ok(p) => p,
        Err((_, errno)) => bail!(
            "read the console ring of domain {} (mfn {mfn:#x}): {errno}",
            dom.get()
        ),
    };
    let prod = u32::from_le_bytes(
        page[XENCONS_OUT_PROD..XENCONS_OUT_PROD + 4]
            .try_into()
            .expect("4 bytes"),
    );
    let n = prod.min(XENCONS_OUT_SIZE as u32);
    let start = prod.wrapping_sub(n);
    let bytes = (0..n)
        .map(|i| page[XENCONS_OUT + mask_xencons_out(start.wrapping_add(i))])
        .collect();
    Ok((bytes, prod))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_strings_as_xl_prints_them() {
        assert_eq!(state_string(0), "------");
        assert_eq!(state_string(dc::XEN_DOMINF_RUNNING), "r-----");
        assert_eq!(
            state_string(dc::XEN_DOMINF_BLOCKED | dc::XEN_DOMINF_PAUSED),
            "-bp---"
        );
        let shut = |reason: u32| dc::XEN_DOMINF_SHUTDOWN | (reason << dc::XEN_DOMINF_SHUTDOWNSHIFT);
        assert_eq!(state_string(shut(2)), "---s--", "suspend");
        assert_eq!(state_string(shut(3)), "----c-", "crash");
        assert_eq!(state_string(dc::XEN_DOMINF_DYING), "-----d");
    }

    #[test]
    fn list_lines_have_the_columns_of_xl_list() {
        let r = DomainRow {
            name: "guest one".into(),
            id: 7,
            mem_mib: 64,
            vcpus: 2,
            state: "-b----".into(),
            cpu_time_ns: 12_340_000_000,
        };
        let line = list_line(&r);
        assert!(line.starts_with("guest one "));
        let cols: Vec<&str> = line[40..].split_whitespace().collect();
        assert_eq!(cols, ["7", "64", "2", "-b----", "12.3"]);
        let header = list_header();
        let head: Vec<&str> = header.split_whitespace().collect();
        assert_eq!(head, ["Name", "ID", "Mem", "VCPUs", "State", "Time(s)"]);
    }
}
