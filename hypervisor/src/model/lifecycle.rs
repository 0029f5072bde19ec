//! Domain lifecycle: host creation, createdomain, pause, destroy, shutdown, resume.

use crate::error::{Errno, XenResult};
use crate::model::domain::{
    held_gdt_frames, CreateDomain, Domain, TscInfo, Vcpu, MODEL_MAX_VCPUS, VIRQ_DOM_EXC,
};
use crate::model::evtchn::EvtchnTable;
use crate::model::{console, mm, time, xenstore, EvtchnDevice, Model, ModelConfig};
use crate::types::{DomId, Mfn, VcpuId};
use std::collections::BTreeMap;

impl Model {
    /// A host with dom0 (privileged, one vCPU that the model never runs: the toolstack
    /// is dom0) and nothing else.
    ///
    /// # Panics
    /// If `config.machine_frames` is too small to hold the M2P and dom0's pages.
    #[must_use]
    pub fn new(config: ModelConfig) -> Self {
        let mut m = Model {
            mem: mm::Memory::new(config.machine_frames),
            domains: BTreeMap::new(),
            xenstore: xenstore::XenStore::new(),
            console: console::Consoles::default(),
            time: time::Clock::default(),
            last_domid: 0,
            evtchn_dev: EvtchnDevice::default(),
            services: super::services::Services::default(),
            tools_watch_events: std::collections::VecDeque::new(),
            icache: crate::cpu::DecodeCache::new(),
        };
        let dom0 = DomId::DOM0;
        m.mem.add_domain(dom0).expect("dom0 is not a reserved id");
        let shared_info = m
            .mem
            .alloc_xen_page(dom0)
            .expect("machine too small for dom0");
        let mut d = Domain {
            id: dom0,
            privileged: true,
            handle: [0; 16],
            ssidref: 0,
            cdf_flags: 0,
            max_vcpus: 1,
            vcpus: vec![Vcpu::new(VcpuId::new(0))],
            pause_count: 0,
            dying: false,
            shutdown: None,
            shutdown_code: None,
            suspend_start_info: None,
            shared_info,
            evtchn: EvtchnTable::new(4095),
            address_size: 64,
            tsc: TscInfo::default(),
            grant: crate::model::grant::GrantTable::default(),
        };
        d.vcpus[0].initialised = true;
        d.vcpus[0].up = true;
        m.domains.insert(dom0, d);
        m
    }

    /// Virtual nanoseconds since the host booted.
    #[must_use]
    pub fn now_ns(&self) -> u64 {
        self.time.now_ns
    }
}

/// 4.17's CDF bits (hvm … vpmu).
const CDF_HVM: u32 = 1 << 0;
const CDF_HAP: u32 = 1 << 1;
const CDF_IOMMU: u32 = 1 << 5;
const CDF_NESTED_VIRT: u32 = 1 << 6;
const CDF_VPMU: u32 = 1 << 7;
const CDF_OOS_OFF: u32 = 1 << 3;
const CDF_ALL_417: u32 = 0xff;
/// `XEN_X86_EMU_PIT`.
const EMU_PIT: u32 = 1 << 8;

