//! Event channels, 2-level ABI, with Xen 4.17's semantics.
//!
//! Each domain has an [`EvtchnTable`]: a port → channel state table, the vCPU each port
//! notifies, and the VIRQ → port bindings. The pending and mask bitmaps are *not* kept
//! here: as on real Xen they live in the domain's shared_info page
//! (`evtchn_pending[64]` at 2048, `evtchn_mask[64]` at 2560), where the guest reads and
//! writes them directly; the per-vCPU selector and upcall flag live in
//! `vcpu_info[v]` (`evtchn_upcall_pending` at +0, `evtchn_pending_sel` at +8). The model
//! only ever looks at those bytes, so whatever a guest writes there is honoured exactly
//! as Xen would.
//!
//! The operations are `impl Model` blocks below. They take the *calling* domain
//! explicitly and apply Xen's checks in Xen's order, returning Xen's errno:
//!
//! | op | mirrors (xen/common/event_channel.c, 4.17) |
//! |---|---|
//! | [`Model::evtchn_alloc_unbound`] | `evtchn_alloc_unbound` + `xsm_evtchn_unbound` (XSM_TARGET) |
//! | [`Model::evtchn_bind_interdomain`] | `evtchn_bind_interdomain` (XSM_HOOK) |
//! | [`Model::evtchn_bind_virq`] | `evtchn_bind_virq` |
//! | [`Model::evtchn_bind_ipi`] | `evtchn_bind_ipi` |
//! | [`Model::evtchn_bind_pirq`] | `evtchn_bind_pirq` (no PIRQ access in the model) |
//! | [`Model::evtchn_close`] | `evtchn_close` / `evtchn_free` |
//! | [`Model::evtchn_send`] | `evtchn_send` |
//! | [`Model::evtchn_unmask`] | `evtchn_unmask` → `evtchn_2l_unmask` |
//! | [`Model::evtchn_status`] | `evtchn_status` + `xsm_evtchn_status` (XSM_TARGET) |
//! | [`Model::evtchn_bind_vcpu`] | `evtchn_bind_vcpu` |
//! | [`Model::evtchn_reset`] | `EVTCHNOP_reset` + `xsm_evtchn_reset` (XSM_TARGET) + `evtchn_reset` |
//! | [`Model::send_virq`] | `send_guest_vcpu_virq` |
//! | [`Model::send_guest_global_virq`] / [`Model::send_global_virq`] | same names |
//! | [`Model::evtchn_set_pending`] | `evtchn_port_set_pending` → `evtchn_2l_set_pending` |
//! | [`Model::evtchn_port_poll`] | `evtchn_port_poll` (for `SCHEDOP_poll`) |
//! | [`Model::evtchn_domain_destroy`] | `evtchn_destroy` |
//!
//! XSM is the default (dummy) policy: `XSM_TARGET` allows a domain to act on itself, and
//! the control domain ([`Domain::privileged`](super::domain::Domain)) to act on anyone;
//! `XSM_HOOK` allows everything. Device-model targets (`d->target`) do not exist in the
//! model.
//!
//! ## Port validity
//!
//! Xen allocates `struct evtchn` in buckets of 64 (a page of 64-byte, 64-aligned
//! entries) and a port is *valid* (`port_is_valid`) only below the high-water mark
//! `valid_evtchns`, which starts at 64 and grows a bucket at a time when the lowest free
//! port lands beyond it; buckets are never released before the domain dies. Operations on
//! a port beyond the mark fail with `EINVAL`, while a free port inside it reports
//! `EVTCHNSTAT_closed`. The table models that mark exactly.
//!
//! ## Marking a port pending (2-level)
//!
//! [`Model::evtchn_set_pending`] (and every send path) does, for port `p` notifying
//! vCPU `v` of domain `d` (`evtchn_2l_set_pending`):
//! 1. test-and-set bit `p` of `evtchn_pending`; if it was already set, stop (no selector
//!    update, no poller check);
//! 2. if bit `p` of `evtchn_mask` is clear and test-and-set of bit `p / 64` of
//!    `vcpu_info[v].evtchn_pending_sel` was clear, *mark `v` pending*: test-and-set bit 0
//!    of `evtchn_upcall_pending`; if it was clear, *kick* `v`;
//! 3. *check pollers*: every vCPU of `d` in `SCHEDOP_poll` whose poll set is exactly
//!    `[p]`, or has any other number of ports (Xen's `poll_evtchn <= 0`: it wakes those
//!    conservatively), is woken — even when the port is masked.
//!
//! *Kick* and *wake* both mean Xen's `vcpu_unblock`: the vCPU stops blocking, and a
//! polling period ends with it. In the model: `blocked = false` and `poll = None`.
//! Whether the guest then takes an upcall (`evtchn_upcall_mask`) is the interpreter's
//! business, not this module's.
//!
//! ## Simplifications
//!
//! - Only the 2-level ABI (`EVTCHN_2L_NR_CHANNELS` = 4096); FIFO ops are not offered.
//! - vCPUs ≥ 32 have no `vcpu_info` in shared_info (they would need
//!   `VCPUOP_register_vcpu_info`, which the model does not offer): for them the
//!   pending bit is still set and pollers still woken, but the selector/upcall step and
//!   the kick are skipped. Registered `vcpu_info` areas are not modelled at all: the
//!   legacy slot in shared_info is always used ([`vcpu_info_offset`] is the one place to
//!   change if that ever changes).
//! - No PIRQs (no physical hardware): `bind_pirq` fails with `EPERM`, as for a domain
//!   without access to the IRQ.
//! - No Xen-attached channels (`xen_consumer`), so none of the `EINVAL`/`EACCES`
//!   refusals that protect them apply.
//! - Global VIRQs always go to the hardware domain (dom0): there is no
//!   `XEN_DOMCTL_set_virq_handler`.
//! - `EVTCHNOP_reset` runs to completion (never `-ERESTART`).

use std::collections::BTreeMap;

use crate::abi::evtchn::{
    virq_is_global, EVTCHNSTAT_CLOSED, EVTCHNSTAT_INTERDOMAIN, EVTCHNSTAT_IPI, EVTCHNSTAT_PIRQ,
    EVTCHNSTAT_UNBOUND, EVTCHNSTAT_VIRQ, EVTCHN_2L_NR_CHANNELS, NR_VIRQS,
};
use crate::error::{Errno, XenResult};
use crate::model::mm::Page;
use crate::model::Model;
use crate::types::{DomId, Port, VcpuId};

/// Ports per `struct evtchn` bucket (a 4 KiB page of 64-byte, 64-aligned entries).
pub const EVTCHNS_PER_BUCKET: u32 = 64;
/// Xen clamps `max_evtchn_port` to `INT_MAX`.
const MAX_PORT_LIMIT: u32 = i32::MAX as u32;

// shared_info layout (abi.md §4).
const LEGACY_MAX_VCPUS: u32 = 32;
const VCPU_INFO_SIZE: usize = 64;
const VI_UPCALL_PENDING: usize = 0;
const VI_PENDING_SEL: usize = 8;
const SI_EVTCHN_PENDING: usize = 2048;
const SI_EVTCHN_MASK: usize = 2560;

/// The state of one port (Xen's `ECS_*` plus the `u` union).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EvtchnState {
    /// `ECS_FREE`: available.
    Free,
    /// `ECS_RESERVED`: port 0, never handed out.
    Reserved,
    /// `ECS_UNBOUND`: listening; only `remote` may bind to it.
    Unbound {
        /// The domain allowed to bind.
        remote: DomId,
    },
    /// `ECS_INTERDOMAIN`: connected to `remote_port` of `remote` (possibly this domain).
    Interdomain {
        /// The peer domain.
        remote: DomId,
        /// The peer's port.
        remote_port: Port,
    },
    /// `ECS_PIRQ` (never created by the model: it has no physical IRQs).
    Pirq {
        /// The PIRQ number.
        pirq: u32,
    },
    /// `ECS_VIRQ`.
    Virq {
        /// The VIRQ number.
        virq: u32,
        /// The vCPU whose VIRQ table holds the binding: the bound vCPU for per-vCPU
        /// VIRQs, always vCPU 0 for global ones (even after `bind_vcpu` moved the
        /// notification elsewhere).
        vcpu: VcpuId,
    },
    /// `ECS_IPI`.
    Ipi {
        /// The vCPU it notifies (fixed at bind time).
        vcpu: VcpuId,
    },
}

impl EvtchnState {
    /// Xen's `evtchn_usable` for a guest channel: anything but free/reserved.
    #[must_use]
    pub fn is_usable(self) -> bool {
        !matches!(self, EvtchnState::Free | EvtchnState::Reserved)
    }
}

/// What `EVTCHNOP_status` reports about a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvtchnStatusKind {
    /// `EVTCHNSTAT_closed` (free or reserved).
    Closed,
    /// `EVTCHNSTAT_unbound`, `u.unbound.dom`.
    Unbound {
        /// The domain allowed to bind.
        dom: DomId,
    },
    /// `EVTCHNSTAT_interdomain`, `u.interdomain`.
    Interdomain {
        /// Peer domain.
        dom: DomId,
        /// Peer port.
        port: Port,
    },
    /// `EVTCHNSTAT_pirq`, `u.pirq`.
    Pirq {
        /// PIRQ.
        pirq: u32,
    },
    /// `EVTCHNSTAT_virq`, `u.virq`.
    Virq {
        /// VIRQ.
        virq: u32,
    },
    /// `EVTCHNSTAT_ipi`.
    Ipi,
}

/// The result of `EVTCHNOP_status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EvtchnStatus {
    /// Status and its union.
    pub kind: EvtchnStatusKind,
    /// `vcpu`: the vCPU the port notifies.
    pub vcpu: VcpuId,
}

impl EvtchnStatus {
    /// The `EVTCHNSTAT_*` value for the `status` field.
    #[must_use]
    pub fn status_code(&self) -> u32 {
        match self.kind {
            EvtchnStatusKind::Closed => EVTCHNSTAT_CLOSED,
            EvtchnStatusKind::Unbound { .. } => EVTCHNSTAT_UNBOUND,
            EvtchnStatusKind::Interdomain { .. } => EVTCHNSTAT_INTERDOMAIN,
            EvtchnStatusKind::Pirq { .. } => EVTCHNSTAT_PIRQ,
            EvtchnStatusKind::Virq { .. } => EVTCHNSTAT_VIRQ,
            EvtchnStatusKind::Ipi => EVTCHNSTAT_IPI,
        }
    }

    /// The 8 bytes of the `u` union (at offset 16 of `evtchn_status`), little-endian:
    /// `unbound.dom` u16 @0; `interdomain.dom` u16 @0, `.port` u32 @4; `pirq` u32 @0;
    /// `virq` u32 @0; zero otherwise. Xen leaves the union untouched for closed and IPI
    /// ports, i.e. it returns what the caller passed in; zero is what a zeroed request
    /// gets back.
    #[must_use]
    pub fn union_bytes(&self) -> [u8; 8] {
        let mut u = [0u8; 8];
        match self.kind {
            EvtchnStatusKind::Closed | EvtchnStatusKind::Ipi => {}
            EvtchnStatusKind::Unbound { dom } => u[0..2].copy_from_slice(&dom.get().to_le_bytes()),
            EvtchnStatusKind::Interdomain { dom, port } => {
                u[0..2].copy_from_slice(&dom.get().to_le_bytes());
                u[4..8].copy_from_slice(&port.get().to_le_bytes());
            }
            EvtchnStatusKind::Pirq { pirq: n } | EvtchnStatusKind::Virq { virq: n } => {
                u[0..4].copy_from_slice(&n.to_le_bytes());
            }
        }
        u
    }
}

/// One `struct evtchn` (the parts the model needs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Chan {
    state: EvtchnState,
    /// `notify_vcpu_id`; 0 for free ports (Xen resets it on free).
    notify: VcpuId,
}

const FREE_CHAN: Chan = Chan {
    state: EvtchnState::Free,
    notify: VcpuId::new(0),
};

/// A domain's event channel table.
#[derive(Debug, Clone)]
pub struct EvtchnTable {
    /// Every valid port (`valid_evtchns` entries, a multiple of 64).
    chans: Vec<Chan>,
    /// `max_evtchn_port` from createdomain (already clamped to `INT_MAX`).
    max_port: u32,
    /// `virq_to_evtchn` of every vCPU: (vCPU, VIRQ) → port. Global VIRQs sit under
    /// vCPU 0.
    virqs: BTreeMap<(VcpuId, u32), Port>,
}

impl Default for EvtchnTable {
    /// A table without a configured limit (Xen's dom0: `max_evtchn_port` = `INT_MAX`, so
    /// only the 2-level limit of 4096 applies).
    fn default() -> Self {
        Self::new(MAX_PORT_LIMIT)
    }
}

impl EvtchnTable {
    /// Xen's `evtchn_init`: the first bucket (ports 0..64) valid, port 0 reserved.
    /// `max_port` is createdomain's `max_evtchn_port` (the highest port the domain may
    /// use, inclusive; clamped to `INT_MAX` as Xen does, and the 2-level ABI caps it at
    /// 4095 anyway).
    #[must_use]
    pub fn new(max_port: u32) -> Self {
        let mut chans = vec![FREE_CHAN; EVTCHNS_PER_BUCKET as usize];
        chans[0].state = EvtchnState::Reserved;
        EvtchnTable {
            chans,
            max_port: max_port.min(MAX_PORT_LIMIT),
            virqs: BTreeMap::new(),
        }
    }

    /// `max_evtchn_port`.
    #[must_use]
    pub fn max_port(&self) -> u32 {
        self.max_port
    }

    /// `valid_evtchns`: ports below this are valid (`port_is_valid`).
    #[must_use]
    pub fn valid_ports(&self) -> u32 {
        self.chans.len() as u32
    }

    /// The state of `port`, or `None` if it is not a valid port.
    #[must_use]
    pub fn state(&self, port: Port) -> Option<EvtchnState> {
        self.chans.get(port.index()).map(|c| c.state)
    }

    /// The vCPU `port` notifies, or `None` if it is not a valid port.
    #[must_use]
    pub fn notify_vcpu(&self, port: Port) -> Option<VcpuId> {
        self.chans.get(port.index()).map(|c| c.notify)
    }

