//! The xenstore nodes a new domain gets, with their permissions.
//!
//! Modelled on libxl (`libxl__domain_make`, `libxl__build_post`), reduced to what a PV
//! guest without devices needs:
//!
//! | node | value | permissions |
//! |---|---|---|
//! | `/local/domain/<id>` | — | owner the guest; dom0 read (`n<id>`, `r0`) |
//! | `…/name`, `…/domid` | name, id | owner dom0; the guest reads (`n0`, `r<id>`) |
//! | `…/memory/static-max`, `…/memory/target` | KiB | `n0`, `r<id>` |
//! | `…/cpu/<n>/availability` | `online` | `n0`, `r<id>` |
//! | `…/store/ring-ref`, `…/store/port` | store MFN, guest port | `n0`, `r<id>` |
//! | `…/console/ring-ref`, `…/console/port` | console MFN, guest port | `n0`, `r<id>` |
//! | `…/control/platform-feature-multiprocessor-suspend`, `…-xs_reset_watches` | `1` | `n0`, `r<id>` |
//! | `…/control`, `…/control/shutdown`, `…/data` | —, empty, — | owner the guest (`n<id>`, `r0`) |
//!
//! The home directory is the guest's, so it may create nodes of its own under it (and
//! xenstored removes it when the domain is released); everything the toolstack vouches
//! for is dom0's and read-only to the guest. The guest announces its own features
//! (`control/feature-suspend` …) under `control/`. Nothing is written under `/vm`.

use hypervisor::{DomId, Mfn, Port, XsAccess, XsPerm};

/// One node to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XsNode {
    /// Absolute path.
    pub path: String,
    /// Value; `None` makes a directory (empty value, created with MKDIR).
    pub value: Option<String>,
    /// Permissions to set on it.
    pub perms: Vec<XsPerm>,
}

/// What goes into a domain's xenstore home.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainXs<'a> {
    /// The domain.
    pub domid: DomId,
    /// Its name.
    pub name: &'a str,
    /// Memory in KiB (static-max and target).
    pub memory_kib: u64,
    /// vCPUs.
    pub vcpus: u32,
    /// Store ring MFN and the guest's end of the store channel.
    pub store: (Mfn, Port),
    /// Console ring MFN and the guest's end of the console channel.
    pub console: (Mfn, Port),
}

/// `/local/domain/<id>`.
#[must_use]
pub fn home(domid: DomId) -> String {
    format!("/local/domain/{}", domid.get())
}

/// The nodes, parents before children.
#[must_use]
pub fn domain_nodes(d: &DomainXs<'_>) -> Vec<XsNode> {
    let guest = d.domid;
    let guest_owned = vec![
        XsPerm {
            dom: guest,
            access: XsAccess::None,
        },
        XsPerm {
            dom: DomId::DOM0,
            access: XsAccess::Read,
        },
    ];
    let read_only = vec![
        XsPerm {
            dom: DomId::DOM0,
            access: XsAccess::None,
        },
        XsPerm {
            dom: guest,
            access: XsAccess::Read,
        },
    ];
    let h = home(guest);
    let mut out = Vec::new();
    let mut node = |rel: &str, value: Option<String>, perms: &Vec<XsPerm>| {
        let path = if rel.is_empty() {
            h.clone()
        } else {
            format!("{h}/{rel}")
        };
        out.push(XsNode {
            path,
            value,
            perms: perms.clone(),
        });
    };
    let s = |v: &dyn ToString| Some(v.to_string());
    node("", None, &guest_owned);
    node("name", s(&d.name), &read_only);
    node("domid", s(&guest.get()), &read_only);
    node("memory", None, &read_only);
    node("memory/static-max", s(&d.memory_kib), &read_only);
    node("memory/target", s(&d.memory_kib), &read_only);
    node("cpu", None, &read_only);
    for i in 0..d.vcpus {
        node(&format!("cpu/{i}"), None, &read_only);
        node(&format!("cpu/{i}/availability"), s(&"online"), &read_only);
    }
    node("store", None, &read_only);
    node("store/ring-ref", s(&d.store.0.get()), &read_only);
    node("store/port", s(&d.store.1.get()), &read_only);
    node("console", None, &read_only);
    node("console/ring-ref", s(&d.console.0.get()), &read_only);
    node("console/port", s(&d.console.1.get()), &read_only);
    node("control", None, &guest_owned);
    node("control/shutdown", s(&""), &guest_owned);
    node(
        "control/platform-feature-multiprocessor-suspend",
        s(&1),
        &read_only,
    );
    node(
        "control/platform-feature-xs_reset_watches",
        s(&1),
        &read_only,
    );
    node("data", None, &guest_owned);
    out
}