impl super::Model {
    /// Validates a createdomain request as Xen 4.17's `sanitise_domain_config` and
    /// `arch_sanitise_domain_config` do, then picks the id and creates the domain,
    /// paused by the system controller (as every new Xen domain is).
    ///
    /// # Errors
    /// `EINVAL` for a malformed config, `EOPNOTSUPP` for HVM or unsupported
    /// emulation flags (the model only runs PV), `EEXIST` for a taken id, `ENOMEM`
    /// when no id or no frame for shared_info is left.
    pub fn create_domain(&mut self, req: &CreateDomain) -> XenResult<DomId> {
        if req.flags & !CDF_ALL_417 != 0 {
            return Err(Errno::EINVAL);
        }
        if req.grant_opts & !0xf != 0 || req.grant_opts & 0xf == 0 || req.grant_opts & 0xf > 2 {
            return Err(Errno::EINVAL);
        }
        if req.flags & CDF_HAP != 0 && req.flags & CDF_HVM == 0 {
            return Err(Errno::EINVAL);
        }
        if req.flags & CDF_NESTED_VIRT != 0 && req.flags & CDF_HAP == 0 {
            return Err(Errno::EINVAL);
        }
        if req.iommu_opts != 0 && req.flags & CDF_IOMMU == 0 {
            return Err(Errno::EINVAL);
        }
        if req.max_vcpus == 0 {
            return Err(Errno::EINVAL);
        }
        if req.vmtrace_size != 0 && req.flags & CDF_HVM == 0 {
            return Err(Errno::EINVAL);
        }
        if req.flags & CDF_VPMU != 0 || req.flags & CDF_IOMMU != 0 {
            // The model has neither a vPMU nor an IOMMU ("unavailable" in Xen's words).
            return Err(Errno::EINVAL);
        }
        if req.misc_flags & !1 != 0 {
            return Err(Errno::EINVAL);
        }
        if req.max_vcpus > MODEL_MAX_VCPUS {
            return Err(Errno::EINVAL);
        }
        if req.flags & CDF_HVM != 0 {
            // Only PV guests run on the model.
            return Err(Errno::EOPNOTSUPP);
        }
        // PV: emulation flags 0 or PIT only (emulation_flags_ok), checked at creation.
        if req.emulation_flags != 0 && req.emulation_flags != EMU_PIT {
            return Err(Errno::EOPNOTSUPP);
        }
        let max_grant_frames =
            super::grant::check_sizes(req.max_grant_frames, req.max_maptrack_frames)?;
        let id = self.choose_domid(req.domid)?;
        // Xen 4.17 passes max_evtchn_port straight to evtchn_init: 0 leaves the domain
        // with no usable port (libxl's default is 1023).
        let max_port = req.max_evtchn_port;
        self.mem.add_domain(id)?;
        let shared_info = match self.mem.alloc_xen_page(id) {
            Ok(m) => m,
            Err(e) => {
                self.mem.destroy_domain(id);
                return Err(e);
            }
        };
        let dom = Domain {
            id,
            privileged: false,
            handle: req.handle,
            ssidref: req.ssidref,
            // Xen sets oos_off itself for PV guests.
            cdf_flags: req.flags | CDF_OOS_OFF,
            max_vcpus: req.max_vcpus,
            vcpus: Vec::new(),
            pause_count: 1,
            dying: false,
            shutdown: None,
            shutdown_code: None,
            suspend_start_info: None,
            shared_info,
            evtchn: EvtchnTable::new(max_port),
            address_size: 64,
            tsc: TscInfo {
                mode: 0,
                khz: super::time::TSC_KHZ,
                incarnation: 0,
                elapsed_offset_ns: 0,
            },
            grant: super::grant::GrantTable {
                max_frames: max_grant_frames,
                frames: Vec::new(),
            },
        };
        self.init_shared_info(shared_info);
        self.domains.insert(id, dom);
        // grant_table_init allocates INITIAL_NR_GRANT_FRAMES at creation.
        if let Err(e) = self.grant_grow(id, super::grant::INITIAL_NR_GRANT_FRAMES) {
            self.domains.remove(&id);
            self.mem.destroy_domain(id);
            return Err(e);
        }
        self.last_domid = id.get();
        Ok(id)
    }

    /// 4.17's id choice: an exact id in 1..0x7FEF, otherwise a rotating search that
    /// starts after the last id handed out.
    fn choose_domid(&self, requested: u16) -> XenResult<DomId> {
        if requested != 0 && requested < DomId::FIRST_RESERVED.get() {
            let id = DomId::new(requested);
            return if self.domains.contains_key(&id) {
                Err(Errno::EEXIST)
            } else {
                Ok(id)
            };
        }
        let span = u32::from(DomId::FIRST_RESERVED.get()) - 1; // ids 1..=0x7FEF
        let mut cand = u32::from(self.last_domid);
        for _ in 0..span {
            cand = cand % span + 1;
            let id = DomId::new(cand as u16);
            if !self.domains.contains_key(&id) {
                return Ok(id);
            }
        }
        Err(Errno::ENOMEM)
    }

    /// Zeroes a fresh shared_info page and masks nothing (Xen starts with every port
    /// unmasked and every vCPU's upcall masked).
    fn init_shared_info(&mut self, mfn: Mfn) {
        if let Ok(page) = self.mem.page_mut_raw(mfn) {
            page.fill(0);
            for v in 0..32 {
                // evtchn_upcall_mask = 1 until the guest enables events.
                page[v * 64 + 1] = 1;
            }
        }
    }