    /// The port `virq` is bound to on `vcpu` (use vCPU 0 for global VIRQs).
    #[must_use]
    pub fn virq_port(&self, vcpu: VcpuId, virq: u32) -> Option<Port> {
        self.virqs.get(&(vcpu, virq)).copied()
    }

    /// Every port that is not free (port 0, reserved, included), ascending.
    #[must_use]
    pub fn ports(&self) -> Vec<(Port, EvtchnState)> {
        self.chans
            .iter()
            .enumerate()
            .filter(|(_, c)| c.state != EvtchnState::Free)
            .map(|(i, c)| (Port::new(i as u32), c.state))
            .collect()
    }

    fn chan(&self, port: Port) -> XenResult<Chan> {
        self.chans.get(port.index()).copied().ok_or(Errno::EINVAL)
    }

    fn chan_mut(&mut self, port: Port) -> XenResult<&mut Chan> {
        self.chans.get_mut(port.index()).ok_or(Errno::EINVAL)
    }

    /// `evtchn_allocate_port`: `ENOSPC` beyond the limits, `EBUSY` (internal) for a port
    /// in use, otherwise grows the valid range up to `port` a bucket at a time.
    fn allocate_port(&mut self, port: u32) -> XenResult<()> {
        if port > self.max_port || port >= EVTCHN_2L_NR_CHANNELS {
            return Err(Errno::ENOSPC);
        }
        if let Some(c) = self.chans.get(port as usize) {
            return if c.state == EvtchnState::Free {
                Ok(())
            } else {
                Err(Errno::EBUSY)
            };
        }
        while self.chans.len() <= port as usize {
            let grown = self.chans.len() + EVTCHNS_PER_BUCKET as usize;
            self.chans.resize(grown, FREE_CHAN);
        }
        Ok(())
    }

    /// `get_free_port`: the lowest free port (port 0 is reserved from birth, so ≥ 1).
    /// `EINVAL` for a dying domain, `ENOSPC` when full. A new bucket it validates stays
    /// valid even if the caller's operation then fails (as in Xen).
    fn get_free_port(&mut self, dying: bool) -> XenResult<Port> {
        if dying {
            return Err(Errno::EINVAL);
        }
        let mut port = 0u32;
        while port <= self.max_port {
            match self.allocate_port(port) {
                Ok(()) => return Ok(Port::new(port)),
                Err(Errno::EBUSY) => {}
                Err(e) => return Err(e),
            }
            port += 1;
        }
        Err(Errno::ENOSPC)
    }
}

/// Byte offset of `vcpu_info[v]` in shared_info, if `v` has one there.
#[must_use]
pub fn vcpu_info_offset(v: VcpuId) -> Option<usize> {
    (v.get() < LEGACY_MAX_VCPUS).then(|| v.index() * VCPU_INFO_SIZE)
}

fn bit_pos(base: usize, bit: usize) -> (usize, u8) {
    (base + bit / 8, 1u8 << (bit % 8))
}

/// Tests bit `bit` of the little-endian bitmap at `base` (u64 words, so byte-wise is
/// the same thing). Out-of-page bits read as clear.
fn test_bit(page: &Page, base: usize, bit: usize) -> bool {
    let (i, m) = bit_pos(base, bit);
    page.get(i).is_some_and(|b| b & m != 0)
}

/// Test-and-set; returns the old value. Out-of-page bits are ignored (read as set so
/// callers stop).
fn test_and_set_bit(page: &mut Page, base: usize, bit: usize) -> bool {
    let (i, m) = bit_pos(base, bit);
    match page.get_mut(i) {
        Some(b) => {
            let old = *b & m != 0;
            *b |= m;
            old
        }
        None => true,
    }
}

/// Test-and-clear; returns the old value.
fn test_and_clear_bit(page: &mut Page, base: usize, bit: usize) -> bool {
    let (i, m) = bit_pos(base, bit);
    match page.get_mut(i) {
        Some(b) => {
            let old = *b & m != 0;
            *b &= !m;
            old
        }
        None => false,
    }
}

/// Xen's `vcpu_unblock` as seen by the model: stop blocking, end any poll.
fn unblock(v: &mut super::domain::Vcpu) {
    v.blocked = false;
    v.poll = None;
}

// ---------------------------------------------------------------------------------------
// Internal machinery.
// ---------------------------------------------------------------------------------------

impl Model {
    /// `rcu_lock_domain_by_any_id`: `DOMID_SELF` is the caller; `ESRCH` if absent.
    fn evtchn_resolve(&self, caller: DomId, dom: DomId) -> XenResult<DomId> {
        let id = if dom == DomId::SELF { caller } else { dom };
        if self.domains.contains_key(&id) {
            Ok(id)
        } else {
            Err(Errno::ESRCH)
        }
    }

    /// The caller must exist (it is `current->domain`).
    fn evtchn_caller(&self, caller: DomId) -> XenResult<&super::domain::Domain> {
        self.domains.get(&caller).ok_or(Errno::ESRCH)
    }

    /// The dummy XSM policy's `XSM_TARGET`: self, or the control domain.
    fn xsm_target(&self, src: DomId, target: DomId) -> XenResult<()> {
        if src == target || self.domains.get(&src).is_some_and(|d| d.privileged) {
            Ok(())
        } else {
            Err(Errno::EPERM)
        }
    }

    fn evtchn_table_mut(&mut self, dom: DomId) -> XenResult<&mut EvtchnTable> {
        self.domains
            .get_mut(&dom)
            .map(|d| &mut d.evtchn)
            .ok_or(Errno::ESRCH)
    }

    /// `get_free_port` on `dom`.
    fn evtchn_get_free_port(&mut self, dom: DomId) -> XenResult<Port> {
        let d = self.domains.get_mut(&dom).ok_or(Errno::ESRCH)?;
        let dying = d.dying;
        d.evtchn.get_free_port(dying)
    }

    /// `evtchn_2l_set_pending(d->vcpu[vcpu], port)` — see the module docs.
    fn evtchn_2l_set_pending(&mut self, dom: DomId, vcpu: VcpuId, port: Port) {
        if port.get() >= EVTCHN_2L_NR_CHANNELS {
            return;
        }
        let p = port.index();
        let Some(d) = self.domains.get_mut(&dom) else {
            return;
        };
        let Ok(page) = self.mem.page_mut_raw(d.shared_info) else {
            return;
        };
        if test_and_set_bit(page, SI_EVTCHN_PENDING, p) {
            return;
        }
        if !test_bit(page, SI_EVTCHN_MASK, p) {
            if let (Some(vi), Some(v)) = (vcpu_info_offset(vcpu), d.vcpus.get_mut(vcpu.index())) {
                if !test_and_set_bit(page, vi + VI_PENDING_SEL, p / 64) {
                    mark_events_pending(page, vi, v);
                }
            }
        }
        // evtchn_check_pollers.
        for v in &mut d.vcpus {
            let wake = match &v.poll {
                Some(poll) => poll.ports.len() != 1 || poll.ports[0] == port,
                None => false,
            };
            if wake {
                unblock(v);
            }
        }
    }

    /// `evtchn_2l_unmask`.
    fn evtchn_2l_unmask(&mut self, dom: DomId, port: Port) {
        if port.get() >= EVTCHN_2L_NR_CHANNELS {
            return;
        }
        let p = port.index();
        let Some(d) = self.domains.get_mut(&dom) else {
            return;
        };
        let vcpu = d.evtchn.notify_vcpu(port).unwrap_or_default();
        let Ok(page) = self.mem.page_mut_raw(d.shared_info) else {
            return;
        };
        if test_and_clear_bit(page, SI_EVTCHN_MASK, p) && test_bit(page, SI_EVTCHN_PENDING, p) {
            if let (Some(vi), Some(v)) = (vcpu_info_offset(vcpu), d.vcpus.get_mut(vcpu.index())) {
                if !test_and_set_bit(page, vi + VI_PENDING_SEL, p / 64) {
                    mark_events_pending(page, vi, v);
                }
            }
        }
    }

    /// `evtchn_2l_clear_pending`.
    fn evtchn_2l_clear_pending(&mut self, dom: DomId, port: Port) {
        if port.get() >= EVTCHN_2L_NR_CHANNELS {
            return;
        }
        let Some(d) = self.domains.get(&dom) else {
            return;
        };
        if let Ok(page) = self.mem.page_mut_raw(d.shared_info) {
            test_and_clear_bit(page, SI_EVTCHN_PENDING, port.index());
        }
    }

    /// `evtchn_free`: clear pending (the channel is still usable at that point), then
    /// free the slot and reset its notify vCPU to 0. The mask bit is left alone.
    fn evtchn_free(&mut self, dom: DomId, port: Port) {
        self.evtchn_2l_clear_pending(dom, port);
        if let Ok(t) = self.evtchn_table_mut(dom) {
            if let Ok(c) = t.chan_mut(port) {
                *c = FREE_CHAN;
            }
        }
    }

    /// `evtchn_close(d1, port1, guest)`: `EINVAL` for an invalid, free or reserved port.
    fn evtchn_close_port(&mut self, d1: DomId, port: Port) -> XenResult<()> {
        let chan = self
            .domains
            .get(&d1)
            .ok_or(Errno::ESRCH)?
            .evtchn
            .chan(port)?;
        match chan.state {
            EvtchnState::Free | EvtchnState::Reserved => return Err(Errno::EINVAL),
            EvtchnState::Unbound { .. } | EvtchnState::Ipi { .. } | EvtchnState::Pirq { .. } => {}
            EvtchnState::Virq { virq, vcpu } => {
                let t = self.evtchn_table_mut(d1)?;
                if t.virqs.get(&(vcpu, virq)) == Some(&port) {
                    t.virqs.remove(&(vcpu, virq));
                }
            }
            EvtchnState::Interdomain {
                remote,
                remote_port,
            } => {
                // Xen BUG()s if the peer is not the mirror image; the model just leaves a
                // non-matching peer alone (the invariant checker reports it).
                if let Ok(t2) = self.evtchn_table_mut(remote) {
                    if let Ok(c2) = t2.chan_mut(remote_port) {
                        if c2.state
                            == (EvtchnState::Interdomain {
                                remote: d1,
                                remote_port: port,
                            })
                        {
                            c2.state = EvtchnState::Unbound { remote: d1 };
                        }
                    }
                }
            }
        }
        self.evtchn_free(d1, port);
        Ok(())
    }
}

/// `vcpu_mark_events_pending`: test-and-set bit 0 of `evtchn_upcall_pending`; on a 0 → 1
/// transition, kick the vCPU.
fn mark_events_pending(page: &mut Page, vi: usize, v: &mut super::domain::Vcpu) {
    if !test_and_set_bit(page, vi + VI_UPCALL_PENDING, 0) {
        unblock(v);
    }
}

// ---------------------------------------------------------------------------------------
// The operations.
// ---------------------------------------------------------------------------------------

impl Model {
    /// `EVTCHNOP_alloc_unbound`: a new port in `dom` (`DOMID_SELF` = the caller) that
    /// only `remote` may bind to (`DOMID_SELF` = the *caller*, as in Xen; `remote` is not
    /// checked for existence). The port notifies vCPU 0.
    ///
    /// # Errors
    /// In Xen's order: `ESRCH` (no such `dom`), `EINVAL` (`dom` dying) / `ENOSPC` (no
    /// free port), then `EPERM` if the caller is neither `dom` nor privileged.
    pub fn evtchn_alloc_unbound(
        &mut self,
        caller: DomId,
        dom: DomId,
        remote: DomId,
    ) -> XenResult<Port> {
        self.evtchn_caller(caller)?;
        let d = self.evtchn_resolve(caller, dom)?;
        let port = self.evtchn_get_free_port(d)?;
        self.xsm_target(caller, d)?;
        let remote = if remote == DomId::SELF {
            caller
        } else {
            remote
        };
        self.evtchn_table_mut(d)?.chan_mut(port)?.state = EvtchnState::Unbound { remote };
        Ok(port)
    }

    /// `EVTCHNOP_bind_interdomain`: connects a new port of the caller to `remote_port`
    /// of `remote_dom` (`DOMID_SELF` = loopback), which must be unbound and expecting
    /// the caller. Both ends become interdomain, and the new local port is always marked
    /// pending (notifications sent to the unbound end are not lost).
    ///
    /// # Errors
    /// `ESRCH` (no such remote domain), `EINVAL`/`ENOSPC` (no local port), `EINVAL`
    /// (remote port invalid, not unbound, or expecting another domain).
    pub fn evtchn_bind_interdomain(
        &mut self,
        caller: DomId,
        remote_dom: DomId,
        remote_port: Port,
    ) -> XenResult<Port> {
        self.evtchn_caller(caller)?;
        let rd = self.evtchn_resolve(caller, remote_dom)?;
        let lport = self.evtchn_get_free_port(caller)?;
        let rchan = self
            .domains
            .get(&rd)
            .ok_or(Errno::ESRCH)?
            .evtchn
            .chan(remote_port)?;
        if rchan.state != (EvtchnState::Unbound { remote: caller }) {
            return Err(Errno::EINVAL);
        }
        // XSM_HOOK: allowed.
        self.evtchn_table_mut(caller)?.chan_mut(lport)?.state = EvtchnState::Interdomain {
            remote: rd,
            remote_port,
        };
        self.evtchn_table_mut(rd)?.chan_mut(remote_port)?.state = EvtchnState::Interdomain {
            remote: caller,
            remote_port: lport,
        };
        let notify = self
            .domains
            .get(&caller)
            .and_then(|d| d.evtchn.notify_vcpu(lport))
            .unwrap_or_default();
        self.evtchn_2l_set_pending(caller, notify, lport);
        Ok(lport)
    }

    /// `EVTCHNOP_bind_virq`: binds `virq` on `vcpu` of the caller.
    ///
    /// # Errors
    /// `EINVAL` for `virq` ≥ `NR_VIRQS` or a global VIRQ on a vCPU other than 0;
    /// `ENOENT` if the vCPU does not exist; `EEXIST` if `virq` is already bound on that
    /// vCPU; `EINVAL`/`ENOSPC` from port allocation.
    pub fn evtchn_bind_virq(&mut self, caller: DomId, virq: u32, vcpu: VcpuId) -> XenResult<Port> {
        let d = self.evtchn_caller(caller)?;
        if virq >= NR_VIRQS {
            return Err(Errno::EINVAL);
        }
        if virq_is_global(virq) && vcpu.get() != 0 {
            return Err(Errno::EINVAL);
        }
        if vcpu.index() >= d.vcpus.len() {
            return Err(Errno::ENOENT);
        }
        if d.evtchn.virqs.contains_key(&(vcpu, virq)) {
            return Err(Errno::EEXIST);
        }
        let port = self.evtchn_get_free_port(caller)?;
        let t = self.evtchn_table_mut(caller)?;
        *t.chan_mut(port)? = Chan {
            state: EvtchnState::Virq { virq, vcpu },
            notify: vcpu,
        };
        t.virqs.insert((vcpu, virq), port);
        Ok(port)
    }

