//! A model host as the harness drives it: the [`Model`] behind the [`Xen`] trait, plus
//! the console transcript of every domain destroyed through the trait (the model drops
//! a domain's console with the domain; a save destroys its source, and the guest's
//! `suspending` line must not be lost with it).

use std::collections::BTreeMap;

use hypervisor::abi::domctl::{XenDomctl, XEN_DOMCTL_DESTROYDOMAIN};
use hypervisor::abi::mm::{MmuUpdate, MmuextOp};
use hypervisor::abi::sysctl::XenSysctl;
use hypervisor::model::{Model, ModelConfig};
use hypervisor::{DomId, Mfn, Port, Xen, XenError, XsPerm, XsTxId, XsWatchEvent};

/// One simulated host.
#[derive(Debug)]
pub struct Host {
    /// The model.
    pub model: Model,
    /// Console transcripts of domains destroyed through [`Xen::domctl`], by id (a
    /// later domain with the same id appends to nothing here: the entry is taken by
    /// [`Host::take_console_of_destroyed`]).
    graveyard: BTreeMap<DomId, Vec<u8>>,
}

impl Host {
    /// A host with `machine_frames` 4 KiB frames.
    #[must_use]
    pub fn new(machine_frames: u64) -> Host {
        Host {
            model: Model::new(ModelConfig { machine_frames }),
            graveyard: BTreeMap::new(),
        }
    }

    /// The console of a destroyed domain, once.
    pub fn take_console_of_destroyed(&mut self, dom: DomId) -> Option<Vec<u8>> {
        self.graveyard.remove(&dom)
    }
}

