//! dom0's in-process services: xenstored and xenconsoled talking to guests over their
//! ring pages and event channels, the toolstack's event channel device, and the
//! scheduler loop that waits (in virtual time) for any of them.

use std::collections::BTreeMap;

use crate::error::{Errno, XenResult};
use crate::model::Model;
use crate::types::{DomId, Mfn, Port, PAGE_SIZE};

/// Which dom0 service owns a dom0 event channel port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Service {
    /// xenstored's end of a domain's store channel.
    Store(DomId),
    /// xenconsoled's end of a domain's console channel.
    Console(DomId),
}

/// dom0 service bookkeeping.
#[derive(Debug, Default)]
pub(crate) struct Services {
    /// dom0 port → service.
    pub(crate) ports: BTreeMap<Port, Service>,
    /// Per domain: (store MFN, dom0 port).
    pub(crate) store: BTreeMap<DomId, (Mfn, Port)>,
    /// Per domain: (console MFN, dom0 port).
    pub(crate) console: BTreeMap<DomId, (Mfn, Port)>,
}

const DOM0: DomId = DomId::DOM0;

impl Model {
    /// xenstore INTRODUCE: xenstored maps the domain's store ring through its grant
    /// entry `GNTTAB_RESERVED_XENSTORE` (4.17 ignores the MFN argument, `_mfn`), binds
    /// to the domain's store port and starts serving the ring.
    pub(crate) fn introduce_domain(&mut self, dom: DomId, _mfn: Mfn, port: Port) -> XenResult<()> {
        let d = self.domain(dom)?;
        if d.privileged {
            return Err(Errno::EINVAL);
        }
        if self.services.store.contains_key(&dom) {
            return Err(Errno::EEXIST);
        }
        let mfn = self.store_grant_frame(dom)?;
        let local = self.evtchn_bind_interdomain(DOM0, dom, port)?;
        if let Err(e) = self.xenstore.introduce(dom, mfn, port) {
            let _ = self.evtchn_close(DOM0, DomId::SELF, local);
            return Err(e);
        }
        self.services.ports.insert(local, Service::Store(dom));
        self.services.store.insert(dom, (mfn, local));
        self.dom0_services();
        Ok(())
    }

    /// xenstore RELEASE: xenstored drops the domain's connection.
    pub(crate) fn release_domain(&mut self, dom: DomId) -> XenResult<()> {
        let Some((_, local)) = self.services.store.remove(&dom) else {
            return Err(Errno::ENOENT);
        };
        self.services.ports.remove(&local);
        let _ = self.evtchn_close(DOM0, DomId::SELF, local);
        if self.xenstore.is_introduced(dom) {
            self.xenstore.release(dom)?;
        }
        Ok(())
    }

    /// Forgets every service binding of a domain that is going away.
    pub(crate) fn services_domain_gone(&mut self, dom: DomId) {
        for map in [&mut self.services.store, &mut self.services.console] {
            if let Some((_, local)) = map.remove(&dom) {
                self.services.ports.remove(&local);
                self.evtchn_dev.bound.remove(&local);
            }
        }
        self.console.detach(dom);
        if self.xenstore.is_introduced(dom) {
            // xenstored notices the domain is gone and drops its connection; it was
            // introduced, so release cannot fail.
            let _ = self.xenstore.release(dom);
        }
    }

    /// xenstored noticed `dom` shut down: it fires `@releaseDomain` (once per shutdown).
    pub(crate) fn xenstore_domain_changed(&mut self, dom: DomId) {
        self.xenstore.domain_shutdown(dom);
        self.xenstore_service();
    }

    /// Runs every dom0 service until none has anything left to do.
    pub(crate) fn dom0_services(&mut self) {
        self.attach_consoles();
        self.collect_dom0_events();
        self.xenstore_service();
        self.console_service();
    }

    /// Attaches xenconsoled to domains whose `console/ring-ref` and `console/port`
    /// nodes exist (as xenconsoled does on `@introduceDomain`).
    fn attach_consoles(&mut self) {
        let doms: Vec<DomId> = self
            .services
            .store
            .keys()
            .copied()
            .filter(|d| !self.services.console.contains_key(d))
            .collect();
        for dom in doms {
            let base = format!("/local/domain/{}/console", dom.get());
            let read = |m: &mut Model, leaf: &str| -> Option<u64> {
                let v = m
                    .xenstore
                    .read(
                        crate::model::xenstore::Conn::Tools,
                        0,
                        &format!("{base}/{leaf}"),
                    )
                    .ok()?;
                std::str::from_utf8(&v).ok()?.trim().parse().ok()
            };
            let (Some(mfn), Some(port)) = (read(self, "ring-ref"), read(self, "port")) else {
                continue;
            };
            let mfn = Mfn::new(mfn);
            if self.mem.frame(mfn).and_then(|f| f.owner) != Some(dom) {
                continue;
            }
            let Ok(port) = u32::try_from(port) else {
                continue;
            };
            let Ok(local) = self.evtchn_bind_interdomain(DOM0, dom, Port::new(port)) else {
                continue;
            };
            self.console.attach(dom, mfn, Port::new(port));
            self.services.ports.insert(local, Service::Console(dom));
            self.services.console.insert(dom, (mfn, local));
        }
    }