    /// The domain `dom`, or `ESRCH`.
    ///
    /// # Errors
    /// `ESRCH` if no such domain exists.
    pub fn domain(&self, dom: DomId) -> XenResult<&Domain> {
        self.domains.get(&dom).ok_or(Errno::ESRCH)
    }

    /// The domain `dom`, mutably, or `ESRCH`.
    ///
    /// # Errors
    /// `ESRCH` if no such domain exists.
    pub fn domain_mut(&mut self, dom: DomId) -> XenResult<&mut Domain> {
        self.domains.get_mut(&dom).ok_or(Errno::ESRCH)
    }

    /// Ids of every domain, ascending.
    #[must_use]
    pub fn domain_ids(&self) -> Vec<DomId> {
        self.domains.keys().copied().collect()
    }

    /// `XEN_DOMCTL_max_vcpus`: creates the vCPUs. `max` must equal createdomain's value.
    ///
    /// # Errors
    /// `EINVAL` if `max` differs from the domain's `max_vcpus`.
    pub fn set_max_vcpus(&mut self, dom: DomId, max: u32) -> XenResult<()> {
        let d = self.domain_mut(dom)?;
        if max != d.max_vcpus {
            return Err(Errno::EINVAL);
        }
        while (d.vcpus.len() as u32) < max {
            let id = VcpuId::new(d.vcpus.len() as u32);
            d.vcpus.push(Vcpu::new(id));
        }
        Ok(())
    }

    /// `XEN_DOMCTL_pausedomain`: nests.
    ///
    /// # Errors
    /// `ESRCH`; `EINVAL` for the caller itself (dom0) or a dying domain.
    pub fn pause_domain(&mut self, dom: DomId) -> XenResult<()> {
        let d = self.domain_mut(dom)?;
        if d.privileged || d.dying {
            return Err(Errno::EINVAL);
        }
        d.pause_count = d.pause_count.checked_add(1).ok_or(Errno::EOVERFLOW)?;
        Ok(())
    }

    /// `XEN_DOMCTL_unpausedomain`.
    ///
    /// # Errors
    /// `ESRCH`; `EINVAL` if the domain is not paused by the controller, is dom0 or dying.
    pub fn unpause_domain(&mut self, dom: DomId) -> XenResult<()> {
        let d = self.domain_mut(dom)?;
        if d.privileged || d.dying || d.pause_count == 0 {
            return Err(Errno::EINVAL);
        }
        d.pause_count -= 1;
        Ok(())
    }

    /// `XEN_DOMCTL_destroydomain`: closes every event channel, drops every page
    /// reference and frees every frame of the domain. Nothing of it remains.
    ///
    /// # Errors
    /// `ESRCH`; `EINVAL` for dom0.
    pub fn destroy_domain(&mut self, dom: DomId) -> XenResult<()> {
        let d = self.domain_mut(dom)?;
        if d.privileged {
            return Err(Errno::EINVAL);
        }
        d.dying = true;
        self.evtchn_domain_destroy(dom);
        // Page-table roots held by vCPUs go first, then the memory itself.
        let roots: Vec<Mfn> = self.domains[&dom]
            .vcpus
            .iter()
            .flat_map(|v| [v.pv.cr3, v.pv.user_cr3])
            .flatten()
            .collect();
        for r in roots {
            self.mem.put_page_and_type(r);
        }
        let gdt: Vec<Mfn> = self.domains[&dom]
            .vcpus
            .iter()
            .flat_map(held_gdt_frames)
            .collect();
        for g in gdt {
            self.mem.put_page_and_type(g);
        }
        self.mem.destroy_domain(dom);
        self.services_domain_gone(dom);
        self.domains.remove(&dom);
        self.send_global_virq(VIRQ_DOM_EXC);
        Ok(())
    }

    /// Shuts `dom` down with `reason` (`SCHEDOP_shutdown`, `remote_shutdown`): every
    /// vCPU stops, dom0 gets `VIRQ_DOM_EXC`, xenstored fires `@releaseDomain`.
    pub(crate) fn shutdown_domain(&mut self, dom: DomId, reason: u32) {
        let Some(d) = self.domains.get_mut(&dom) else {
            return;
        };
        if d.shutdown.is_some() || d.dying {
            return;
        }
        // A code latched by SCHEDOP_shutdown_code wins (Xen's domain_shutdown).
        let reason = d.shutdown_code.unwrap_or(reason);
        d.shutdown = Some(reason);
        self.send_global_virq(VIRQ_DOM_EXC);
        self.xenstore_domain_changed(dom);
    }

