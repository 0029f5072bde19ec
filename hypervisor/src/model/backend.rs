//! `impl Xen for Model`: the toolstack's view of the model, as dom0.
//!
//! Every call is decoded from the same ABI bytes the hw backend would hand to
//! privcmd, then executed with dom0 (privileged) as the caller.

use crate::abi::domctl::XenDomctl;
use crate::abi::mm::{MmuUpdate, MmuextOp};
use crate::abi::sysctl::XenSysctl;
use crate::error::{Errno, XenError};
use crate::model::hypercall::{ArgIo, BufIo};
use crate::model::xenstore::Conn;
use crate::model::Model;
use crate::types::{DomId, Mfn, Port, PAGE_SIZE};
use crate::xen::{Xen, XsPerm, XsTxId, XsWatchEvent};

const DOM0: DomId = DomId::DOM0;

/// Runs a hypercall-shaped op whose `arg` pointer is offset 0 of `arg` and whose
/// secondary buffer (if any) is passed through `BufIo` at offset 0.
fn wrap<T>(op: &'static str, r: Result<T, Errno>) -> Result<T, XenError> {
    r.map_err(|e| XenError::xen(op, e))
}

/// Splits the memory_op arguments: the struct at "address" 0 of one buffer and the
/// extent array at "address" 0 of the other. memory_op structs carry the array's
/// handle, which the model treats as an offset into `buf`.
struct MemOpIo<'a> {
    arg: &'a mut [u8],
    buf: &'a mut [u8],
}

/// Addresses at or above this select `buf` (handles are rewritten to point there).
const BUF_BASE: u64 = 1 << 62;

impl ArgIo for MemOpIo<'_> {
    fn read(&mut self, m: &mut Model, addr: u64, out: &mut [u8]) -> Result<(), Errno> {
        if addr >= BUF_BASE {
            BufIo(self.buf).read(m, addr - BUF_BASE, out)
        } else {
            BufIo(self.arg).read(m, addr, out)
        }
    }
    fn write(&mut self, m: &mut Model, addr: u64, data: &[u8]) -> Result<(), Errno> {
        if addr >= BUF_BASE {
            BufIo(self.buf).write(m, addr - BUF_BASE, data)
        } else {
            BufIo(self.arg).write(m, addr, data)
        }
    }
}

impl Model {
    fn xs(&mut self, r: Result<(), Errno>, op: &'static str) -> Result<(), XenError> {
        self.xenstore_service();
        wrap(op, r)
    }
}

