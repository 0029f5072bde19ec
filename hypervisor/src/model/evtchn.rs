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

use crate::error::{Errno, XenResult};
use crate::model::mm::Page;
use crate::model::Model;
use crate::types::{DomId, Port, VcpuId};

/// `EVTCHN_2L_NR_CHANNELS` on x86-64: 64 words of 64 bits.
pub const EVTCHN_2L_NR_CHANNELS: u32 = 4096;
/// Ports per `struct evtchn` bucket (a 4 KiB page of 64-byte entries).
pub const EVTCHNS_PER_BUCKET: u32 = 64;
/// `NR_VIRQS`.
pub const NR_VIRQS: u32 = 24;
/// Xen clamps `max_evtchn_port` to `INT_MAX`.
const MAX_PORT_LIMIT: u32 = i32::MAX as u32;

const VIRQ_TIMER: u32 = 0;
const VIRQ_DEBUG: u32 = 1;
const VIRQ_XENOPROF: u32 = 7;
const VIRQ_XENPMU: u32 = 13;

const EVTCHNSTAT_CLOSED: u32 = 0;
const EVTCHNSTAT_UNBOUND: u32 = 1;
const EVTCHNSTAT_INTERDOMAIN: u32 = 2;
const EVTCHNSTAT_PIRQ: u32 = 3;
const EVTCHNSTAT_VIRQ: u32 = 4;
const EVTCHNSTAT_IPI: u32 = 5;

// shared_info layout (abi.md §4).
const LEGACY_MAX_VCPUS: u32 = 32;
const VCPU_INFO_SIZE: usize = 64;
const VI_UPCALL_PENDING: usize = 0;
const VI_PENDING_SEL: usize = 8;
const SI_EVTCHN_PENDING: usize = 2048;
const SI_EVTCHN_MASK: usize = 2560;

/// Is `virq` global (one binding per domain, on vCPU 0's table) rather than per-vCPU?
/// Xen's `virq_is_global`: TIMER, DEBUG, XENOPROF and XENPMU are per-vCPU; everything
/// else (including the x86 ARCH_* range and the undefined numbers) is global.
#[must_use]
pub fn virq_is_global(virq: u32) -> bool {
    !matches!(virq, VIRQ_TIMER | VIRQ_DEBUG | VIRQ_XENOPROF | VIRQ_XENPMU)
}

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