    /// `XEN_DOMCTL_resumedomain`: clears the shutdown state so a suspended domain runs
    /// on (the toolstack sets the suspend hypercall's return value to 1 first for a
    /// cooperative resume, as `xc_domain_resume` does).
    ///
    /// # Errors
    /// `ESRCH`; `EPERM` for dom0.
    pub fn resume_domain(&mut self, dom: DomId) -> XenResult<()> {
        let d = self.domain_mut(dom)?;
        if d.privileged {
            return Err(Errno::EPERM);
        }
        d.shutdown = None;
        d.shutdown_code = None;
        d.suspend_start_info = None;
        // libxl follows resumedomain with XS_RESUME; the model's xenstored takes it from
        // here so its @releaseDomain bookkeeping re-arms.
        if self.xenstore.is_introduced(dom) {
            let _ = self.xenstore.resume(dom);
        }
        Ok(())
    }

    /// Is this vCPU able to run right now (domain unpaused and not shut down, vCPU up
    /// and not blocked)?
    #[must_use]
    pub fn vcpu_runnable(&self, dom: DomId, vcpu: VcpuId) -> bool {
        let Some(d) = self.domains.get(&dom) else {
            return false;
        };
        let Some(v) = d.vcpus.get(vcpu.index()) else {
            return false;
        };
        !d.privileged
            && d.pause_count == 0
            && d.shutdown.is_none()
            && !d.dying
            && v.up
            && v.initialised
            && !v.blocked
            && v.poll.is_none()
    }
}

/// A broken model invariant, naming what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("model invariant violated: {0}")]
pub struct InvariantError(pub String);

impl Model {
    /// Checks every cross-cutting invariant of the host: reference counts equal what
    /// page-table contents, pins and vCPU roots imply; P2M and M2P agree; no frame is
    /// both a table and writable-mapped; every frame is owned by a live domain (or Xen)
    /// or free; event channel pairs are symmetric.
    ///
    /// # Errors
    /// The first violation found.
    pub fn check_invariants(&self) -> Result<(), InvariantError> {
        let mut roots = Vec::new();
        for d in self.domains.values() {
            for v in &d.vcpus {
                roots.extend(Model::vcpu_roots(v));
            }
        }
        let live: Vec<DomId> = self.domains.keys().copied().collect();
        self.mem
            .check_invariants(&roots, &live)
            .map_err(|e| InvariantError(e.to_string()))?;
        self.evtchn_check_invariants().map_err(InvariantError)?;
        for d in self.domains.values() {
            if self.mem.frame(d.shared_info).and_then(|f| f.owner) != Some(d.id) {
                return Err(InvariantError(format!(
                    "{:?}: shared_info {:?} not owned by it",
                    d.id, d.shared_info
                )));
            }
            for &g in &d.grant.frames {
                let f = self.mem.frame(g);
                if f.map(|f| (f.owner, f.kind)) != Some((Some(d.id), mm::FrameKind::XenHeap)) {
                    return Err(InvariantError(format!(
                        "{:?}: grant frame {g:?} is not a Xen-heap page it owns",
                        d.id
                    )));
                }
            }
            if d.grant.frames.len() > d.grant.max_frames.max(1) as usize {
                return Err(InvariantError(format!(
                    "{:?}: {} grant frames, more than max_grant_frames {}",
                    d.id,
                    d.grant.frames.len(),
                    d.grant.max_frames
                )));
            }
            // Every Xen-heap page a live domain owns is its shared_info or one of its
            // grant frames: nothing Xen allocated for it leaks.
            if let Some(dm) = self.mem.doms.get(&d.id) {
                let heap = dm
                    .frames
                    .iter()
                    .filter(|&&m| self.mem.frame(m).map(|f| f.kind) == Some(mm::FrameKind::XenHeap))
                    .count();
                if heap != 1 + d.grant.frames.len() {
                    return Err(InvariantError(format!(
                        "{:?}: owns {heap} Xen-heap pages, expected shared_info + {} grant frames",
                        d.id,
                        d.grant.frames.len()
                    )));
                }
            }
            if d.vcpus.len() > d.max_vcpus as usize {
                return Err(InvariantError(format!(
                    "{:?}: more vCPUs than max_vcpus",
                    d.id
                )));
            }
        }
        Ok(())
    }
}