impl Xen for Host {
    fn backend_name(&self) -> &'static str {
        Xen::backend_name(&self.model)
    }
    fn xen_version(&mut self, cmd: u32, arg: &mut [u8]) -> Result<i64, XenError> {
        Xen::xen_version(&mut self.model, cmd, arg)
    }
    fn domctl(&mut self, domctl: &mut XenDomctl, buf: &mut [u8]) -> Result<i64, XenError> {
        let dom = DomId::new(domctl.domain);
        let console =
            (domctl.cmd == XEN_DOMCTL_DESTROYDOMAIN).then(|| self.model.console_output(dom));
        let r = Xen::domctl(&mut self.model, domctl, buf);
        if let (Ok(_), Some(c)) = (&r, console) {
            self.graveyard.insert(dom, c);
        }
        r
    }
    fn sysctl(&mut self, sysctl: &mut XenSysctl, buf: &mut [u8]) -> Result<i64, XenError> {
        Xen::sysctl(&mut self.model, sysctl, buf)
    }
    fn memory_op(&mut self, cmd: u32, arg: &mut [u8], buf: &mut [u8]) -> Result<i64, XenError> {
        Xen::memory_op(&mut self.model, cmd, arg, buf)
    }
    fn mmu_update(
        &mut self,
        reqs: &[MmuUpdate],
        done: &mut u32,
        foreigndom: u32,
    ) -> Result<i64, XenError> {
        Xen::mmu_update(&mut self.model, reqs, done, foreigndom)
    }
    fn mmuext_op(
        &mut self,
        ops: &[MmuextOp],
        done: &mut u32,
        foreigndom: u32,
    ) -> Result<i64, XenError> {
        Xen::mmuext_op(&mut self.model, ops, done, foreigndom)
    }
    fn event_channel_op(&mut self, cmd: u32, arg: &mut [u8]) -> Result<i64, XenError> {
        Xen::event_channel_op(&mut self.model, cmd, arg)
    }
    fn foreign_read(
        &mut self,
        dom: DomId,
        mfns: &[Mfn],
        buf: &mut [u8],
        errs: &mut [i32],
    ) -> Result<(), XenError> {
        Xen::foreign_read(&mut self.model, dom, mfns, buf, errs)
    }
    fn foreign_write(
        &mut self,
        dom: DomId,
        mfns: &[Mfn],
        buf: &[u8],
        errs: &mut [i32],
    ) -> Result<(), XenError> {
        Xen::foreign_write(&mut self.model, dom, mfns, buf, errs)
    }
    fn resource_read(
        &mut self,
        dom: DomId,
        type_: u16,
        id: u32,
        frame: u64,
        buf: &mut [u8],
    ) -> Result<(), XenError> {
        Xen::resource_read(&mut self.model, dom, type_, id, frame, buf)
    }
    fn resource_write(
        &mut self,
        dom: DomId,
        type_: u16,
        id: u32,
        frame: u64,
        data: &[u8],
    ) -> Result<(), XenError> {
        Xen::resource_write(&mut self.model, dom, type_, id, frame, data)
    }
    fn evtchn_bind_interdomain(
        &mut self,
        remote: DomId,
        remote_port: Port,
    ) -> Result<Port, XenError> {
        Xen::evtchn_bind_interdomain(&mut self.model, remote, remote_port)
    }
    fn evtchn_bind_unbound_port(&mut self, remote: DomId) -> Result<Port, XenError> {
        Xen::evtchn_bind_unbound_port(&mut self.model, remote)
    }
    fn evtchn_bind_virq(&mut self, virq: u32) -> Result<Port, XenError> {
        Xen::evtchn_bind_virq(&mut self.model, virq)
    }
    fn evtchn_unbind(&mut self, port: Port) -> Result<(), XenError> {
        Xen::evtchn_unbind(&mut self.model, port)
    }
    fn evtchn_notify(&mut self, port: Port) -> Result<(), XenError> {
        Xen::evtchn_notify(&mut self.model, port)
    }
    fn evtchn_wait(&mut self, timeout_ns: u64) -> Result<Option<Port>, XenError> {
        Xen::evtchn_wait(&mut self.model, timeout_ns)
    }
    fn evtchn_unmask(&mut self, port: Port) -> Result<(), XenError> {
        Xen::evtchn_unmask(&mut self.model, port)
    }
    fn xs_read(&mut self, tx: XsTxId, path: &str) -> Result<Vec<u8>, XenError> {
        Xen::xs_read(&mut self.model, tx, path)
    }
    fn xs_write(&mut self, tx: XsTxId, path: &str, value: &[u8]) -> Result<(), XenError> {
        Xen::xs_write(&mut self.model, tx, path, value)
    }
    fn xs_mkdir(&mut self, tx: XsTxId, path: &str) -> Result<(), XenError> {
        Xen::xs_mkdir(&mut self.model, tx, path)
    }
    fn xs_rm(&mut self, tx: XsTxId, path: &str) -> Result<(), XenError> {
        Xen::xs_rm(&mut self.model, tx, path)
    }
    fn xs_directory(&mut self, tx: XsTxId, path: &str) -> Result<Vec<String>, XenError> {
        Xen::xs_directory(&mut self.model, tx, path)
    }
    fn xs_get_perms(&mut self, tx: XsTxId, path: &str) -> Result<Vec<XsPerm>, XenError> {
        Xen::xs_get_perms(&mut self.model, tx, path)
    }
    fn xs_set_perms(&mut self, tx: XsTxId, path: &str, perms: &[XsPerm]) -> Result<(), XenError> {
        Xen::xs_set_perms(&mut self.model, tx, path, perms)
    }
    fn xs_watch(&mut self, path: &str, token: &str) -> Result<(), XenError> {
        Xen::xs_watch(&mut self.model, path, token)
    }
    fn xs_unwatch(&mut self, path: &str, token: &str) -> Result<(), XenError> {
        Xen::xs_unwatch(&mut self.model, path, token)
    }
    fn xs_read_watch(&mut self, timeout_ns: u64) -> Result<Option<XsWatchEvent>, XenError> {
        Xen::xs_read_watch(&mut self.model, timeout_ns)
    }
    fn xs_transaction_start(&mut self) -> Result<XsTxId, XenError> {
        Xen::xs_transaction_start(&mut self.model)
    }
    fn xs_transaction_end(&mut self, tx: XsTxId, commit: bool) -> Result<(), XenError> {
        Xen::xs_transaction_end(&mut self.model, tx, commit)
    }
    fn xs_introduce(&mut self, dom: DomId, mfn: Mfn, port: Port) -> Result<(), XenError> {
        Xen::xs_introduce(&mut self.model, dom, mfn, port)
    }
    fn xs_release(&mut self, dom: DomId) -> Result<(), XenError> {
        Xen::xs_release(&mut self.model, dom)
    }
    fn xs_get_domain_path(&mut self, dom: DomId) -> Result<String, XenError> {
        Xen::xs_get_domain_path(&mut self.model, dom)
    }
}