    /// Moves pending dom0 ports to their consumers: service ports are serviced,
    /// ports bound through the event channel device are queued (and masked) for it.
    pub(crate) fn collect_dom0_events(&mut self) {
        let ports = self.evtchn_take_pending(DOM0);
        for port in ports {
            match self.services.ports.get(&port) {
                Some(_) => {}
                None if self.evtchn_dev.bound.contains(&port) => {
                    self.evtchn_mask(DOM0, port);
                    self.evtchn_dev.ring.push_back(port);
                }
                None => {}
            }
        }
    }

    /// Serves every introduced domain's xenstore ring once, notifying the guest when
    /// anything moved.
    pub(crate) fn xenstore_service(&mut self) {
        let doms: Vec<(DomId, Mfn, Port)> = self
            .services
            .store
            .iter()
            .map(|(d, (m, p))| (*d, *m, *p))
            .collect();
        for (dom, mfn, local) in doms {
            let Ok(page) = self.mem.page(mfn) else {
                continue;
            };
            let mut copy: [u8; PAGE_SIZE] = *page;
            if self.xenstore.process_ring(dom, &mut copy) {
                // xenstored/xenconsoled write through their mapping of the ring page,
                // which log-dirty sees like any other write.
                let _ = self.mem.guest_write(mfn, 0, &copy);
                let _ = self.evtchn_send(DOM0, local);
            }
        }
    }

    /// Drains every attached console ring.
    pub(crate) fn console_service(&mut self) {
        let doms: Vec<(DomId, Mfn, Port)> = self
            .services
            .console
            .iter()
            .map(|(d, (m, p))| (*d, *m, *p))
            .collect();
        for (dom, mfn, local) in doms {
            let Ok(page) = self.mem.page(mfn) else {
                continue;
            };
            let mut copy: [u8; PAGE_SIZE] = *page;
            if self.console.process_ring(dom, &mut copy) {
                // xenstored/xenconsoled write through their mapping of the ring page,
                // which log-dirty sees like any other write.
                let _ = self.mem.guest_write(mfn, 0, &copy);
                let _ = self.evtchn_send(DOM0, local);
            }
        }
    }

    /// Everything domain `dom` wrote to its console so far.
    #[must_use]
    pub fn console_output(&self, dom: DomId) -> Vec<u8> {
        self.console.output(dom).to_vec()
    }
}

impl Model {
    /// dom0's pending, unmasked ports, lowest first; their pending bits are cleared
    /// (dom0's kernel event loop consumes them and hands them to their owners).
    pub(crate) fn evtchn_take_pending(&mut self, dom: DomId) -> Vec<Port> {
        let Ok(si) = self.domain(dom).map(|d| d.shared_info) else {
            return Vec::new();
        };
        let Ok(page) = self.mem.page_mut_raw(si) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for w in 0..64 {
            let po = PENDING_OFF + w * 8;
            let mo = MASK_OFF + w * 8;
            let pending = u64::from_le_bytes(page[po..po + 8].try_into().expect("8 bytes"));
            let mask = u64::from_le_bytes(page[mo..mo + 8].try_into().expect("8 bytes"));
            let ready = pending & !mask;
            if ready == 0 {
                continue;
            }
            page[po..po + 8].copy_from_slice(&(pending & !ready).to_le_bytes());
            for b in 0..64 {
                if ready & (1 << b) != 0 {
                    out.push(Port::new((w * 64 + b) as u32));
                }
            }
        }
        // dom0's upcall state is consumed along with the ports.
        page[0] = 0;
        page[8..16].fill(0);
        out
    }

    /// Sets the mask bit of `port` in `dom`'s shared_info (what the evtchn device does
    /// to a delivered port until userspace re-enables it).
    pub(crate) fn evtchn_mask(&mut self, dom: DomId, port: Port) {
        let Ok(si) = self.domain(dom).map(|d| d.shared_info) else {
            return;
        };
        let Ok(page) = self.mem.page_mut_raw(si) else {
            return;
        };
        let p = port.index();
        if p >= 4096 {
            return;
        }
        let off = MASK_OFF + (p / 64) * 8;
        let w =
            u64::from_le_bytes(page[off..off + 8].try_into().expect("8 bytes")) | (1 << (p % 64));
        page[off..off + 8].copy_from_slice(&w.to_le_bytes());
    }
}

/// Offset of `evtchn_pending` in shared_info.
const PENDING_OFF: usize = 2048;
/// Offset of `evtchn_mask` in shared_info.
const MASK_OFF: usize = 2560;