impl Xen for Model {
    fn backend_name(&self) -> &'static str {
        "model"
    }

    fn xen_version(&mut self, cmd: u32, arg: &mut [u8]) -> Result<i64, XenError> {
        wrap(
            "xen_version",
            self.xen_version_io(&mut BufIo(arg), u64::from(cmd), 0),
        )
    }

    fn domctl(&mut self, domctl: &mut XenDomctl, buf: &mut [u8]) -> Result<i64, XenError> {
        let mut work = *domctl;
        let r = self.do_domctl(DOM0, &mut work, buf);
        if r.is_ok() {
            *domctl = work;
        }
        wrap("domctl", r)
    }

    fn sysctl(&mut self, sysctl: &mut XenSysctl, buf: &mut [u8]) -> Result<i64, XenError> {
        let mut work = *sysctl;
        let r = self.do_sysctl(DOM0, &mut work, buf);
        if r.is_ok() {
            *sysctl = work;
        }
        wrap("sysctl", r)
    }

    fn memory_op(&mut self, cmd: u32, arg: &mut [u8], buf: &mut [u8]) -> Result<i64, XenError> {
        use crate::abi::memory as xm;
        // Point the struct's handle at `buf`.
        let op = u64::from(cmd) & xm::MEMOP_CMD_MASK;
        let handle_off = match op {
            xm::XENMEM_INCREASE_RESERVATION
            | xm::XENMEM_DECREASE_RESERVATION
            | xm::XENMEM_POPULATE_PHYSMAP => Some(0usize),
            xm::XENMEM_MACHPHYS_MFN_LIST => Some(8usize),
            _ => None,
        };
        if let Some(off) = handle_off {
            let slot = arg
                .get_mut(off..off + 8)
                .ok_or_else(|| XenError::xen("memory_op", Errno::EFAULT))?;
            slot.copy_from_slice(&BUF_BASE.to_le_bytes());
        }
        let r = self.memory_op_io(
            DOM0,
            &mut MemOpIo {
                arg: &mut *arg,
                buf,
            },
            u64::from(cmd),
            0,
        );
        if let Some(off) = handle_off {
            arg[off..off + 8].copy_from_slice(&0u64.to_le_bytes());
        }
        wrap("memory_op", r)
    }

    fn mmu_update(
        &mut self,
        reqs: &[MmuUpdate],
        done: &mut u32,
        foreigndom: u32,
    ) -> Result<i64, XenError> {
        *done = 0;
        wrap(
            "mmu_update",
            self.mem
                .mmu_update(DOM0, true, reqs, foreigndom, done)
                .map(|()| 0),
        )
    }

    fn mmuext_op(
        &mut self,
        ops: &[MmuextOp],
        done: &mut u32,
        foreigndom: u32,
    ) -> Result<i64, XenError> {
        *done = 0;
        wrap(
            "mmuext_op",
            self.mmuext_ops(DOM0, None, ops, foreigndom, done)
                .map(|()| 0),
        )
    }

    fn event_channel_op(&mut self, cmd: u32, arg: &mut [u8]) -> Result<i64, XenError> {
        let r = self.event_channel_op_io(DOM0, &mut BufIo(arg), u64::from(cmd), 0);
        wrap("event_channel_op", r)
    }

    fn foreign_read(
        &mut self,
        dom: DomId,
        mfns: &[Mfn],
        buf: &mut [u8],
        errs: &mut [i32],
    ) -> Result<(), XenError> {
        check_batch("foreign_read", mfns.len(), buf.len(), errs.len())?;
        for (i, &mfn) in mfns.iter().enumerate() {
            let page = &mut buf[i * PAGE_SIZE..(i + 1) * PAGE_SIZE];
            errs[i] = match self
                .mem
                .foreign_read_check(dom, mfn)
                .and_then(|()| self.mem.page(mfn))
            {
                Ok(p) => {
                    page.copy_from_slice(p);
                    0
                }
                Err(e) => {
                    page.fill(0);
                    -e.0
                }
            };
        }
        Ok(())
    }

    fn foreign_write(
        &mut self,
        dom: DomId,
        mfns: &[Mfn],
        buf: &[u8],
        errs: &mut [i32],
    ) -> Result<(), XenError> {
        check_batch("foreign_write", mfns.len(), buf.len(), errs.len())?;
        for (i, &mfn) in mfns.iter().enumerate() {
            let page = &buf[i * PAGE_SIZE..(i + 1) * PAGE_SIZE];
            errs[i] = match self
                .mem
                .foreign_write_check(dom, mfn)
                .and_then(|()| self.mem.guest_write(mfn, 0, page))
            {
                Ok(()) => 0,
                Err(e) => -e.0,
            };
        }
        Ok(())
    }

    fn resource_read(
        &mut self,
        dom: DomId,
        type_: u16,
        id: u32,
        frame: u64,
        buf: &mut [u8],
    ) -> Result<(), XenError> {
        const OP: &str = "privcmd mmap_resource";
        let nr = crate::xen::resource_frames(OP, buf.len())?;
        let mfns = wrap(OP, self.acquire_resource(dom, type_, id, frame, nr))?;
        for (chunk, &mfn) in buf.chunks_exact_mut(PAGE_SIZE).zip(&mfns) {
            chunk.copy_from_slice(&wrap(OP, self.mem.page(mfn))?[..]);
        }
        Ok(())
    }

    fn resource_write(
        &mut self,
        dom: DomId,
        type_: u16,
        id: u32,
        frame: u64,
        data: &[u8],
    ) -> Result<(), XenError> {
        const OP: &str = "privcmd mmap_resource";
        let nr = crate::xen::resource_frames(OP, data.len())?;
        let mfns = wrap(OP, self.acquire_resource(dom, type_, id, frame, nr))?;
        for (chunk, &mfn) in data.chunks_exact(PAGE_SIZE).zip(&mfns) {
            wrap(OP, self.mem.guest_write(mfn, 0, chunk))?;
        }
        Ok(())
    }

    fn evtchn_bind_interdomain(
        &mut self,
        remote: DomId,
        remote_port: Port,
    ) -> Result<Port, XenError> {
        let p = wrap(
            "evtchn bind_interdomain",
            self.evtchn_bind_interdomain(DOM0, remote, remote_port),
        )?;
        self.evtchn_dev.bound.insert(p);
        Ok(p)
    }

    fn evtchn_bind_unbound_port(&mut self, remote: DomId) -> Result<Port, XenError> {
        let p = wrap(
            "evtchn bind_unbound_port",
            self.evtchn_alloc_unbound(DOM0, DomId::SELF, remote),
        )?;
        self.evtchn_dev.bound.insert(p);
        Ok(p)
    }

    fn evtchn_bind_virq(&mut self, virq: u32) -> Result<Port, XenError> {
        let p = wrap(
            "evtchn bind_virq",
            self.evtchn_bind_virq(DOM0, virq, crate::types::VcpuId::new(0)),
        )?;
        self.evtchn_dev.bound.insert(p);
        Ok(p)
    }

    fn evtchn_unbind(&mut self, port: Port) -> Result<(), XenError> {
        if !self.evtchn_dev.bound.remove(&port) {
            return Err(XenError::xen("evtchn unbind", Errno::ENOTCONN));
        }
        self.evtchn_dev.ring.retain(|&p| p != port);
        wrap("evtchn unbind", self.evtchn_close(DOM0, DomId::SELF, port))
    }

    fn evtchn_notify(&mut self, port: Port) -> Result<(), XenError> {
        if !self.evtchn_dev.bound.contains(&port) {
            return Err(XenError::xen("evtchn notify", Errno::ENOTCONN));
        }
        let r = self.evtchn_send(DOM0, port);
        self.dom0_services();
        wrap("evtchn notify", r)
    }

    fn evtchn_wait(&mut self, timeout_ns: u64) -> Result<Option<Port>, XenError> {
        let deadline = self.time.now_ns.saturating_add(timeout_ns);
        loop {
            self.collect_dom0_events();
            if let Some(p) = self.evtchn_dev.ring.pop_front() {
                return Ok(Some(p));
            }
            if self.time.now_ns >= deadline || !self.run_until(deadline) {
                return Ok(None);
            }
        }
    }

    fn evtchn_unmask(&mut self, port: Port) -> Result<(), XenError> {
        if !self.evtchn_dev.bound.contains(&port) {
            return Err(XenError::xen("evtchn unmask", Errno::ENOTCONN));
        }
        wrap("evtchn unmask", self.evtchn_unmask(DOM0, port))
    }

    fn xs_read(&mut self, tx: XsTxId, path: &str) -> Result<Vec<u8>, XenError> {
        wrap("xs read", self.xenstore.read(Conn::Tools, tx, path))
    }

    fn xs_write(&mut self, tx: XsTxId, path: &str, value: &[u8]) -> Result<(), XenError> {
        let r = self.xenstore.write(Conn::Tools, tx, path, value);
        self.xs(r, "xs write")
    }

    fn xs_mkdir(&mut self, tx: XsTxId, path: &str) -> Result<(), XenError> {
        let r = self.xenstore.mkdir(Conn::Tools, tx, path);
        self.xs(r, "xs mkdir")
    }

    fn xs_rm(&mut self, tx: XsTxId, path: &str) -> Result<(), XenError> {
        let r = self.xenstore.rm(Conn::Tools, tx, path);
        self.xs(r, "xs rm")
    }

    fn xs_directory(&mut self, tx: XsTxId, path: &str) -> Result<Vec<String>, XenError> {
        wrap(
            "xs directory",
            self.xenstore.directory(Conn::Tools, tx, path),
        )
    }

    fn xs_get_perms(&mut self, tx: XsTxId, path: &str) -> Result<Vec<XsPerm>, XenError> {
        wrap(
            "xs get_perms",
            self.xenstore.get_perms(Conn::Tools, tx, path),
        )
    }

    fn xs_set_perms(&mut self, tx: XsTxId, path: &str, perms: &[XsPerm]) -> Result<(), XenError> {
        let r = self.xenstore.set_perms(Conn::Tools, tx, path, perms);
        self.xs(r, "xs set_perms")
    }

    fn xs_watch(&mut self, path: &str, token: &str) -> Result<(), XenError> {
        wrap("xs watch", self.xenstore.watch(Conn::Tools, path, token))
    }

    fn xs_unwatch(&mut self, path: &str, token: &str) -> Result<(), XenError> {
        wrap(
            "xs unwatch",
            self.xenstore.unwatch(Conn::Tools, path, token),
        )
    }

    fn xs_read_watch(&mut self, timeout_ns: u64) -> Result<Option<XsWatchEvent>, XenError> {
        let deadline = self.time.now_ns.saturating_add(timeout_ns);
        loop {
            self.xenstore_service();
            if let Some(e) = self.tools_watch_events.pop_front() {
                return Ok(Some(e));
            }
            let mut fresh = self.xenstore.take_watch_events(Conn::Tools);
            if !fresh.is_empty() {
                let first = fresh.remove(0);
                self.tools_watch_events.extend(fresh);
                return Ok(Some(first));
            }
            if self.time.now_ns >= deadline || !self.run_until(deadline) {
                return Ok(None);
            }
        }
    }

    fn xs_transaction_start(&mut self) -> Result<XsTxId, XenError> {
        wrap(
            "xs transaction_start",
            self.xenstore.transaction_start(Conn::Tools),
        )
    }

    fn xs_transaction_end(&mut self, tx: XsTxId, commit: bool) -> Result<(), XenError> {
        let r = self.xenstore.transaction_end(Conn::Tools, tx, commit);
        self.xs(r, "xs transaction_end")
    }

    fn xs_introduce(&mut self, dom: DomId, mfn: Mfn, port: Port) -> Result<(), XenError> {
        wrap("xs introduce", self.introduce_domain(dom, mfn, port))
    }

    fn xs_release(&mut self, dom: DomId) -> Result<(), XenError> {
        let r = self.release_domain(dom);
        self.xs(r, "xs release")
    }

    fn xs_get_domain_path(&mut self, dom: DomId) -> Result<String, XenError> {
        Ok(self.xenstore.get_domain_path(dom))
    }
}

fn check_batch(op: &'static str, n: usize, buf: usize, errs: usize) -> Result<(), XenError> {
    if buf != n * PAGE_SIZE || errs != n {
        return Err(XenError::BadArgument {
            op,
            what: format!("{n} frames need a {}-byte buffer and {n} error slots, got {buf} bytes and {errs} slots", n * PAGE_SIZE),
        });
    }
    Ok(())
}