    /// `EVTCHNOP_bind_ipi`: a port of the caller notifying `vcpu`.
    ///
    /// # Errors
    /// `ENOENT` if the vCPU does not exist; `EINVAL`/`ENOSPC` from port allocation.
    pub fn evtchn_bind_ipi(&mut self, caller: DomId, vcpu: VcpuId) -> XenResult<Port> {
        let d = self.evtchn_caller(caller)?;
        if vcpu.index() >= d.vcpus.len() {
            return Err(Errno::ENOENT);
        }
        let port = self.evtchn_get_free_port(caller)?;
        *self.evtchn_table_mut(caller)?.chan_mut(port)? = Chan {
            state: EvtchnState::Ipi { vcpu },
            notify: vcpu,
        };
        Ok(port)
    }

    /// `EVTCHNOP_bind_pirq`. The model has no physical IRQs and grants no domain access
    /// to any, so this always fails the way Xen's `pirq_access_permitted` check does.
    ///
    /// # Errors
    /// `ESRCH` for an unknown caller, otherwise `EPERM`.
    pub fn evtchn_bind_pirq(&mut self, caller: DomId, _pirq: u32, _flags: u32) -> XenResult<Port> {
        self.evtchn_caller(caller)?;
        Err(Errno::EPERM)
    }

    /// `EVTCHNOP_close` of `port` in `dom`. The hypercall always closes the caller's own
    /// port (pass `DOMID_SELF` or the caller's id); a privileged caller may also close
    /// another domain's port (Xen's internal `evtchn_close(d, port, false)`, used by the
    /// toolstack-side model code). Closing one end of an interdomain channel puts the
    /// peer back to unbound-expecting-`dom`; a VIRQ port's binding is dropped. The
    /// closed port's pending bit is cleared (`evtchn_free`), its mask bit kept, and its
    /// notify vCPU reset to 0.
    ///
    /// # Errors
    /// `ESRCH` (no such domain), `EPERM` (another domain, unprivileged caller), `EINVAL`
    /// (invalid, free or reserved port).
    pub fn evtchn_close(&mut self, caller: DomId, dom: DomId, port: Port) -> XenResult<()> {
        self.evtchn_caller(caller)?;
        let d = self.evtchn_resolve(caller, dom)?;
        if d != caller && !self.domains.get(&caller).is_some_and(|c| c.privileged) {
            return Err(Errno::EPERM);
        }
        self.evtchn_close_port(d, port)
    }

    /// `EVTCHNOP_send` on the caller's `port`: interdomain → the peer's port is marked
    /// pending (on the peer's notify vCPU); IPI → the port itself; unbound → silently
    /// dropped (`Ok`).
    ///
    /// # Errors
    /// `EINVAL` for an invalid port or one that is free, reserved, VIRQ or PIRQ.
    pub fn evtchn_send(&mut self, caller: DomId, port: Port) -> XenResult<()> {
        let chan = self.evtchn_caller(caller)?.evtchn.chan(port)?;
        match chan.state {
            EvtchnState::Interdomain {
                remote,
                remote_port,
            } => {
                let notify = self
                    .domains
                    .get(&remote)
                    .and_then(|d| d.evtchn.chans.get(remote_port.index()))
                    .filter(|c| c.state.is_usable())
                    .map(|c| c.notify);
                if let Some(v) = notify {
                    self.evtchn_2l_set_pending(remote, v, remote_port);
                }
                Ok(())
            }
            EvtchnState::Ipi { .. } => {
                self.evtchn_2l_set_pending(caller, chan.notify, port);
                Ok(())
            }
            EvtchnState::Unbound { .. } => Ok(()),
            _ => Err(Errno::EINVAL),
        }
    }

    /// `EVTCHNOP_unmask`: clears the mask bit of a usable port; if it is pending, redoes
    /// the selector/upcall step on its notify vCPU (so an event that arrived while
    /// masked is delivered now). A free or reserved port is left untouched (mask bit
    /// included), but the call still succeeds — as in Xen.
    ///
    /// # Errors
    /// `EINVAL` for an invalid port.
    pub fn evtchn_unmask(&mut self, caller: DomId, port: Port) -> XenResult<()> {
        let chan = self.evtchn_caller(caller)?.evtchn.chan(port)?;
        if chan.state.is_usable() {
            self.evtchn_2l_unmask(caller, port);
        }
        Ok(())
    }

    /// `EVTCHNOP_status` of `port` in `dom` (`DOMID_SELF` = the caller).
    ///
    /// # Errors
    /// `ESRCH` (no such domain), `EINVAL` (invalid port — checked before permissions, as
    /// in Xen), `EPERM` (another domain, unprivileged caller).
    pub fn evtchn_status(&self, caller: DomId, dom: DomId, port: Port) -> XenResult<EvtchnStatus> {
        self.evtchn_caller(caller)?;
        let d = self.evtchn_resolve(caller, dom)?;
        let chan = self
            .domains
            .get(&d)
            .ok_or(Errno::ESRCH)?
            .evtchn
            .chan(port)?;
        self.xsm_target(caller, d)?;
        let kind = match chan.state {
            EvtchnState::Free | EvtchnState::Reserved => EvtchnStatusKind::Closed,
            EvtchnState::Unbound { remote } => EvtchnStatusKind::Unbound { dom: remote },
            EvtchnState::Interdomain {
                remote,
                remote_port,
            } => EvtchnStatusKind::Interdomain {
                dom: remote,
                port: remote_port,
            },
            EvtchnState::Pirq { pirq } => EvtchnStatusKind::Pirq { pirq },
            EvtchnState::Virq { virq, .. } => EvtchnStatusKind::Virq { virq },
            EvtchnState::Ipi { .. } => EvtchnStatusKind::Ipi,
        };
        Ok(EvtchnStatus {
            kind,
            vcpu: chan.notify,
        })
    }

    /// `EVTCHNOP_bind_vcpu`: makes the caller's `port` notify `vcpu`. Allowed for
    /// unbound, interdomain and global-VIRQ ports. Nothing is re-delivered: a port that
    /// is already pending keeps its selector bit on the old vCPU (Xen's 2-level ABI only
    /// changes `notify_vcpu_id`).
    ///
    /// # Errors
    /// `ENOENT` if the vCPU does not exist (checked first), `EINVAL` for an invalid port
    /// or an IPI, per-vCPU VIRQ, free or reserved port.
    pub fn evtchn_bind_vcpu(&mut self, caller: DomId, port: Port, vcpu: VcpuId) -> XenResult<()> {
        let d = self.evtchn_caller(caller)?;
        if vcpu.index() >= d.vcpus.len() {
            return Err(Errno::ENOENT);
        }
        let c = self.evtchn_table_mut(caller)?.chan_mut(port)?;
        match c.state {
            EvtchnState::Virq { virq, .. } if virq_is_global(virq) => c.notify = vcpu,
            EvtchnState::Unbound { .. } | EvtchnState::Interdomain { .. } => c.notify = vcpu,
            _ => return Err(Errno::EINVAL),
        }
        Ok(())
    }

    /// `EVTCHNOP_reset` of `dom` (`DOMID_SELF` = the caller): closes every port. A
    /// privileged caller may reset another domain only while it is paused by the
    /// controller (`pause_count` > 0).
    ///
    /// # Errors
    /// `ESRCH` (no such domain), `EPERM` (another domain, unprivileged caller), `EINVAL`
    /// (another domain that is not controller-paused).
    pub fn evtchn_reset(&mut self, caller: DomId, dom: DomId) -> XenResult<()> {
        self.evtchn_caller(caller)?;
        let d = self.evtchn_resolve(caller, dom)?;
        self.xsm_target(caller, d)?;
        let dd = self.domains.get(&d).ok_or(Errno::ESRCH)?;
        if d != caller && dd.pause_count == 0 {
            return Err(Errno::EINVAL);
        }
        let valid = dd.evtchn.valid_ports();
        for p in 1..valid {
            // Free ports fail with EINVAL; Xen ignores the result too.
            let _ = self.evtchn_close_port(d, Port::new(p));
        }
        Ok(())
    }

    /// `send_guest_vcpu_virq`: raises per-vCPU `virq` (TIMER, DEBUG, XENOPROF, XENPMU)
    /// on `vcpu` of `dom`. A no-op if unbound, if the domain or vCPU does not exist, or
    /// if `virq` is global (use [`Model::send_guest_global_virq`]).
    pub fn send_virq(&mut self, dom: DomId, vcpu: VcpuId, virq: u32) {
        if virq >= NR_VIRQS || virq_is_global(virq) {
            return;
        }
        let Some(d) = self.domains.get(&dom) else {
            return;
        };
        if vcpu.index() >= d.vcpus.len() {
            return;
        }
        if let Some(port) = d.evtchn.virq_port(vcpu, virq) {
            self.evtchn_2l_set_pending(dom, vcpu, port);
        }
    }

    /// `send_guest_global_virq`: raises global `virq` in `dom`, on the notify vCPU of the
    /// port bound in vCPU 0's table. A no-op if unbound or if `virq` is per-vCPU.
    pub fn send_guest_global_virq(&mut self, dom: DomId, virq: u32) {
        if virq >= NR_VIRQS || !virq_is_global(virq) {
            return;
        }
        let Some(d) = self.domains.get(&dom) else {
            return;
        };
        if d.vcpus.is_empty() {
            return;
        }
        let Some(port) = d.evtchn.virq_port(VcpuId::new(0), virq) else {
            return;
        };
        let notify = d.evtchn.notify_vcpu(port).unwrap_or_default();
        self.evtchn_2l_set_pending(dom, notify, port);
    }

    /// `send_global_virq`: raises global `virq` (e.g. `VIRQ_DOM_EXC`) in the domain
    /// handling it — always the hardware domain, dom0, in the model.
    pub fn send_global_virq(&mut self, virq: u32) {
        self.send_guest_global_virq(DomId::DOM0, virq);
    }

    /// Is `virq` bound in `dom` (on `vcpu`; global VIRQs are looked up on vCPU 0)?
    /// Xen's `evtchn_virq_enabled`.
    #[must_use]
    pub fn evtchn_virq_enabled(&self, dom: DomId, vcpu: VcpuId, virq: u32) -> bool {
        let Some(d) = self.domains.get(&dom) else {
            return false;
        };
        if vcpu.index() >= d.vcpus.len() {
            return false;
        }
        let v = if virq_is_global(virq) {
            VcpuId::new(0)
        } else {
            vcpu
        };
        d.evtchn.virq_port(v, virq).is_some()
    }

    /// Marks `port` of `dom` pending on its notify vCPU (`evtchn_port_set_pending` with
    /// the 2-level rule in the module docs). A free or reserved port is ignored, as Xen
    /// ignores unusable channels.
    ///
    /// # Errors
    /// `ESRCH` (no such domain), `EINVAL` (invalid port).
    pub fn evtchn_set_pending(&mut self, dom: DomId, port: Port) -> XenResult<()> {
        let chan = self
            .domains
            .get(&dom)
            .ok_or(Errno::ESRCH)?
            .evtchn
            .chan(port)?;
        if chan.state.is_usable() {
            self.evtchn_2l_set_pending(dom, chan.notify, port);
        }
        Ok(())
    }

    /// The raw `evtchn_pending` bit of `port` in `dom`'s shared_info (false for an
    /// unknown domain or a port beyond the 2-level range).
    #[must_use]
    pub fn evtchn_is_pending(&self, dom: DomId, port: Port) -> bool {
        if port.get() >= EVTCHN_2L_NR_CHANNELS {
            return false;
        }
        let Some(d) = self.domains.get(&dom) else {
            return false;
        };
        self.mem
            .page(d.shared_info)
            .is_ok_and(|pg| test_bit(pg, SI_EVTCHN_PENDING, port.index()))
    }

    /// The raw `evtchn_mask` bit of `port` in `dom`'s shared_info (ports beyond the
    /// 2-level range count as masked, as in Xen; an unknown domain too).
    #[must_use]
    pub fn evtchn_is_masked(&self, dom: DomId, port: Port) -> bool {
        if port.get() >= EVTCHN_2L_NR_CHANNELS {
            return true;
        }
        let Some(d) = self.domains.get(&dom) else {
            return true;
        };
        self.mem
            .page(d.shared_info)
            .map_or(true, |pg| test_bit(pg, SI_EVTCHN_MASK, port.index()))
    }

    /// `evtchn_port_poll` for `SCHEDOP_poll`: is `port` of `dom` pending?
    ///
    /// # Errors
    /// `ESRCH` (no such domain), `EINVAL` for an invalid port or a free/reserved one.
    pub fn evtchn_port_poll(&self, dom: DomId, port: Port) -> XenResult<bool> {
        let chan = self
            .domains
            .get(&dom)
            .ok_or(Errno::ESRCH)?
            .evtchn
            .chan(port)?;
        if !chan.state.is_usable() {
            return Err(Errno::EINVAL);
        }
        Ok(self.evtchn_is_pending(dom, port))
    }

    /// Every non-free port of `dom` (port 0, reserved, included), ascending; empty for
    /// an unknown domain.
    #[must_use]
    pub fn evtchn_ports(&self, dom: DomId) -> Vec<(Port, EvtchnState)> {
        self.domains
            .get(&dom)
            .map(|d| d.evtchn.ports())
            .unwrap_or_default()
    }

    /// `evtchn_destroy`: closes every port of a dying domain, highest first, so its
    /// interdomain peers return to unbound (expecting `dom`). Call it after marking the
    /// domain dying (then no new port can be allocated in it).
    pub fn evtchn_domain_destroy(&mut self, dom: DomId) {
        let Some(d) = self.domains.get(&dom) else {
            return;
        };
        let valid = d.evtchn.valid_ports();
        for p in (1..valid).rev() {
            let _ = self.evtchn_close_port(dom, Port::new(p));
        }
    }

    /// Checks the event channel invariants of every domain: port 0 reserved; the valid
    /// range a whole number of buckets within the 2-level limit; no bound port above
    /// `max_evtchn_port`; free ports notify vCPU 0; interdomain channels symmetric (the
    /// peer exists and points back); every VIRQ table entry names a VIRQ port with that
    /// binding and every VIRQ port is in the table; per-vCPU VIRQs and IPIs notify their
    /// own vCPU; global VIRQs are held by vCPU 0; notify vCPUs exist (or are vCPU 0).
    ///
    /// # Errors
    /// A description of the first violation found.
    pub fn evtchn_check_invariants(&self) -> Result<(), String> {
        for (&id, d) in &self.domains {
            let t = &d.evtchn;
            let valid = t.valid_ports();
            if valid == 0 || valid % EVTCHNS_PER_BUCKET != 0 || valid > EVTCHN_2L_NR_CHANNELS {
                return Err(format!(
                    "{id:?}: valid_evtchns {valid} is not a bucket multiple ≤ 4096"
                ));
            }
            if t.chans[0].state != EvtchnState::Reserved {
                return Err(format!(
                    "{id:?}: port 0 is {:?}, not reserved",
                    t.chans[0].state
                ));
            }
            let nvcpus = d.vcpus.len();
            for (i, c) in t.chans.iter().enumerate() {
                let port = Port::new(i as u32);
                if c.state == EvtchnState::Free {
                    if c.notify != VcpuId::new(0) {
                        return Err(format!("{id:?}: free {port:?} notifies {:?}", c.notify));
                    }
                    continue;
                }
                if i > 0 && port.get() > t.max_port {
                    return Err(format!(
                        "{id:?}: {port:?} in use above max_evtchn_port {}",
                        t.max_port
                    ));
                }
                if c.notify.get() != 0 && c.notify.index() >= nvcpus {
                    return Err(format!("{id:?}: {port:?} notifies missing {:?}", c.notify));
                }
                match c.state {
                    EvtchnState::Free => {}
                    EvtchnState::Reserved if i != 0 => {
                        return Err(format!("{id:?}: {port:?} reserved"))
                    }
                    EvtchnState::Reserved
                    | EvtchnState::Unbound { .. }
                    | EvtchnState::Pirq { .. } => {}
                    EvtchnState::Interdomain {
                        remote,
                        remote_port,
                    } => {
                        let peer = self
                            .domains
                            .get(&remote)
                            .and_then(|r| r.evtchn.state(remote_port))
                            .ok_or_else(|| {
                                format!("{id:?}: {port:?} peer {remote:?}/{remote_port:?} missing")
                            })?;
                        if peer
                            != (EvtchnState::Interdomain {
                                remote: id,
                                remote_port: port,
                            })
                        {
                            return Err(format!(
                                "{id:?}: {port:?} → {remote:?}/{remote_port:?}, which is {peer:?}"
                            ));
                        }
                    }
                    EvtchnState::Virq { virq, vcpu } => {
                        if virq >= NR_VIRQS {
                            return Err(format!("{id:?}: {port:?} bound to bad virq {virq}"));
                        }
                        if t.virqs.get(&(vcpu, virq)) != Some(&port) {
                            return Err(format!(
                                "{id:?}: {port:?} virq {virq}/{vcpu:?} not in the virq table"
                            ));
                        }
                        if virq_is_global(virq) {
                            if vcpu.get() != 0 {
                                return Err(format!("{id:?}: global virq {virq} held by {vcpu:?}"));
                            }
                        } else if c.notify != vcpu {
                            return Err(format!(
                                "{id:?}: per-vCPU virq {virq} on {vcpu:?} notifies {:?}",
                                c.notify
                            ));
                        }
                    }
                    EvtchnState::Ipi { vcpu } => {
                        if c.notify != vcpu {
                            return Err(format!(
                                "{id:?}: IPI {port:?} for {vcpu:?} notifies {:?}",
                                c.notify
                            ));
                        }
                    }
                }
            }
            for (&(vcpu, virq), &port) in &t.virqs {
                match t.state(port) {
                    Some(EvtchnState::Virq { virq: v2, vcpu: c2 }) if v2 == virq && c2 == vcpu => {}
                    other => {
                        return Err(format!(
                            "{id:?}: virq table ({vcpu:?}, {virq}) → {port:?}, which is {other:?}"
                        ))
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;

    use super::*;
    use crate::model::domain::{Domain, PollState, Vcpu};
    use crate::model::mm::Memory;

    const D0: DomId = DomId::DOM0;
    const D1: DomId = DomId::new(1);
    const D2: DomId = DomId::new(2);
    const SELF: DomId = DomId::SELF;

    use crate::abi::evtchn::{VIRQ_CONSOLE, VIRQ_DEBUG, VIRQ_DOM_EXC, VIRQ_TIMER};

    fn p(n: u32) -> Port {
        Port::new(n)
    }
    fn v(n: u32) -> VcpuId {
        VcpuId::new(n)
    }

    /// (id, privileged, vCPUs, max_evtchn_port)
    type Spec = (u16, bool, u32, u32);

    /// A model built by hand (the lead's constructors are written in parallel): one
    /// shared_info frame per domain at MFN 1 + id.
    fn model_with(specs: &[Spec]) -> Model {
        let mut domains = BTreeMap::new();
        let mut mem = Memory::new(1024);
        for &(id, privileged, nvcpus, max_port) in specs {
            let id = DomId::new(id);
            mem.add_domain(id).unwrap();
            let shared_info = mem.alloc_xen_page(id).unwrap();
            domains.insert(
                id,
                Domain {
                    id,
                    privileged,
                    handle: [0; 16],
                    ssidref: 0,
                    cdf_flags: 0,
                    max_vcpus: nvcpus,
                    vcpus: (0..nvcpus).map(|i| Vcpu::new(VcpuId::new(i))).collect(),
                    pause_count: 0,
                    dying: false,
                    shutdown: None,
                    shutdown_code: None,
                    suspend_start_info: None,
                    shared_info,
                    evtchn: EvtchnTable::new(max_port),
                    address_size: 64,
                    tsc: Default::default(),
                    grant: Default::default(),
                },
            );
        }
        Model {
            mem,
            domains,
            xenstore: Default::default(),
            console: Default::default(),
            time: Default::default(),
            last_domid: 0,
            evtchn_dev: Default::default(),
            services: Default::default(),
            tools_watch_events: Default::default(),
            icache: Default::default(),
        }
    }

    /// dom0 (privileged) and two guests, two vCPUs each.
    fn model() -> Model {
        model_with(&[(0, true, 2, 4095), (1, false, 2, 1023), (2, false, 2, 1023)])
    }

    fn si(m: &Model, dom: DomId) -> &Page {
        m.mem.page(m.domains[&dom].shared_info).unwrap()
    }
    fn si_mut(m: &mut Model, dom: DomId) -> &mut Page {
        let mfn = m.domains[&dom].shared_info;
        m.mem.page_mut_raw(mfn).unwrap()
    }
    fn word(page: &Page, off: usize) -> u64 {
        u64::from_le_bytes(page[off..off + 8].try_into().unwrap())
    }
    fn sel(m: &Model, dom: DomId, vcpu: u32) -> u64 {
        word(si(m, dom), vcpu as usize * 64 + 8)
    }
    fn upcall(m: &Model, dom: DomId, vcpu: u32) -> u8 {
        si(m, dom)[vcpu as usize * 64]
    }
    /// The guest writes its mask bit directly.
    fn guest_mask(m: &mut Model, dom: DomId, port: u32, on: bool) {
        let pg = si_mut(m, dom);
        let (i, b) = (SI_EVTCHN_MASK + port as usize / 8, 1u8 << (port % 8));
        if on {
            pg[i] |= b;
        } else {
            pg[i] &= !b;
        }
    }
    /// The guest consumer loop of abi.md §3 on `vcpu`: returns the ports it handled.
    fn guest_consume(m: &mut Model, dom: DomId, vcpu: u32) -> Vec<u32> {
        let pg = si_mut(m, dom);
        let vi = vcpu as usize * 64;
        pg[vi] = 0;
        let s = word(pg, vi + 8);
        pg[vi + 8..vi + 16].fill(0);
        let mut handled = Vec::new();
        for w in 0..64 {
            if s & (1 << w) == 0 {
                continue;
            }
            let pend = word(pg, SI_EVTCHN_PENDING + w * 8);
            let mask = word(pg, SI_EVTCHN_MASK + w * 8);
            let todo = pend & !mask;
            pg[SI_EVTCHN_PENDING + w * 8..SI_EVTCHN_PENDING + w * 8 + 8]
                .copy_from_slice(&(pend & !todo).to_le_bytes());
            handled.extend(
                (0..64)
                    .filter(|b| todo & (1 << b) != 0)
                    .map(|b| (w * 64 + b) as u32),
            );
        }
        handled
    }
    fn state(m: &Model, dom: DomId, port: u32) -> EvtchnState {
        m.domains[&dom].evtchn.state(p(port)).unwrap()
    }
    fn check(m: &Model) {
        m.evtchn_check_invariants().unwrap();
    }

    #[test]
    fn port0_reserved_and_lowest_free_port() {
        let mut m = model();
        assert_eq!(state(&m, D1, 0), EvtchnState::Reserved);
        let a = m.evtchn_alloc_unbound(D1, SELF, D0).unwrap();
        let b = m.evtchn_alloc_unbound(D1, SELF, D0).unwrap();
        let c = m.evtchn_bind_ipi(D1, v(0)).unwrap();
        assert_eq!((a, b, c), (p(1), p(2), p(3)));
        m.evtchn_close(D1, SELF, b).unwrap();
        assert_eq!(m.evtchn_bind_virq(D1, VIRQ_TIMER, v(0)), Ok(p(2)));
        assert_eq!(m.evtchn_alloc_unbound(D1, D1, D0), Ok(p(4)));
        // Port 0 cannot be closed, sent on or moved, and reports closed.
        assert_eq!(m.evtchn_close(D1, SELF, p(0)), Err(Errno::EINVAL));
        assert_eq!(m.evtchn_send(D1, p(0)), Err(Errno::EINVAL));
        assert_eq!(m.evtchn_bind_vcpu(D1, p(0), v(1)), Err(Errno::EINVAL));
        assert_eq!(
            m.evtchn_status(D1, SELF, p(0)).unwrap().kind,
            EvtchnStatusKind::Closed
        );
        // Closing a free port (inside the valid range) is EINVAL too.
        assert_eq!(m.evtchn_close(D1, SELF, p(10)), Err(Errno::EINVAL));
        check(&m);
    }

    #[test]
    fn valid_range_grows_by_buckets() {
        let mut m = model();
        // A fresh domain has ports 0..64 valid.
        assert_eq!(
            m.evtchn_status(D1, SELF, p(63)).unwrap().kind,
            EvtchnStatusKind::Closed
        );
        assert_eq!(m.evtchn_status(D1, SELF, p(64)), Err(Errno::EINVAL));
        assert_eq!(m.evtchn_unmask(D1, p(64)), Err(Errno::EINVAL));
        assert_eq!(m.evtchn_send(D1, p(4000)), Err(Errno::EINVAL));
        assert_eq!(m.evtchn_close(D1, SELF, p(u32::MAX)), Err(Errno::EINVAL));
        for i in 1..64 {
            assert_eq!(m.evtchn_bind_ipi(D1, v(0)), Ok(p(i)));
        }
        assert_eq!(m.domains[&D1].evtchn.valid_ports(), 64);
        assert_eq!(m.evtchn_bind_ipi(D1, v(1)), Ok(p(64)));
        assert_eq!(m.domains[&D1].evtchn.valid_ports(), 128);
        assert_eq!(
            m.evtchn_status(D1, SELF, p(127)).unwrap().kind,
            EvtchnStatusKind::Closed
        );
        assert_eq!(m.evtchn_status(D1, SELF, p(128)), Err(Errno::EINVAL));
        // Buckets stay valid after their ports are closed.
        m.evtchn_reset(D1, SELF).unwrap();
        assert_eq!(
            m.evtchn_status(D1, SELF, p(100)).unwrap().kind,
            EvtchnStatusKind::Closed
        );
        check(&m);
    }

    #[test]
    fn max_evtchn_port_limits_allocation() {
        let mut m = model_with(&[(0, true, 1, 4095), (1, false, 1, 3)]);
        for i in 1..=3 {
            assert_eq!(m.evtchn_alloc_unbound(D1, SELF, D0), Ok(p(i)));
        }
        assert_eq!(m.evtchn_alloc_unbound(D1, SELF, D0), Err(Errno::ENOSPC));
        assert_eq!(m.evtchn_bind_ipi(D1, v(0)), Err(Errno::ENOSPC));
        assert_eq!(m.evtchn_bind_virq(D1, VIRQ_TIMER, v(0)), Err(Errno::ENOSPC));
        // bind_interdomain needs a local port first.
        let r = m.evtchn_alloc_unbound(D0, SELF, D1).unwrap();
        assert_eq!(m.evtchn_bind_interdomain(D1, D0, r), Err(Errno::ENOSPC));
        // dom0-like tables stop at the 2-level limit.
        let mut t = EvtchnTable::default();
        assert_eq!(t.max_port(), i32::MAX as u32);
        for i in 1..4096 {
            assert_eq!(t.get_free_port(false), Ok(p(i)));
            t.chans[i as usize].state = EvtchnState::Unbound { remote: D0 };
        }
        assert_eq!(t.get_free_port(false), Err(Errno::ENOSPC));
        assert_eq!(t.valid_ports(), 4096);
        assert_eq!(t.get_free_port(true), Err(Errno::EINVAL));
        assert_eq!(
            EvtchnTable::new(0).clone().get_free_port(false),
            Err(Errno::ENOSPC)
        );
    }

    #[test]
    fn dying_domain_gets_no_ports() {
        let mut m = model();
        m.domains.get_mut(&D1).unwrap().dying = true;
        assert_eq!(m.evtchn_alloc_unbound(D1, SELF, D0), Err(Errno::EINVAL));
        assert_eq!(m.evtchn_alloc_unbound(D0, D1, D0), Err(Errno::EINVAL));
        assert_eq!(m.evtchn_bind_ipi(D1, v(0)), Err(Errno::EINVAL));
    }

    #[test]
    fn alloc_unbound_permissions_and_self() {
        let mut m = model();
        // Unprivileged on another domain: EPERM; on a missing domain: ESRCH first.
        assert_eq!(m.evtchn_alloc_unbound(D1, D2, D1), Err(Errno::EPERM));
        assert_eq!(
            m.evtchn_alloc_unbound(D1, DomId::new(9), D1),
            Err(Errno::ESRCH)
        );
        assert_eq!(
            m.evtchn_alloc_unbound(D0, DomId::new(9), D1),
            Err(Errno::ESRCH)
        );
        // The failed EPERM attempt did not consume a port in dom2.
        assert_eq!(m.evtchn_ports(D2), vec![(p(0), EvtchnState::Reserved)]);
        // dom0 may allocate in a guest (the toolstack does for xenstore/console).
        assert_eq!(m.evtchn_alloc_unbound(D0, D2, D0), Ok(p(1)));
        assert_eq!(state(&m, D2, 1), EvtchnState::Unbound { remote: D0 });
        // remote = SELF means the caller, even when allocating in another domain.
        assert_eq!(m.evtchn_alloc_unbound(D0, D2, SELF), Ok(p(2)));
        assert_eq!(state(&m, D2, 2), EvtchnState::Unbound { remote: D0 });
        assert_eq!(m.evtchn_alloc_unbound(D1, SELF, SELF), Ok(p(1)));
        assert_eq!(state(&m, D1, 1), EvtchnState::Unbound { remote: D1 });
        // The remote domain is not checked for existence.
        assert_eq!(m.evtchn_alloc_unbound(D1, SELF, DomId::new(77)), Ok(p(2)));
        assert_eq!(m.domains[&D1].evtchn.notify_vcpu(p(2)), Some(v(0)));
        // A missing caller is ESRCH.
        assert_eq!(
            m.evtchn_alloc_unbound(DomId::new(9), SELF, D0),
            Err(Errno::ESRCH)
        );
        check(&m);
    }

    #[test]
    fn bind_interdomain_marks_local_pending_and_both_ends() {
        let mut m = model();
        let r = m.evtchn_alloc_unbound(D2, SELF, D1).unwrap();
        m.evtchn_bind_ipi(D1, v(0)).unwrap(); // local port 1 taken
        let l = m.evtchn_bind_interdomain(D1, D2, r).unwrap();
        assert_eq!(l, p(2));
        assert_eq!(
            state(&m, D1, 2),
            EvtchnState::Interdomain {
                remote: D2,
                remote_port: r
            }
        );
        assert_eq!(
            state(&m, D2, r.get()),
            EvtchnState::Interdomain {
                remote: D1,
                remote_port: l
            }
        );
        // Always pending locally, with selector and upcall on vCPU 0; nothing remote.
        assert!(m.evtchn_is_pending(D1, l));
        assert_eq!(sel(&m, D1, 0), 1);
        assert_eq!(upcall(&m, D1, 0), 1);
        assert!(!m.evtchn_is_pending(D2, r));
        assert_eq!(upcall(&m, D2, 0), 0);
        let st = m.evtchn_status(D1, SELF, l).unwrap();
        assert_eq!(st.kind, EvtchnStatusKind::Interdomain { dom: D2, port: r });
        assert_eq!(st.status_code(), 2);
        assert_eq!(st.union_bytes(), [2, 0, 0, 0, 1, 0, 0, 0]);
        // Masked local port: pending but no selector/upcall.
        let r2 = m.evtchn_alloc_unbound(D2, SELF, D1).unwrap();
        guest_mask(&mut m, D1, 3, true);
        guest_consume(&mut m, D1, 0);
        let l2 = m.evtchn_bind_interdomain(D1, D2, r2).unwrap();
        assert_eq!(l2, p(3));
        assert!(m.evtchn_is_pending(D1, l2));
        assert_eq!((sel(&m, D1, 0), upcall(&m, D1, 0)), (0, 0));
        check(&m);
    }

    #[test]
    fn bind_interdomain_refusals() {
        let mut m = model();
        let for_d0 = m.evtchn_alloc_unbound(D2, SELF, D0).unwrap();
        // Expecting someone else.
        assert_eq!(
            m.evtchn_bind_interdomain(D1, D2, for_d0),
            Err(Errno::EINVAL)
        );
        // Not unbound: free, reserved, beyond the valid range, already bound.
        assert_eq!(m.evtchn_bind_interdomain(D1, D2, p(5)), Err(Errno::EINVAL));
        assert_eq!(m.evtchn_bind_interdomain(D1, D2, p(0)), Err(Errno::EINVAL));
        assert_eq!(
            m.evtchn_bind_interdomain(D1, D2, p(999)),
            Err(Errno::EINVAL)
        );
        let ipi = m.evtchn_bind_ipi(D2, v(0)).unwrap();
        assert_eq!(m.evtchn_bind_interdomain(D1, D2, ipi), Err(Errno::EINVAL));
        m.evtchn_bind_interdomain(D0, D2, for_d0).unwrap();
        assert_eq!(
            m.evtchn_bind_interdomain(D1, D2, for_d0),
            Err(Errno::EINVAL)
        );
        // No such domain.
        assert_eq!(
            m.evtchn_bind_interdomain(D1, DomId::new(42), p(1)),
            Err(Errno::ESRCH)
        );
        assert_eq!(
            m.evtchn_bind_interdomain(D1, DomId::XEN, p(1)),
            Err(Errno::ESRCH)
        );
        // Failed binds left no local port behind.
        assert_eq!(m.evtchn_ports(D1), vec![(p(0), EvtchnState::Reserved)]);
        check(&m);
    }

    #[test]
    fn loopback_channel() {
        let mut m = model();
        let a = m.evtchn_alloc_unbound(D1, SELF, SELF).unwrap();
        let b = m.evtchn_bind_interdomain(D1, SELF, a).unwrap();
        assert_eq!((a, b), (p(1), p(2)));
        assert_eq!(
            state(&m, D1, 1),
            EvtchnState::Interdomain {
                remote: D1,
                remote_port: b
            }
        );
        assert_eq!(
            state(&m, D1, 2),
            EvtchnState::Interdomain {
                remote: D1,
                remote_port: a
            }
        );
        assert!(m.evtchn_is_pending(D1, b) && !m.evtchn_is_pending(D1, a));
        m.evtchn_send(D1, b).unwrap();
        assert!(m.evtchn_is_pending(D1, a));
        check(&m);
        m.evtchn_close(D1, SELF, a).unwrap();
        assert_eq!(state(&m, D1, 2), EvtchnState::Unbound { remote: D1 });
        assert!(!m.evtchn_is_pending(D1, a) && m.evtchn_is_pending(D1, b));
        check(&m);
    }

    #[test]
    fn close_returns_peer_to_unbound_and_clears_pending() {
        let mut m = model();
        let r = m.evtchn_alloc_unbound(D2, SELF, D1).unwrap();
        let l = m.evtchn_bind_interdomain(D1, D2, r).unwrap();
        m.evtchn_send(D1, l).unwrap();
        assert!(m.evtchn_is_pending(D2, r));
        guest_mask(&mut m, D1, l.get(), true);
        m.evtchn_bind_vcpu(D1, l, v(1)).unwrap();
        m.evtchn_close(D1, SELF, l).unwrap();
        // Local: free, pending cleared, mask kept, notify back to vCPU 0.
        assert_eq!(state(&m, D1, l.get()), EvtchnState::Free);
        assert!(!m.evtchn_is_pending(D1, l));
        assert!(m.evtchn_is_masked(D1, l));
        assert_eq!(m.domains[&D1].evtchn.notify_vcpu(l), Some(v(0)));
        // Peer: unbound expecting the closer, its pending bit untouched.
        assert_eq!(state(&m, D2, r.get()), EvtchnState::Unbound { remote: D1 });
        assert!(m.evtchn_is_pending(D2, r));
        // Sending on the now-unbound end is silently dropped.
        assert_eq!(m.evtchn_send(D2, r), Ok(()));
        // dom1 can re-bind to it.
        assert_eq!(m.evtchn_bind_interdomain(D1, D2, r), Ok(l));
        check(&m);
        // Unprivileged close of another domain's port: EPERM; dom0 may.
        assert_eq!(m.evtchn_close(D1, D2, r), Err(Errno::EPERM));
        assert_eq!(m.evtchn_close(D0, D2, r), Ok(()));
        assert_eq!(state(&m, D1, l.get()), EvtchnState::Unbound { remote: D2 });
        assert_eq!(m.evtchn_close(D1, DomId::new(50), r), Err(Errno::ESRCH));
        check(&m);
    }

    #[test]
    fn send_sets_pending_selector_upcall() {
        let mut m = model();
        // dom1 port 70 (second word) ↔ dom2.
        for _ in 1..70 {
            m.evtchn_bind_ipi(D2, v(0)).unwrap();
        }
        let r = m.evtchn_alloc_unbound(D2, SELF, D1).unwrap();
        assert_eq!(r, p(70));
        for i in 1..64 {
            m.evtchn_close(D2, SELF, p(i)).unwrap();
        }
        guest_consume(&mut m, D2, 0);
        let l = m.evtchn_bind_interdomain(D1, D2, r).unwrap();
        guest_consume(&mut m, D1, 0);
        m.evtchn_bind_vcpu(D2, r, v(1)).unwrap();
        m.evtchn_send(D1, l).unwrap();
        assert!(m.evtchn_is_pending(D2, r));
        assert_eq!(word(si(&m, D2), SI_EVTCHN_PENDING + 8), 1 << 6);
        assert_eq!((sel(&m, D2, 1), upcall(&m, D2, 1)), (1 << 1, 1));
        assert_eq!((sel(&m, D2, 0), upcall(&m, D2, 0)), (0, 0));
        // Sending again while pending changes nothing, even after the guest cleared
        // its selector and upcall flag but not the pending bit.
        let pg = si_mut(&mut m, D2);
        pg[64] = 0;
        pg[72..80].fill(0);
        m.evtchn_send(D1, l).unwrap();
        assert_eq!((sel(&m, D2, 1), upcall(&m, D2, 1)), (0, 0));
        // After the consumer loop, a new send delivers again.
        assert_eq!(guest_consume(&mut m, D2, 1), Vec::<u32>::new());
        // (the selector was empty, so the pending bit was not consumed: do it by hand)
        si_mut(&mut m, D2)[SI_EVTCHN_PENDING + 8] = 0;
        m.evtchn_send(D1, l).unwrap();
        assert_eq!((sel(&m, D2, 1), upcall(&m, D2, 1)), (2, 1));
        assert_eq!(guest_consume(&mut m, D2, 1), vec![70]);
        assert!(!m.evtchn_is_pending(D2, r));
        // upcall_pending already set: the selector still gets the new word's bit.
        let r5 = m.evtchn_alloc_unbound(D2, SELF, D1).unwrap();
        assert_eq!(r5, p(1));
        let l5 = m.evtchn_bind_interdomain(D1, D2, r5).unwrap();
        m.evtchn_bind_vcpu(D2, r5, v(1)).unwrap();
        si_mut(&mut m, D2)[64] = 1;
        m.evtchn_send(D1, l5).unwrap();
        assert_eq!((sel(&m, D2, 1), upcall(&m, D2, 1)), (1, 1));
        check(&m);
    }

    #[test]
    fn masked_send_then_unmask_redelivers() {
        let mut m = model();
        let r = m.evtchn_alloc_unbound(D2, SELF, D1).unwrap();
        let l = m.evtchn_bind_interdomain(D1, D2, r).unwrap();
        guest_mask(&mut m, D2, r.get(), true);
        m.evtchn_send(D1, l).unwrap();
        assert!(m.evtchn_is_pending(D2, r) && m.evtchn_is_masked(D2, r));
        assert_eq!((sel(&m, D2, 0), upcall(&m, D2, 0)), (0, 0));
        m.domains.get_mut(&D2).unwrap().vcpus[0].blocked = true;
        m.evtchn_unmask(D2, r).unwrap();
        assert!(!m.evtchn_is_masked(D2, r));
        assert_eq!((sel(&m, D2, 0), upcall(&m, D2, 0)), (1, 1));
        assert!(
            !m.domains[&D2].vcpus[0].blocked,
            "unmask re-delivery kicks the vCPU"
        );
        // Unmasking a port that is not pending only clears the mask.
        guest_consume(&mut m, D2, 0);
        guest_mask(&mut m, D2, r.get(), true);
        m.evtchn_unmask(D2, r).unwrap();
        assert_eq!(
            (sel(&m, D2, 0), upcall(&m, D2, 0), m.evtchn_is_masked(D2, r)),
            (0, 0, false)
        );
        // Unmask of a free port succeeds but leaves its mask bit alone.
        guest_mask(&mut m, D2, 9, true);
        assert_eq!(m.evtchn_unmask(D2, p(9)), Ok(()));
        assert!(m.evtchn_is_masked(D2, p(9)));
        assert_eq!(m.evtchn_unmask(D2, p(0)), Ok(()));
        check(&m);
    }

    #[test]
    fn send_on_each_state() {
        let mut m = model();
        let unbound = m.evtchn_alloc_unbound(D1, SELF, D2).unwrap();
        let virq = m.evtchn_bind_virq(D1, VIRQ_TIMER, v(0)).unwrap();
        let ipi = m.evtchn_bind_ipi(D1, v(1)).unwrap();
        assert_eq!(m.evtchn_send(D1, unbound), Ok(()));
        assert!(!m.evtchn_is_pending(D1, unbound));
        assert_eq!(m.evtchn_send(D1, virq), Err(Errno::EINVAL));
        assert_eq!(m.evtchn_send(D1, p(20)), Err(Errno::EINVAL));
        assert_eq!(m.evtchn_send(D1, p(64)), Err(Errno::EINVAL));
        // IPI: to itself, on its vCPU.
        assert_eq!(m.evtchn_send(D1, ipi), Ok(()));
        assert!(m.evtchn_is_pending(D1, ipi));
        assert_eq!((sel(&m, D1, 1), upcall(&m, D1, 1)), (1, 1));
        assert_eq!(upcall(&m, D1, 0), 0);
        // Another domain cannot send on dom1's ports: its own port 3 is free.
        assert_eq!(m.evtchn_send(D2, ipi), Err(Errno::EINVAL));
        check(&m);
    }

    #[test]
    fn upcall_mask_does_not_stop_marking() {
        let mut m = model();
        si_mut(&mut m, D1)[1] = 1; // evtchn_upcall_mask on vCPU 0
        let ipi = m.evtchn_bind_ipi(D1, v(0)).unwrap();
        m.domains.get_mut(&D1).unwrap().vcpus[0].blocked = true;
        m.evtchn_send(D1, ipi).unwrap();
        assert_eq!((sel(&m, D1, 0), upcall(&m, D1, 0)), (1, 1));
        assert!(!m.domains[&D1].vcpus[0].blocked);
    }

    #[test]
    fn virq_binding_rules() {
        let mut m = model();
        let t0 = m.evtchn_bind_virq(D1, VIRQ_TIMER, v(0)).unwrap();
        assert_eq!(m.evtchn_bind_virq(D1, VIRQ_TIMER, v(0)), Err(Errno::EEXIST));
        // Per-vCPU VIRQ on vCPU 1 is a separate binding.
        let t1 = m.evtchn_bind_virq(D1, VIRQ_TIMER, v(1)).unwrap();
        assert_ne!(t0, t1);
        assert_eq!(
            state(&m, D1, t1.get()),
            EvtchnState::Virq {
                virq: VIRQ_TIMER,
                vcpu: v(1)
            }
        );
        assert_eq!(m.evtchn_bind_virq(D1, VIRQ_DEBUG, v(1)).map(|_| ()), Ok(()));
        // Global VIRQs only on vCPU 0 — EINVAL beats ENOENT.
        assert_eq!(
            m.evtchn_bind_virq(D1, VIRQ_DOM_EXC, v(1)),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            m.evtchn_bind_virq(D1, VIRQ_CONSOLE, v(7)),
            Err(Errno::EINVAL)
        );
        assert_eq!(m.evtchn_bind_virq(D1, 16, v(1)), Err(Errno::EINVAL)); // VIRQ_ARCH_0
                                                                          // Bad VIRQ numbers.
        assert_eq!(m.evtchn_bind_virq(D1, NR_VIRQS, v(0)), Err(Errno::EINVAL));
        assert_eq!(m.evtchn_bind_virq(D1, u32::MAX, v(0)), Err(Errno::EINVAL));
        // Missing vCPU for a per-vCPU VIRQ.
        assert_eq!(m.evtchn_bind_virq(D1, VIRQ_TIMER, v(2)), Err(Errno::ENOENT));
        assert_eq!(
            m.evtchn_bind_virq(D1, VIRQ_TIMER, v(u32::MAX)),
            Err(Errno::ENOENT)
        );
        let g = m.evtchn_bind_virq(D1, VIRQ_DOM_EXC, v(0)).unwrap();
        assert_eq!(
            m.evtchn_bind_virq(D1, VIRQ_DOM_EXC, v(0)),
            Err(Errno::EEXIST)
        );
        assert!(m.evtchn_virq_enabled(D1, v(1), VIRQ_DOM_EXC));
        assert!(m.evtchn_virq_enabled(D1, v(1), VIRQ_TIMER));
        assert!(!m.evtchn_virq_enabled(D1, v(1), VIRQ_CONSOLE));
        check(&m);
        // Closing frees the binding for re-use.
        m.evtchn_close(D1, SELF, t1).unwrap();
        assert_eq!(m.domains[&D1].evtchn.virq_port(v(1), VIRQ_TIMER), None);
        assert_eq!(m.evtchn_bind_virq(D1, VIRQ_TIMER, v(1)), Ok(t1));
        // A moved global VIRQ is still closed through vCPU 0's table.
        m.evtchn_bind_vcpu(D1, g, v(1)).unwrap();
        m.evtchn_close(D1, SELF, g).unwrap();
        assert!(!m.evtchn_virq_enabled(D1, v(0), VIRQ_DOM_EXC));
        check(&m);
    }

    #[test]
    fn virq_delivery() {
        let mut m = model();
        let t1 = m.evtchn_bind_virq(D1, VIRQ_TIMER, v(1)).unwrap();
        // Unbound VIRQs, wrong classes and bad ids are no-ops.
        m.send_virq(D1, v(0), VIRQ_TIMER);
        m.send_virq(D1, v(1), VIRQ_DOM_EXC);
        m.send_virq(D1, v(9), VIRQ_TIMER);
        m.send_virq(DomId::new(9), v(0), VIRQ_TIMER);
        m.send_virq(D1, v(1), u32::MAX);
        m.send_guest_global_virq(D1, VIRQ_TIMER);
        assert!(!m.evtchn_is_pending(D1, t1));
        m.send_virq(D1, v(1), VIRQ_TIMER);
        assert!(m.evtchn_is_pending(D1, t1));
        assert_eq!((sel(&m, D1, 1), upcall(&m, D1, 1)), (1, 1));
        assert_eq!(upcall(&m, D1, 0), 0);
        // VIRQ_DOM_EXC goes to dom0 only.
        let e0 = m.evtchn_bind_virq(D0, VIRQ_DOM_EXC, v(0)).unwrap();
        let e1 = m.evtchn_bind_virq(D1, VIRQ_DOM_EXC, v(0)).unwrap();
        m.send_global_virq(VIRQ_DOM_EXC);
        assert!(m.evtchn_is_pending(D0, e0));
        assert!(!m.evtchn_is_pending(D1, e1));
        // A moved global VIRQ notifies its new vCPU.
        m.evtchn_bind_vcpu(D1, e1, v(1)).unwrap();
        guest_consume(&mut m, D1, 1);
        m.send_guest_global_virq(D1, VIRQ_DOM_EXC);
        assert!(m.evtchn_is_pending(D1, e1));
        assert_eq!((sel(&m, D1, 1), upcall(&m, D1, 1)), (1, 1));
        assert_eq!(upcall(&m, D1, 0), 0);
        check(&m);
    }

    #[test]
    fn bind_vcpu_rules() {
        let mut m = model();
        let ipi = m.evtchn_bind_ipi(D1, v(0)).unwrap();
        let timer = m.evtchn_bind_virq(D1, VIRQ_TIMER, v(0)).unwrap();
        let cons = m.evtchn_bind_virq(D1, VIRQ_CONSOLE, v(0)).unwrap();
        let unbound = m.evtchn_alloc_unbound(D1, SELF, D0).unwrap();
        assert_eq!(m.evtchn_bind_vcpu(D1, ipi, v(1)), Err(Errno::EINVAL));
        assert_eq!(m.evtchn_bind_vcpu(D1, timer, v(1)), Err(Errno::EINVAL));
        assert_eq!(m.evtchn_bind_vcpu(D1, p(30), v(1)), Err(Errno::EINVAL));
        assert_eq!(m.evtchn_bind_vcpu(D1, p(64), v(1)), Err(Errno::EINVAL));
        // ENOENT is checked before the port.
        assert_eq!(m.evtchn_bind_vcpu(D1, p(64), v(2)), Err(Errno::ENOENT));
        assert_eq!(m.evtchn_bind_vcpu(D1, cons, v(2)), Err(Errno::ENOENT));
        assert_eq!(m.evtchn_bind_vcpu(D1, cons, v(1)), Ok(()));
        assert_eq!(m.evtchn_status(D1, SELF, cons).unwrap().vcpu, v(1));
        assert_eq!(m.evtchn_bind_vcpu(D1, unbound, v(1)), Ok(()));
        assert_eq!(m.evtchn_status(D1, SELF, unbound).unwrap().vcpu, v(1));
        // Moving a pending interdomain port re-delivers nothing.
        let r = m.evtchn_alloc_unbound(D2, SELF, D1).unwrap();
        let l = m.evtchn_bind_interdomain(D1, D2, r).unwrap();
        assert_eq!(upcall(&m, D1, 0), 1);
        m.evtchn_bind_vcpu(D1, l, v(1)).unwrap();
        assert_eq!((sel(&m, D1, 1), upcall(&m, D1, 1)), (0, 0));
        assert_eq!(sel(&m, D1, 0), 1);
        // …and the binding survives the peer closing (unbound ports keep notify).
        m.evtchn_close(D2, SELF, r).unwrap();
        assert_eq!(m.evtchn_status(D1, SELF, l).unwrap().vcpu, v(1));
        check(&m);
    }

    #[test]
    fn reset_closes_everything() {
        let mut m = model();
        let r = m.evtchn_alloc_unbound(D2, SELF, D1).unwrap();
        let l = m.evtchn_bind_interdomain(D1, D2, r).unwrap();
        m.evtchn_bind_virq(D1, VIRQ_TIMER, v(1)).unwrap();
        m.evtchn_bind_ipi(D1, v(0)).unwrap();
        m.evtchn_alloc_unbound(D1, SELF, D0).unwrap();
        // Permission and pause checks.
        assert_eq!(m.evtchn_reset(D2, D1), Err(Errno::EPERM));
        assert_eq!(
            m.evtchn_reset(D0, D1),
            Err(Errno::EINVAL),
            "dom0 needs the domain paused"
        );
        assert_eq!(m.evtchn_reset(D0, DomId::new(9)), Err(Errno::ESRCH));
        m.domains.get_mut(&D1).unwrap().pause_count = 1;
        assert_eq!(m.evtchn_reset(D0, D1), Ok(()));
        assert_eq!(m.evtchn_ports(D1), vec![(p(0), EvtchnState::Reserved)]);
        assert!(!m.evtchn_is_pending(D1, l));
        assert!(!m.evtchn_virq_enabled(D1, v(1), VIRQ_TIMER));
        assert_eq!(state(&m, D2, r.get()), EvtchnState::Unbound { remote: D1 });
        check(&m);
        // A domain may reset itself, paused or not.
        m.evtchn_bind_ipi(D2, v(1)).unwrap();
        assert_eq!(m.evtchn_reset(D2, SELF), Ok(()));
        assert_eq!(m.evtchn_ports(D2), vec![(p(0), EvtchnState::Reserved)]);
        check(&m);
    }

    #[test]
    fn status_of_every_state_and_permissions() {
        let mut m = model();
        let unbound = m.evtchn_alloc_unbound(D1, SELF, D2).unwrap();
        let r = m.evtchn_alloc_unbound(D2, SELF, D1).unwrap();
        let inter = m.evtchn_bind_interdomain(D1, D2, r).unwrap();
        let virq = m.evtchn_bind_virq(D1, VIRQ_DEBUG, v(1)).unwrap();
        let ipi = m.evtchn_bind_ipi(D1, v(1)).unwrap();
        let st = |m: &Model, port: Port| m.evtchn_status(D1, SELF, port).unwrap();
        let s = st(&m, unbound);
        assert_eq!(
            (s.kind, s.vcpu, s.status_code()),
            (EvtchnStatusKind::Unbound { dom: D2 }, v(0), 1)
        );
        assert_eq!(s.union_bytes(), [2, 0, 0, 0, 0, 0, 0, 0]);
        let s = st(&m, inter);
        assert_eq!(
            (s.kind, s.status_code()),
            (EvtchnStatusKind::Interdomain { dom: D2, port: r }, 2)
        );
        let s = st(&m, virq);
        assert_eq!(
            (s.kind, s.vcpu, s.status_code()),
            (EvtchnStatusKind::Virq { virq: VIRQ_DEBUG }, v(1), 4)
        );
        assert_eq!(s.union_bytes(), [1, 0, 0, 0, 0, 0, 0, 0]);
        let s = st(&m, ipi);
        assert_eq!(
            (s.kind, s.vcpu, s.status_code()),
            (EvtchnStatusKind::Ipi, v(1), 5)
        );
        let s = st(&m, p(40));
        assert_eq!(
            (s.kind, s.vcpu, s.status_code()),
            (EvtchnStatusKind::Closed, v(0), 0)
        );
        let pirq = EvtchnStatus {
            kind: EvtchnStatusKind::Pirq { pirq: 9 },
            vcpu: v(0),
        };
        assert_eq!((pirq.status_code(), pirq.union_bytes()[0]), (3, 9));
        // Permissions: XSM_TARGET, after the port check.
        assert_eq!(m.evtchn_status(D2, D1, ipi), Err(Errno::EPERM));
        assert_eq!(m.evtchn_status(D2, D1, p(500)), Err(Errno::EINVAL));
        assert_eq!(m.evtchn_status(D2, DomId::new(9), p(1)), Err(Errno::ESRCH));
        assert_eq!(
            m.evtchn_status(D0, D1, ipi).unwrap().kind,
            EvtchnStatusKind::Ipi
        );
        assert_eq!(
            m.evtchn_status(D1, D1, ipi).unwrap().kind,
            EvtchnStatusKind::Ipi
        );
        // PIRQs: no access.
        assert_eq!(m.evtchn_bind_pirq(D1, 3, 0), Err(Errno::EPERM));
        assert_eq!(m.evtchn_bind_pirq(D0, 3, 1), Err(Errno::EPERM));
    }

    #[test]
    fn blocked_and_polling_vcpus_are_woken() {
        let mut m = model();
        let a = m.evtchn_bind_ipi(D1, v(1)).unwrap();
        let b = m.evtchn_bind_ipi(D1, v(1)).unwrap();
        // SCHEDOP_block: any unmasked event to the vCPU wakes it.
        m.domains.get_mut(&D1).unwrap().vcpus[1].blocked = true;
        m.evtchn_send(D1, a).unwrap();
        assert!(!m.domains[&D1].vcpus[1].blocked);
        // A blocked vCPU is not woken when upcall_pending was already set.
        m.domains.get_mut(&D1).unwrap().vcpus[1].blocked = true;
        m.evtchn_send(D1, b).unwrap();
        assert!(m.domains[&D1].vcpus[1].blocked);
        guest_consume(&mut m, D1, 1);
        // Single-port poll on a masked port: woken by that port only.
        guest_mask(&mut m, D1, a.get(), true);
        guest_mask(&mut m, D1, b.get(), true);
        let poll = |ports: Vec<Port>| {
            Some(PollState {
                ports,
                deadline_ns: None,
            })
        };
        {
            let v1 = &mut m.domains.get_mut(&D1).unwrap().vcpus[1];
            v1.blocked = false;
            v1.poll = poll(vec![a]);
        }
        m.evtchn_send(D1, b).unwrap();
        assert!(m.domains[&D1].vcpus[1].poll.is_some());
        m.evtchn_send(D1, a).unwrap();
        assert_eq!(m.domains[&D1].vcpus[1].poll, None);
        assert_eq!(m.evtchn_port_poll(D1, a), Ok(true));
        assert_eq!(m.evtchn_port_poll(D1, p(20)), Err(Errno::EINVAL));
        assert_eq!(m.evtchn_port_poll(D1, p(0)), Err(Errno::EINVAL));
        assert_eq!(m.evtchn_port_poll(D1, p(640)), Err(Errno::EINVAL));
        // Multi-port polls (poll_evtchn = -1 in Xen) are woken by any port.
        si_mut(&mut m, D1)[SI_EVTCHN_PENDING] = 0;
        let c = m.evtchn_bind_ipi(D1, v(0)).unwrap();
        guest_mask(&mut m, D1, c.get(), true);
        m.domains.get_mut(&D1).unwrap().vcpus[1].poll = poll(vec![a, b]);
        m.evtchn_send(D1, c).unwrap();
        assert_eq!(m.domains[&D1].vcpus[1].poll, None);
        // A poll ends with a kick too (unmasked event, upcall 0 → 1), even for another
        // port: Xen's vcpu_unblock.
        guest_mask(&mut m, D1, a.get(), false);
        si_mut(&mut m, D1)[SI_EVTCHN_PENDING] = 0;
        guest_consume(&mut m, D1, 1);
        m.domains.get_mut(&D1).unwrap().vcpus[1].poll = poll(vec![b]);
        m.domains.get_mut(&D1).unwrap().vcpus[1].blocked = true;
        m.evtchn_send(D1, a).unwrap();
        assert_eq!(m.domains[&D1].vcpus[1].poll, None);
        assert!(!m.domains[&D1].vcpus[1].blocked);
    }

    #[test]
    fn vcpus_beyond_the_legacy_32_get_no_vcpu_info_bits() {
        let mut m = model_with(&[(0, true, 1, 4095), (1, false, 34, 1023)]);
        let ipi = m.evtchn_bind_ipi(D1, v(33)).unwrap();
        m.domains.get_mut(&D1).unwrap().vcpus[33].blocked = true;
        m.evtchn_send(D1, ipi).unwrap();
        assert!(m.evtchn_is_pending(D1, ipi));
        assert!(m.domains[&D1].vcpus[33].blocked);
        // Nothing landed outside the vcpu_info array either.
        assert!(si(&m, D1)[..2048].iter().all(|&b| b == 0));
        check(&m);
    }

    #[test]
    fn destroy_returns_peers_to_unbound() {
        let mut m = model();
        let r = m.evtchn_alloc_unbound(D0, SELF, D1).unwrap();
        m.evtchn_bind_interdomain(D1, D0, r).unwrap();
        let r2 = m.evtchn_alloc_unbound(D1, SELF, D2).unwrap();
        let l2 = m.evtchn_bind_interdomain(D2, D1, r2).unwrap();
        m.evtchn_bind_virq(D1, VIRQ_TIMER, v(0)).unwrap();
        m.domains.get_mut(&D1).unwrap().dying = true;
        m.evtchn_domain_destroy(D1);
        assert_eq!(m.evtchn_ports(D1), vec![(p(0), EvtchnState::Reserved)]);
        assert_eq!(state(&m, D0, r.get()), EvtchnState::Unbound { remote: D1 });
        assert_eq!(state(&m, D2, l2.get()), EvtchnState::Unbound { remote: D1 });
        check(&m);
        m.domains.remove(&D1);
        m.evtchn_domain_destroy(D1); // unknown domain: no-op
        check(&m);
        assert_eq!(m.evtchn_ports(D1), vec![]);
    }

    #[test]
    fn invariant_checker_catches_breakage() {
        let mut m = model();
        let r = m.evtchn_alloc_unbound(D2, SELF, D1).unwrap();
        let l = m.evtchn_bind_interdomain(D1, D2, r).unwrap();
        m.evtchn_bind_virq(D1, VIRQ_TIMER, v(1)).unwrap();
        check(&m);
        let mut bad = model();
        bad.domains.get_mut(&D1).unwrap().evtchn = m.domains[&D1].evtchn.clone();
        assert!(bad.evtchn_check_invariants().unwrap_err().contains("port1"));
        let mut bad = model();
        bad.domains
            .get_mut(&D1)
            .unwrap()
            .evtchn
            .virqs
            .insert((v(0), VIRQ_TIMER), p(5));
        assert!(bad.evtchn_check_invariants().is_err());
        let mut bad = model();
        bad.domains.get_mut(&D1).unwrap().evtchn.chans[0].state = EvtchnState::Free;
        assert!(bad.evtchn_check_invariants().is_err());
        let _ = l;
    }

    // -----------------------------------------------------------------------------------
    // Random op sequences against a reference model.
    // -----------------------------------------------------------------------------------

    const DOMS: [DomId; 3] = [D0, D1, D2];
    /// Domain ids as ops name them: 0..3, plus 3 = SELF and 4 = a missing domain.
    fn dom_of(i: u8) -> DomId {
        match i {
            0..=2 => DOMS[i as usize],
            3 => SELF,
            _ => DomId::new(9),
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        AllocUnbound { caller: u8, dom: u8, remote: u8 },
        BindInterdomain { caller: u8, rdom: u8, rport: u32 },
        BindVirq { caller: u8, virq: u32, vcpu: u32 },
        BindIpi { caller: u8, vcpu: u32 },
        Close { caller: u8, dom: u8, port: u32 },
        Send { caller: u8, port: u32 },
        Unmask { caller: u8, port: u32 },
        BindVcpu { caller: u8, port: u32, vcpu: u32 },
        Reset { caller: u8, dom: u8 },
        Status { caller: u8, dom: u8, port: u32 },
        SendVirq { dom: u8, vcpu: u32, virq: u32 },
        SendGlobalVirq { dom: u8, virq: u32 },
        GuestMask { dom: u8, port: u32, on: bool },
        GuestConsume { dom: u8, vcpu: u32 },
        Block { dom: u8, vcpu: u32 },
        TogglePause { dom: u8 },
    }

    fn op_strategy() -> impl Strategy<Value = Op> {
        let caller = 0u8..3;
        let dom = 0u8..5;
        let port = prop_oneof![4 => 0u32..12, 1 => 0u32..80];
        let vcpu = prop_oneof![4 => 0u32..2, 1 => 0u32..4];
        let virq = prop_oneof![4 => prop::sample::select(vec![0u32, 1, 2, 3, 16]), 1 => 0u32..30];
        prop_oneof![
            4 => (caller.clone(), dom.clone(), dom.clone())
                .prop_map(|(caller, dom, remote)| Op::AllocUnbound { caller, dom, remote }),
            4 => (caller.clone(), dom.clone(), port.clone())
                .prop_map(|(caller, rdom, rport)| Op::BindInterdomain { caller, rdom, rport }),
            2 => (caller.clone(), virq.clone(), vcpu.clone())
                .prop_map(|(caller, virq, vcpu)| Op::BindVirq { caller, virq, vcpu }),
            2 => (caller.clone(), vcpu.clone()).prop_map(|(caller, vcpu)| Op::BindIpi { caller, vcpu }),
            3 => (caller.clone(), prop_oneof![4 => Just(3u8), 1 => 0u8..5], port.clone())
                .prop_map(|(caller, dom, port)| Op::Close { caller, dom, port }),
            5 => (caller.clone(), port.clone()).prop_map(|(caller, port)| Op::Send { caller, port }),
            2 => (caller.clone(), port.clone()).prop_map(|(caller, port)| Op::Unmask { caller, port }),
            2 => (caller.clone(), port.clone(), vcpu.clone())
                .prop_map(|(caller, port, vcpu)| Op::BindVcpu { caller, port, vcpu }),
            1 => (caller.clone(), dom.clone()).prop_map(|(caller, dom)| Op::Reset { caller, dom }),
            2 => (caller.clone(), dom.clone(), port.clone())
                .prop_map(|(caller, dom, port)| Op::Status { caller, dom, port }),
            2 => (0u8..3, vcpu.clone(), virq.clone())
                .prop_map(|(dom, vcpu, virq)| Op::SendVirq { dom, vcpu, virq }),
            1 => (0u8..3, virq.clone()).prop_map(|(dom, virq)| Op::SendGlobalVirq { dom, virq }),
            2 => (0u8..3, port.clone(), any::<bool>())
                .prop_map(|(dom, port, on)| Op::GuestMask { dom, port, on }),
            3 => (0u8..3, 0u32..2).prop_map(|(dom, vcpu)| Op::GuestConsume { dom, vcpu }),
            1 => (0u8..3, 0u32..2).prop_map(|(dom, vcpu)| Op::Block { dom, vcpu }),
            1 => (1u8..3).prop_map(|dom| Op::TogglePause { dom }),
        ]
    }

    /// The reference: one plain record per domain, written from the ABI description.
    #[derive(Clone, Debug)]
    struct RDom {
        privileged: bool,
        nvcpus: u32,
        max_port: u32,
        valid: u32,
        paused: bool,
        /// Non-free ports: state and notify vCPU.
        chans: BTreeMap<u32, (EvtchnState, u32)>,
        virqs: BTreeMap<(u32, u32), u32>,
        pending: BTreeSet<u32>,
        masked: BTreeSet<u32>,
        sel: Vec<u64>,
        upcall: Vec<bool>,
        blocked: Vec<bool>,
    }

    #[derive(Clone, Debug)]
    struct Reference {
        doms: BTreeMap<DomId, RDom>,
    }

    impl Reference {
        fn new(specs: &[Spec]) -> Self {
            let doms = specs
                .iter()
                .map(|&(id, privileged, nvcpus, max_port)| {
                    let n = nvcpus as usize;
                    (
                        DomId::new(id),
                        RDom {
                            privileged,
                            nvcpus,
                            max_port,
                            valid: 64,
                            paused: false,
                            chans: BTreeMap::from([(0, (EvtchnState::Reserved, 0))]),
                            virqs: BTreeMap::new(),
                            pending: BTreeSet::new(),
                            masked: BTreeSet::new(),
                            sel: vec![0; n],
                            upcall: vec![false; n],
                            blocked: vec![false; n],
                        },
                    )
                })
                .collect();
            Reference { doms }
        }

        fn find(&self, caller: DomId, dom: DomId) -> Result<DomId, Errno> {
            let d = if dom == SELF { caller } else { dom };
            if self.doms.contains_key(&d) {
                Ok(d)
            } else {
                Err(Errno::ESRCH)
            }
        }
        fn may(&self, caller: DomId, target: DomId) -> Result<(), Errno> {
            if caller == target || self.doms[&caller].privileged {
                Ok(())
            } else {
                Err(Errno::EPERM)
            }
        }
        fn free_port(&mut self, d: DomId) -> Result<u32, Errno> {
            let rd = self.doms.get_mut(&d).unwrap();
            let limit = rd.max_port.min(4095);
            let port = (0..=limit)
                .find(|p| !rd.chans.contains_key(p))
                .ok_or(Errno::ENOSPC)?;
            rd.valid = rd.valid.max((port / 64 + 1) * 64);
            Ok(port)
        }
        fn lookup(&self, d: DomId, port: u32) -> Result<(EvtchnState, u32), Errno> {
            let rd = &self.doms[&d];
            if port >= rd.valid {
                return Err(Errno::EINVAL);
            }
            Ok(rd
                .chans
                .get(&port)
                .copied()
                .unwrap_or((EvtchnState::Free, 0)))
        }
        fn mark(&mut self, d: DomId, vcpu: u32, port: u32) {
            let rd = self.doms.get_mut(&d).unwrap();
            if !rd.pending.insert(port) {
                return;
            }
            if rd.masked.contains(&port) || vcpu >= rd.nvcpus {
                return;
            }
            let v = vcpu as usize;
            let bit = 1u64 << (port / 64);
            if rd.sel[v] & bit == 0 {
                rd.sel[v] |= bit;
                if !rd.upcall[v] {
                    rd.upcall[v] = true;
                    rd.blocked[v] = false;
                }
            }
        }
        fn close(&mut self, d: DomId, port: u32) -> Result<(), Errno> {
            let (st, _) = self.lookup(d, port)?;
            match st {
                EvtchnState::Free | EvtchnState::Reserved => return Err(Errno::EINVAL),
                EvtchnState::Virq { virq, vcpu } => {
                    self.doms
                        .get_mut(&d)
                        .unwrap()
                        .virqs
                        .remove(&(vcpu.get(), virq));
                }
                EvtchnState::Interdomain {
                    remote,
                    remote_port,
                } => {
                    let peer = self.doms.get_mut(&remote).unwrap();
                    peer.chans.get_mut(&remote_port.get()).unwrap().0 =
                        EvtchnState::Unbound { remote: d };
                }
                _ => {}
            }
            let rd = self.doms.get_mut(&d).unwrap();
            rd.chans.remove(&port);
            rd.pending.remove(&port);
            Ok(())
        }

        /// Applies `op`; returns what the model's call must return (ports as u32,
        /// status as its code and vCPU).
        fn apply(&mut self, op: &Op) -> Result<Option<u32>, Errno> {
            let global = |virq: u32| !matches!(virq, 0 | 1 | 7 | 13);
            match *op {
                Op::AllocUnbound {
                    caller,
                    dom,
                    remote,
                } => {
                    let c = dom_of(caller);
                    let d = self.find(c, dom_of(dom))?;
                    let port = self.free_port(d)?;
                    self.may(c, d)?;
                    let remote = if dom_of(remote) == SELF {
                        c
                    } else {
                        dom_of(remote)
                    };
                    self.doms
                        .get_mut(&d)
                        .unwrap()
                        .chans
                        .insert(port, (EvtchnState::Unbound { remote }, 0));
                    Ok(Some(port))
                }
                Op::BindInterdomain {
                    caller,
                    rdom,
                    rport,
                } => {
                    let c = dom_of(caller);
                    let rd = self.find(c, dom_of(rdom))?;
                    let l = self.free_port(c)?;
                    let (st, _) = self.lookup(rd, rport)?;
                    if st != (EvtchnState::Unbound { remote: c }) {
                        return Err(Errno::EINVAL);
                    }
                    self.doms.get_mut(&c).unwrap().chans.insert(
                        l,
                        (
                            EvtchnState::Interdomain {
                                remote: rd,
                                remote_port: p(rport),
                            },
                            0,
                        ),
                    );
                    self.doms
                        .get_mut(&rd)
                        .unwrap()
                        .chans
                        .get_mut(&rport)
                        .unwrap()
                        .0 = EvtchnState::Interdomain {
                        remote: c,
                        remote_port: p(l),
                    };
                    self.mark(c, 0, l);
                    Ok(Some(l))
                }
                Op::BindVirq { caller, virq, vcpu } => {
                    let c = dom_of(caller);
                    if virq >= 24 || (global(virq) && vcpu != 0) {
                        return Err(Errno::EINVAL);
                    }
                    if vcpu >= self.doms[&c].nvcpus {
                        return Err(Errno::ENOENT);
                    }
                    if self.doms[&c].virqs.contains_key(&(vcpu, virq)) {
                        return Err(Errno::EEXIST);
                    }
                    let port = self.free_port(c)?;
                    let rd = self.doms.get_mut(&c).unwrap();
                    rd.chans.insert(
                        port,
                        (
                            EvtchnState::Virq {
                                virq,
                                vcpu: v(vcpu),
                            },
                            vcpu,
                        ),
                    );
                    rd.virqs.insert((vcpu, virq), port);
                    Ok(Some(port))
                }
                Op::BindIpi { caller, vcpu } => {
                    let c = dom_of(caller);
                    if vcpu >= self.doms[&c].nvcpus {
                        return Err(Errno::ENOENT);
                    }
                    let port = self.free_port(c)?;
                    self.doms
                        .get_mut(&c)
                        .unwrap()
                        .chans
                        .insert(port, (EvtchnState::Ipi { vcpu: v(vcpu) }, vcpu));
                    Ok(Some(port))
                }
                Op::Close { caller, dom, port } => {
                    let c = dom_of(caller);
                    let d = self.find(c, dom_of(dom))?;
                    if d != c && !self.doms[&c].privileged {
                        return Err(Errno::EPERM);
                    }
                    self.close(d, port).map(|()| None)
                }
                Op::Send { caller, port } => {
                    let c = dom_of(caller);
                    match self.lookup(c, port)? {
                        (
                            EvtchnState::Interdomain {
                                remote,
                                remote_port,
                            },
                            _,
                        ) => {
                            let n = self.doms[&remote].chans[&remote_port.get()].1;
                            self.mark(remote, n, remote_port.get());
                            Ok(None)
                        }
                        (EvtchnState::Ipi { .. }, n) => {
                            self.mark(c, n, port);
                            Ok(None)
                        }
                        (EvtchnState::Unbound { .. }, _) => Ok(None),
                        _ => Err(Errno::EINVAL),
                    }
                }
                Op::Unmask { caller, port } => {
                    let c = dom_of(caller);
                    let (st, n) = self.lookup(c, port)?;
                    if st.is_usable() {
                        let rd = self.doms.get_mut(&c).unwrap();
                        if rd.masked.remove(&port) && rd.pending.contains(&port) && n < rd.nvcpus {
                            let v = n as usize;
                            let bit = 1u64 << (port / 64);
                            if rd.sel[v] & bit == 0 {
                                rd.sel[v] |= bit;
                                if !rd.upcall[v] {
                                    rd.upcall[v] = true;
                                    rd.blocked[v] = false;
                                }
                            }
                        }
                    }
                    Ok(None)
                }
                Op::BindVcpu { caller, port, vcpu } => {
                    let c = dom_of(caller);
                    if vcpu >= self.doms[&c].nvcpus {
                        return Err(Errno::ENOENT);
                    }
                    let (st, _) = self.lookup(c, port)?;
                    let ok = match st {
                        EvtchnState::Virq { virq, .. } => global(virq),
                        EvtchnState::Unbound { .. } | EvtchnState::Interdomain { .. } => true,
                        _ => false,
                    };
                    if !ok {
                        return Err(Errno::EINVAL);
                    }
                    self.doms
                        .get_mut(&c)
                        .unwrap()
                        .chans
                        .get_mut(&port)
                        .unwrap()
                        .1 = vcpu;
                    Ok(None)
                }
                Op::Reset { caller, dom } => {
                    let c = dom_of(caller);
                    let d = self.find(c, dom_of(dom))?;
                    self.may(c, d)?;
                    if d != c && !self.doms[&d].paused {
                        return Err(Errno::EINVAL);
                    }
                    let ports: Vec<u32> = self.doms[&d]
                        .chans
                        .keys()
                        .copied()
                        .filter(|&p| p != 0)
                        .collect();
                    for port in ports {
                        self.close(d, port).unwrap();
                    }
                    Ok(None)
                }
                Op::Status { caller, dom, port } => {
                    let c = dom_of(caller);
                    let d = self.find(c, dom_of(dom))?;
                    let (st, n) = self.lookup(d, port)?;
                    self.may(c, d)?;
                    let code = match st {
                        EvtchnState::Free | EvtchnState::Reserved => 0,
                        EvtchnState::Unbound { .. } => 1,
                        EvtchnState::Interdomain { .. } => 2,
                        EvtchnState::Pirq { .. } => 3,
                        EvtchnState::Virq { .. } => 4,
                        EvtchnState::Ipi { .. } => 5,
                    };
                    Ok(Some(code * 1000 + n))
                }
                Op::SendVirq { dom, vcpu, virq } => {
                    let d = dom_of(dom);
                    if let Some(&port) = self.doms[&d].virqs.get(&(vcpu, virq)) {
                        if !global(virq) {
                            self.mark(d, vcpu, port);
                        }
                    }
                    Ok(None)
                }
                Op::SendGlobalVirq { dom, virq } => {
                    let d = dom_of(dom);
                    if global(virq) {
                        if let Some(&port) = self.doms[&d].virqs.get(&(0, virq)) {
                            let n = self.doms[&d].chans[&port].1;
                            self.mark(d, n, port);
                        }
                    }
                    Ok(None)
                }
                Op::GuestMask { dom, port, on } => {
                    let rd = self.doms.get_mut(&dom_of(dom)).unwrap();
                    if port < 4096 {
                        if on {
                            rd.masked.insert(port);
                        } else {
                            rd.masked.remove(&port);
                        }
                    }
                    Ok(None)
                }
                Op::GuestConsume { dom, vcpu } => {
                    let rd = self.doms.get_mut(&dom_of(dom)).unwrap();
                    let v = vcpu as usize;
                    rd.upcall[v] = false;
                    let s = std::mem::take(&mut rd.sel[v]);
                    let masked = rd.masked.clone();
                    rd.pending
                        .retain(|&port| s & (1 << (port / 64)) == 0 || masked.contains(&port));
                    Ok(None)
                }
                Op::Block { dom, vcpu } => {
                    self.doms.get_mut(&dom_of(dom)).unwrap().blocked[vcpu as usize] = true;
                    Ok(None)
                }
                Op::TogglePause { dom } => {
                    let rd = self.doms.get_mut(&dom_of(dom)).unwrap();
                    rd.paused = !rd.paused;
                    Ok(None)
                }
            }
        }
    }

    fn run_model(m: &mut Model, op: &Op) -> Result<Option<u32>, Errno> {
        let port = |x: Port| Some(x.get());
        match *op {
            Op::AllocUnbound {
                caller,
                dom,
                remote,
            } => m
                .evtchn_alloc_unbound(dom_of(caller), dom_of(dom), dom_of(remote))
                .map(port),
            Op::BindInterdomain {
                caller,
                rdom,
                rport,
            } => m
                .evtchn_bind_interdomain(dom_of(caller), dom_of(rdom), p(rport))
                .map(port),
            Op::BindVirq { caller, virq, vcpu } => {
                m.evtchn_bind_virq(dom_of(caller), virq, v(vcpu)).map(port)
            }
            Op::BindIpi { caller, vcpu } => m.evtchn_bind_ipi(dom_of(caller), v(vcpu)).map(port),
            Op::Close { caller, dom, port } => m
                .evtchn_close(dom_of(caller), dom_of(dom), p(port))
                .map(|()| None),
            Op::Send { caller, port } => m.evtchn_send(dom_of(caller), p(port)).map(|()| None),
            Op::Unmask { caller, port } => m.evtchn_unmask(dom_of(caller), p(port)).map(|()| None),
            Op::BindVcpu { caller, port, vcpu } => m
                .evtchn_bind_vcpu(dom_of(caller), p(port), v(vcpu))
                .map(|()| None),
            Op::Reset { caller, dom } => m.evtchn_reset(dom_of(caller), dom_of(dom)).map(|()| None),
            Op::Status { caller, dom, port } => m
                .evtchn_status(dom_of(caller), dom_of(dom), p(port))
                .map(|s| Some(s.status_code() * 1000 + s.vcpu.get())),
            Op::SendVirq { dom, vcpu, virq } => {
                m.send_virq(dom_of(dom), v(vcpu), virq);
                Ok(None)
            }
            Op::SendGlobalVirq { dom, virq } => {
                m.send_guest_global_virq(dom_of(dom), virq);
                Ok(None)
            }
            Op::GuestMask { dom, port, on } => {
                guest_mask(m, dom_of(dom), port, on);
                Ok(None)
            }
            Op::GuestConsume { dom, vcpu } => {
                guest_consume(m, dom_of(dom), vcpu);
                Ok(None)
            }
            Op::Block { dom, vcpu } => {
                m.domains.get_mut(&dom_of(dom)).unwrap().vcpus[vcpu as usize].blocked = true;
                Ok(None)
            }
            Op::TogglePause { dom } => {
                let d = m.domains.get_mut(&dom_of(dom)).unwrap();
                d.pause_count = 1 - d.pause_count.min(1);
                Ok(None)
            }
        }
    }

    fn compare(m: &Model, r: &Reference) -> Result<(), String> {
        m.evtchn_check_invariants()?;
        for (&id, rd) in &r.doms {
            let d = &m.domains[&id];
            let t = &d.evtchn;
            if t.valid_ports() != rd.valid {
                return Err(format!(
                    "{id:?}: valid {} vs reference {}",
                    t.valid_ports(),
                    rd.valid
                ));
            }
            let ports: Vec<(u32, EvtchnState, u32)> = t
                .ports()
                .into_iter()
                .map(|(port, st)| (port.get(), st, t.notify_vcpu(port).unwrap().get()))
                .collect();
            let want: Vec<(u32, EvtchnState, u32)> = rd
                .chans
                .iter()
                .map(|(&port, &(st, n))| (port, st, n))
                .collect();
            if ports != want {
                return Err(format!("{id:?}: ports {ports:?}\n  reference {want:?}"));
            }
            let want_virqs: BTreeMap<(VcpuId, u32), Port> = rd
                .virqs
                .iter()
                .map(|(&(vc, virq), &port)| ((v(vc), virq), p(port)))
                .collect();
            if t.virqs != want_virqs {
                return Err(format!("{id:?}: virqs {:?} vs {want_virqs:?}", t.virqs));
            }
            let pg = si(m, id);
            for w in 0..64 {
                let bits = |set: &BTreeSet<u32>| {
                    set.iter()
                        .filter(|&&port| port / 64 == w)
                        .fold(0u64, |a, &port| a | 1 << (port % 64))
                };
                let (wp, wm) = (
                    word(pg, SI_EVTCHN_PENDING + w as usize * 8),
                    word(pg, SI_EVTCHN_MASK + w as usize * 8),
                );
                if wp != bits(&rd.pending) || wm != bits(&rd.masked) {
                    return Err(format!(
                        "{id:?}: word {w}: pending {wp:#x} mask {wm:#x} vs {:?} {:?}",
                        rd.pending, rd.masked
                    ));
                }
            }
            for vc in 0..rd.nvcpus {
                let got = (
                    sel(m, id, vc),
                    upcall(m, id, vc) != 0,
                    d.vcpus[vc as usize].blocked,
                );
                let want = (
                    rd.sel[vc as usize],
                    rd.upcall[vc as usize],
                    rd.blocked[vc as usize],
                );
                if got != want {
                    return Err(format!(
                        "{id:?} vcpu{vc}: (sel, upcall, blocked) {got:?} vs {want:?}"
                    ));
                }
            }
        }
        Ok(())
    }

    const PROP_SPECS: [Spec; 3] = [(0, true, 2, 4095), (1, false, 2, 1023), (2, false, 2, 5)];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

        #[test]
        fn random_ops_agree_with_reference(ops in prop::collection::vec(op_strategy(), 1..120)) {
            let mut m = model_with(&PROP_SPECS);
            let mut r = Reference::new(&PROP_SPECS);
            for (i, op) in ops.iter().enumerate() {
                let got = run_model(&mut m, op);
                let want = r.apply(op);
                prop_assert_eq!(got, want, "step {} {:?}", i, op);
                if let Err(e) = compare(&m, &r) {
                    prop_assert!(false, "step {} {:?}: {}", i, op, e);
                }
            }
        }
    }

    /// Many allocations so the bucket growth and the dom2 limit are exercised.
    #[test]
    fn reference_agrees_on_long_allocation_runs() {
        let mut m = model_with(&PROP_SPECS);
        let mut r = Reference::new(&PROP_SPECS);
        let mut ops = Vec::new();
        for i in 0..40u32 {
            ops.push(Op::AllocUnbound {
                caller: 0,
                dom: 0,
                remote: 1,
            });
            ops.push(Op::AllocUnbound {
                caller: 1,
                dom: 3,
                remote: (i % 3) as u8,
            });
        }
        for i in 0..150u32 {
            ops.push(Op::AllocUnbound {
                caller: 0,
                dom: (i % 3) as u8,
                remote: (i % 4) as u8,
            });
            ops.push(Op::BindInterdomain {
                caller: ((i + 1) % 3) as u8,
                rdom: (i % 3) as u8,
                rport: i / 2,
            });
            if i % 7 == 0 {
                ops.push(Op::Close {
                    caller: 1,
                    dom: 3,
                    port: i / 3,
                });
                ops.push(Op::Send {
                    caller: 2,
                    port: i % 6,
                });
                ops.push(Op::GuestConsume {
                    dom: (i % 3) as u8,
                    vcpu: 0,
                });
            }
        }
        for (i, op) in ops.iter().enumerate() {
            assert_eq!(run_model(&mut m, op), r.apply(op), "step {i} {op:?}");
            compare(&m, &r).unwrap_or_else(|e| panic!("step {i} {op:?}: {e}"));
        }
        assert!(m.domains[&D0].evtchn.valid_ports() > 64);
        assert!(m.domains[&D1].evtchn.valid_ports() > 64);
    }
}
