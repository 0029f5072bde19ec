//! A miniature Xen for this crate's execution tests.
//!
//! Written from the ABI documents, independently of `hypervisor::model` (which is
//! being built concurrently): machine memory with 4-level translation, the hypercalls
//! the toy guests make, 2-level event channels, a tiny xenstored and console backend,
//! a round-robin scheduler on virtual time, the domain builder of the image contract
//! (crate docs), and a save/restore that moves every page to a new MFN and checks what
//! a real saver checks (the p2m frame list, no foreign mappings, the start_info MFN in
//! rdx). It runs the guests through the real interpreter (`hypervisor::cpu::run`).
//!
//! Deliberately simpler than Xen where the toy guests cannot tell: page types are
//! "pinned/root or not", no A/D bits, one vCPU per domain.

// Test-only stand-in, to be replaced by runs on the real model + toolstack builder;
// parts of its API are not exercised by every test build.
#![allow(dead_code, clippy::if_same_then_else)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use hypervisor::abi::hypercall as hc;
use hypervisor::abi::mm::{MACH2PHYS_VIRT_START, PTE_PRESENT, PTE_RW, PTE_USER};
use hypervisor::abi::xs_wire as xs;
use hypervisor::cpu::{
    self, gpr, pf_error, Bus, CodePage, DecodeCache, Exit, Fault, Regs, RunLimits,
};

use crate::ToyImage;

const PAGE: usize = 4096;
const ADDR: u64 = 0x000f_ffff_ffff_f000;
const INVALID: u64 = u64::MAX;
const EINVAL: i64 = -22;
const EPERM: i64 = -1;
const ENOENT: i64 = -2;
const EFAULT: i64 = -14;
const EBUSY: i64 = -16;
const EEXIST: i64 = -17;
const ENOSYS: i64 = -38;

/// Machine memory.
#[derive(Default, Clone)]
struct Mem {
    frames: BTreeMap<u64, Box<[u8; PAGE]>>,
    gens: BTreeMap<u64, u64>,
    m2p: BTreeMap<u64, u64>,
}

static ZERO: [u8; PAGE] = [0; PAGE];

impl Mem {
    fn page(&self, mfn: u64) -> &[u8; PAGE] {
        self.frames.get(&mfn).map_or(&ZERO, |b| b)
    }
    fn page_mut(&mut self, mfn: u64) -> &mut [u8; PAGE] {
        *self.gens.entry(mfn).or_insert(0) += 1;
        self.frames
            .entry(mfn)
            .or_insert_with(|| Box::new([0; PAGE]))
    }
    fn rd(&self, mfn: u64, off: usize) -> u64 {
        u64::from_le_bytes(self.page(mfn)[off..off + 8].try_into().unwrap())
    }
    fn wr(&mut self, mfn: u64, off: usize, v: u64) {
        self.page_mut(mfn)[off..off + 8].copy_from_slice(&v.to_le_bytes());
    }
    fn rd32(&self, mfn: u64, off: usize) -> u32 {
        u32::from_le_bytes(self.page(mfn)[off..off + 4].try_into().unwrap())
    }
    fn wr32(&mut self, mfn: u64, off: usize, v: u32) {
        self.page_mut(mfn)[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }

    /// 4-level walk; every level needs P and U/S (the PV kernel runs in ring 3), writes
    /// need RW at every level.
    fn walk(&self, cr3: u64, va: u64, write: bool, fetch: bool) -> Result<u64, Fault> {
        let kind =
            if write { pf_error::WRITE } else { 0 } | if fetch { pf_error::FETCH } else { 0 };
        let mut t = cr3;
        for shift in [39u32, 30, 21, 12] {
            let e = self.rd(t, (((va >> shift) & 511) * 8) as usize);
            if e & PTE_PRESENT == 0 {
                return Err(Fault::pf(va, pf_error::USER | kind));
            }
            if e & PTE_USER == 0 || (write && e & PTE_RW == 0) {
                return Err(Fault::pf(va, pf_error::PRESENT | pf_error::USER | kind));
            }
            t = (e & ADDR) >> 12;
        }
        Ok(t)
    }

    /// Machine address of the L1 entry mapping `va` (L4..L2 must be present).
    fn l1e(&self, cr3: u64, va: u64) -> Option<(u64, usize)> {
        let mut t = cr3;
        for shift in [39u32, 30, 21] {
            let e = self.rd(t, (((va >> shift) & 511) * 8) as usize);
            if e & PTE_PRESENT == 0 {
                return None;
            }
            t = (e & ADDR) >> 12;
        }
        Some((t, (((va >> 12) & 511) * 8) as usize))
    }

    fn m2p_byte(&self, va: u64) -> u8 {
        let off = va - MACH2PHYS_VIRT_START;
        let v = self.m2p.get(&(off / 8)).copied().unwrap_or(INVALID);
        v.to_le_bytes()[(off % 8) as usize]
    }
}

fn is_m2p(va: u64) -> bool {
    (MACH2PHYS_VIRT_START..MACH2PHYS_VIRT_START + (1 << 38)).contains(&va)
}

struct MBus<'a> {
    mem: &'a mut Mem,
    cr3: u64,
}

impl MBus<'_> {
    fn span(
        &mut self,
        va: u64,
        len: usize,
        write: bool,
    ) -> Result<Vec<(u64, usize, usize)>, Fault> {
        let mut out = Vec::new();
        let mut done = 0;
        while done < len {
            let a = va.wrapping_add(done as u64);
            let off = (a & 0xfff) as usize;
            let n = (PAGE - off).min(len - done);
            let mfn = self.mem.walk(self.cr3, a, write, false)?;
            out.push((mfn, off, n));
            done += n;
        }
        Ok(out)
    }
}

impl Bus for MBus<'_> {
    fn fetch_page(&mut self, va: u64) -> Result<CodePage, Fault> {
        let mfn = self.mem.walk(self.cr3, va, false, true)?;
        Ok(CodePage {
            key: mfn,
            gen: self.mem.gens.get(&mfn).copied().unwrap_or(0),
        })
    }
    fn code_bytes(&self, key: u64) -> &[u8; 4096] {
        self.mem.page(key)
    }
    fn code_page_current(&self, page: CodePage) -> bool {
        self.mem.gens.get(&page.key).copied().unwrap_or(0) == page.gen
    }
    fn read(&mut self, va: u64, buf: &mut [u8]) -> Result<(), Fault> {
        if is_m2p(va) {
            for (i, b) in buf.iter_mut().enumerate() {
                *b = self.mem.m2p_byte(va + i as u64);
            }
            return Ok(());
        }
        let mut at = 0;
        for (mfn, off, n) in self.span(va, buf.len(), false)? {
            buf[at..at + n].copy_from_slice(&self.mem.page(mfn)[off..off + n]);
            at += n;
        }
        Ok(())
    }
    fn write(&mut self, va: u64, data: &[u8]) -> Result<(), Fault> {
        if is_m2p(va) {
            return Err(Fault::pf(
                va,
                pf_error::PRESENT | pf_error::WRITE | pf_error::USER,
            ));
        }
        let mut at = 0;
        for (mfn, off, n) in self.span(va, data.len(), true)? {
            self.mem.page_mut(mfn)[off..off + n].copy_from_slice(&data[at..at + n]);
            at += n;
        }
        Ok(())
    }
}

/// What a port is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PortState {
    Unbound { remote: u16 },
    Interdomain { dom: u16, port: u32 },
    Virq(u32),
    Store,
    Console,
}

#[derive(Clone)]
struct Vcpu {
    regs: Regs,
    in_kernel: bool,
    cr3: u64,
    user_cr3: u64,
    kernel_sp: u64,
    traps: BTreeMap<u8, (u8, u64)>,
    event_cb: u64,
    failsafe_cb: u64,
    syscall_cb: u64,
    syscall_masks: bool,
    blocked: bool,
    timer: Option<u64>,
}

/// One domain.
#[derive(Clone)]
pub(crate) struct Dom {
    pub id: u16,
    pub p2m: Vec<u64>,
    shinfo: u64,
    vcpu: Vcpu,
    ports: BTreeMap<u32, PortState>,
    /// Shutdown reason, once shut down.
    pub shutdown: Option<u32>,
    /// rdx of the suspend hypercall.
    pub suspend_rdx: Option<u64>,
    pub paused: bool,
    /// Everything the guest wrote to its console ring.
    pub console: String,
    start_info_pfn: u64,
    store_pfn: u64,
    console_pfn: u64,
    /// Replies / watch events waiting for room in the response ring.
    xs_out: VecDeque<Vec<u8>>,
    /// Pinned tables: mfn → level.
    pinned: BTreeMap<u64, u8>,
    pub insns: u64,
}

/// What the builder made (for tests that look inside).
#[derive(Clone, Copy, Debug)]
pub(crate) struct BuildInfo {
    pub nr_pages: u64,
    pub image_pages: u64,
}

/// A saved domain (the stream a saver would write, as plain data).
#[derive(Clone)]
pub(crate) struct Saved {
    pub pages: Vec<Vec<u8>>,
    table_pfns: BTreeSet<u64>,
    p2m_frame_pfns: Vec<u64>,
    vcpu: Vcpu,
    cr3_pfn: u64,
    user_cr3_pfn: Option<u64>,
    vcpu_info: Vec<u8>,
    start_info_pfn: u64,
    pinned_pfns: BTreeMap<u64, u8>,
    pub console: String,
    old_id: u16,
}

#[derive(Clone)]
struct Node {
    value: Vec<u8>,
    /// (letter, domid); the first is the owner and the default for everyone else.
    perms: Vec<(u8, u16)>,
}

#[derive(Clone)]
struct Watch {
    dom: u16,
    path: String,
    abs: String,
    token: String,
}

/// The mini hypervisor.
#[derive(Clone)]
pub(crate) struct MiniXen {
    mem: Mem,
    pub doms: BTreeMap<u16, Dom>,
    next_mfn: u64,
    next_dom: u16,
    pub now: u64,
    store: BTreeMap<String, Node>,
    watches: Vec<Watch>,
    /// Things that should not happen (unknown hypercalls, bad requests).
    pub log: Vec<String>,
    /// Hypercall numbers each domain made, in order (first occurrence of each).
    pub hypercalls: BTreeMap<u16, Vec<u64>>,
    /// vCPU starts with events unmasked (the harsher case for the guest).
    pub initial_mask: u8,
}

fn rd_u64(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}
fn rd_u32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

impl MiniXen {
    pub(crate) fn new() -> MiniXen {
        MiniXen {
            mem: Mem::default(),
            doms: BTreeMap::new(),
            next_mfn: 0x1000,
            next_dom: 1,
            now: 0,
            store: BTreeMap::new(),
            watches: Vec::new(),
            log: Vec::new(),
            hypercalls: BTreeMap::new(),
            initial_mask: 0,
        }
    }

    fn alloc_mfns(&mut self, n: u64) -> Vec<u64> {
        // Reversed, so PFN order and MFN order differ (catches PFN/MFN mix-ups).
        let base = self.next_mfn;
        self.next_mfn += n + 0x100;
        (0..n).map(|i| base + n - 1 - i).collect()
    }

    // -----------------------------------------------------------------------------
    // Domain builder (the contract in the crate docs).

    /// Builds a domain of `nr_pages` pages from `img`, `cmdline` in start_info.
    pub(crate) fn build(
        &mut self,
        img: &ToyImage,
        nr_pages: u64,
        cmdline: &str,
    ) -> (u16, BuildInfo) {
        let id = self.next_dom;
        self.next_dom += 1;
        let image_pages = img.pages();
        let p2m_pages = (nr_pages * 8).div_ceil(PAGE as u64);
        let p2m_pfn = image_pages;
        let si_pfn = p2m_pfn + p2m_pages;
        let store_pfn = si_pfn + 1;
        let cons_pfn = si_pfn + 2;
        let pt_pfn = si_pfn + 3;
        // Bootstrap region: everything up to the tables and a 4-page stack; tables
        // map it all. VIRT_BASE is 2 MiB aligned: L1 k maps PFNs 512k..512k+511.
        let mut nl1 = 1;
        let boot_end = loop {
            let end = pt_pfn + 3 + nl1 + 4;
            if end.div_ceil(512) <= nl1 {
                break end;
            }
            nl1 += 1;
        };
        assert!(boot_end <= nr_pages, "domain too small for the image");
        let mfns = self.alloc_mfns(nr_pages);
        for (pfn, &m) in mfns.iter().enumerate() {
            self.mem.m2p.insert(m, pfn as u64);
        }
        let shinfo = self.alloc_mfns(1)[0];
        // Image.
        for (i, chunk) in img.bytes.chunks(PAGE).enumerate() {
            self.mem.page_mut(mfns[i])[..chunk.len()].copy_from_slice(chunk);
        }
        // p2m list.
        for (pfn, &m) in mfns.iter().enumerate() {
            let off = pfn * 8;
            self.mem
                .wr(mfns[(p2m_pfn as usize) + off / PAGE], off % PAGE, m);
        }
        // Page tables: L4, L3, L2, L1s.
        let (l4, l3, l2) = (
            mfns[pt_pfn as usize],
            mfns[pt_pfn as usize + 1],
            mfns[pt_pfn as usize + 2],
        );
        let tbl = PTE_PRESENT | PTE_RW | PTE_USER;
        self.mem.wr(l4, 0, (l3 << 12) | tbl);
        self.mem.wr(l3, 0, (l2 << 12) | tbl);
        let first_l2 = (img.virt_base >> 21) as usize;
        let table_pfns: BTreeSet<u64> = (pt_pfn..pt_pfn + 3 + nl1).collect();
        for k in 0..nl1 {
            let l1 = mfns[(pt_pfn + 3 + k) as usize];
            self.mem
                .wr(l2, (first_l2 + k as usize) * 8, (l1 << 12) | tbl);
            for e in 0..512 {
                let pfn = k * 512 + e;
                if pfn >= boot_end {
                    break;
                }
                let rw = if table_pfns.contains(&pfn) { 0 } else { PTE_RW };
                self.mem.wr(
                    l1,
                    (e * 8) as usize,
                    (mfns[pfn as usize] << 12) | PTE_PRESENT | PTE_USER | rw,
                );
            }
        }
        // start_info.
        let si = mfns[si_pfn as usize];
        let va = |pfn: u64| img.virt_base + pfn * PAGE as u64;
        {
            let p = self.mem.page_mut(si);
            p[..14].copy_from_slice(b"xen-3.0-x86_64");
            p[32..40].copy_from_slice(&nr_pages.to_le_bytes());
            p[40..48].copy_from_slice(&(shinfo << 12).to_le_bytes());
            p[56..64].copy_from_slice(&mfns[store_pfn as usize].to_le_bytes());
            p[64..68].copy_from_slice(&1u32.to_le_bytes());
            p[72..80].copy_from_slice(&mfns[cons_pfn as usize].to_le_bytes());
            p[80..84].copy_from_slice(&2u32.to_le_bytes());
            p[88..96].copy_from_slice(&va(pt_pfn).to_le_bytes());
            p[96..104].copy_from_slice(&(3 + nl1).to_le_bytes());
            p[104..112].copy_from_slice(&va(p2m_pfn).to_le_bytes());
            let c = cmdline.as_bytes();
            p[128..128 + c.len()].copy_from_slice(c);
        }
        // Hypercall page, as Xen writes it for 64-bit PV.
        let hp = mfns[((img.hypercall_page - img.virt_base) / PAGE as u64) as usize];
        fill_hypercall_page(self.mem.page_mut(hp));
        self.mem.page_mut(shinfo)[1] = self.initial_mask;
        let mut regs = Regs {
            rip: img.entry,
            cs: 0xe033,
            ss: 0xe02b,
            rflags: 0x202,
            ..Regs::default()
        };
        regs.gpr[gpr::RSI] = va(si_pfn);
        regs.gpr[gpr::RSP] = va(boot_end);
        let mut ports = BTreeMap::new();
        ports.insert(1, PortState::Store);
        ports.insert(2, PortState::Console);
        let dom = Dom {
            id,
            p2m: mfns,
            shinfo,
            vcpu: Vcpu {
                regs,
                in_kernel: true,
                cr3: l4,
                user_cr3: 0,
                kernel_sp: 0,
                traps: BTreeMap::new(),
                event_cb: 0,
                failsafe_cb: 0,
                syscall_cb: 0,
                syscall_masks: false,
                blocked: false,
                timer: None,
            },
            ports,
            shutdown: None,
            suspend_rdx: None,
            paused: false,
            console: String::new(),
            start_info_pfn: si_pfn,
            store_pfn,
            console_pfn: cons_pfn,
            xs_out: VecDeque::new(),
            pinned: [(l4, 4)].into_iter().collect(),
            insns: 0,
        };
        self.doms.insert(id, dom);
        self.introduce(id);
        (
            id,
            BuildInfo {
                nr_pages,
                image_pages,
            },
        )
    }

    /// The xenstore nodes a toolstack creates for a new domain (libxl's set).
    fn introduce(&mut self, id: u16) {
        let home = format!("/local/domain/{id}");
        let own = vec![(b'n', id)];
        for (p, v) in [
            (home.clone(), ""),
            (format!("{home}/domid"), ""),
            (format!("{home}/control"), ""),
            (format!("{home}/control/shutdown"), ""),
            (format!("{home}/control/feature-suspend"), ""),
            (format!("{home}/data"), ""),
        ] {
            self.store.insert(
                p,
                Node {
                    value: v.as_bytes().to_vec(),
                    perms: own.clone(),
                },
            );
        }
        self.store.get_mut(&format!("{home}/domid")).unwrap().value = id.to_string().into_bytes();
        // control/ itself is read-only for the guest in libxl; its children are writable.
        self.store
            .get_mut(&format!("{home}/control"))
            .unwrap()
            .perms = vec![(b'n', 0), (b'r', id)];
    }

    // -----------------------------------------------------------------------------
    // Guest memory helpers.

    fn cur_cr3(&self, d: u16) -> u64 {
        let v = &self.doms[&d].vcpu;
        if v.in_kernel || v.user_cr3 == 0 {
            v.cr3
        } else {
            v.user_cr3
        }
    }

    fn copy_from(&self, d: u16, va: u64, len: usize) -> Result<Vec<u8>, i64> {
        let cr3 = self.cur_cr3(d);
        let mut out = Vec::with_capacity(len);
        let mut done = 0;
        while done < len {
            let a = va + done as u64;
            let off = (a & 0xfff) as usize;
            let n = (PAGE - off).min(len - done);
            if is_m2p(a) {
                return Err(EFAULT);
            }
            let mfn = self.mem.walk(cr3, a, false, false).map_err(|_| EFAULT)?;
            out.extend_from_slice(&self.mem.page(mfn)[off..off + n]);
            done += n;
        }
        Ok(out)
    }

    fn copy_to(&mut self, d: u16, va: u64, data: &[u8]) -> Result<(), i64> {
        let cr3 = self.cur_cr3(d);
        let mut done = 0;
        while done < data.len() {
            let a = va + done as u64;
            let off = (a & 0xfff) as usize;
            let n = (PAGE - off).min(data.len() - done);
            let mfn = self.mem.walk(cr3, a, true, false).map_err(|_| EFAULT)?;
            self.mem.page_mut(mfn)[off..off + n].copy_from_slice(&data[done..done + n]);
            done += n;
        }
        Ok(())
    }

    fn owns(&self, d: u16, mfn: u64) -> bool {
        let dom = &self.doms[&d];
        mfn == dom.shinfo
            || self
                .mem
                .m2p
                .get(&mfn)
                .is_some_and(|&p| dom.p2m.get(p as usize) == Some(&mfn))
    }

    /// Frames used as page tables by `d`: everything reachable from its roots and pins.
    fn table_frames(&self, d: u16) -> BTreeMap<u64, u8> {
        let dom = &self.doms[&d];
        let mut out = BTreeMap::new();
        let mut stack: Vec<(u64, u8)> = Vec::new();
        for r in [dom.vcpu.cr3, dom.vcpu.user_cr3] {
            if r != 0 {
                stack.push((r, 4));
            }
        }
        for (&p, &lvl) in &dom.pinned {
            stack.push((p, lvl));
        }
        while let Some((t, lvl)) = stack.pop() {
            if lvl == 0 || out.insert(t, lvl).is_some() {
                continue;
            }
            if lvl == 1 {
                continue;
            }
            for i in 0..512 {
                if lvl == 4 && (256..272).contains(&i) {
                    continue;
                }
                let e = self.mem.rd(t, i * 8);
                if e & PTE_PRESENT != 0 {
                    stack.push(((e & ADDR) >> 12, lvl - 1));
                }
            }
        }
        out
    }

    fn writable_mapped(&self, d: u16, target: u64) -> bool {
        self.table_frames(d)
            .iter()
            .filter(|(_, &l)| l == 1)
            .any(|(&t, _)| {
                (0..512).any(|i| {
                    let e = self.mem.rd(t, i * 8);
                    e & PTE_PRESENT != 0 && e & PTE_RW != 0 && (e & ADDR) >> 12 == target
                })
            })
    }

    // -----------------------------------------------------------------------------
    // Event channels (2-level).

    fn set_pending(&mut self, d: u16, port: u32) {
        let Some(dom) = self.doms.get(&d) else { return };
        let si = dom.shinfo;
        let (w, b) = ((port / 64) as usize, port % 64);
        let pend = self.mem.rd(si, 2048 + w * 8);
        if pend & (1 << b) != 0 {
            return;
        }
        self.mem.wr(si, 2048 + w * 8, pend | (1 << b));
        let mask = self.mem.rd(si, 2560 + w * 8);
        if mask & (1 << b) == 0 {
            self.mark_sel(d, w);
        }
    }

    fn mark_sel(&mut self, d: u16, w: usize) {
        let si = self.doms[&d].shinfo;
        let sel = self.mem.rd(si, 8);
        if sel & (1 << w) == 0 {
            self.mem.wr(si, 8, sel | (1 << w));
            self.mem.page_mut(si)[0] = 1;
            self.doms.get_mut(&d).unwrap().vcpu.blocked = false;
        }
    }

    fn alloc_port(&mut self, d: u16, st: PortState) -> u32 {
        let dom = self.doms.get_mut(&d).unwrap();
        let p = (1..).find(|p| !dom.ports.contains_key(p)).unwrap();
        dom.ports.insert(p, st);
        p
    }

    fn send(&mut self, d: u16, port: u32) -> i64 {
        match self.doms[&d].ports.get(&port).copied() {
            Some(PortState::Interdomain { dom, port }) => {
                self.set_pending(dom, port);
                0
            }
            Some(PortState::Store) => {
                self.xenstored(d);
                0
            }
            Some(PortState::Console) => {
                self.consoled(d);
                0
            }
            Some(PortState::Unbound { .. }) => 0,
            Some(PortState::Virq(_)) => EINVAL,
            None => EINVAL,
        }
    }

    fn event_channel_op(&mut self, d: u16, cmd: u64, arg: u64) -> i64 {
        let r = |me: &Self, n: usize| me.copy_from(d, arg, n);
        match cmd {
            hypervisor::abi::evtchn::EVTCHNOP_SEND => match r(self, 4) {
                Ok(b) => self.send(d, rd_u32(&b, 0)),
                Err(e) => e,
            },
            hypervisor::abi::evtchn::EVTCHNOP_UNMASK => {
                let Ok(b) = r(self, 4) else { return EFAULT };
                let port = rd_u32(&b, 0);
                if !self.doms[&d].ports.contains_key(&port) {
                    return EINVAL;
                }
                let si = self.doms[&d].shinfo;
                let (w, bit) = ((port / 64) as usize, port % 64);
                let m = self.mem.rd(si, 2560 + w * 8);
                self.mem.wr(si, 2560 + w * 8, m & !(1 << bit));
                if m & (1 << bit) != 0 && self.mem.rd(si, 2048 + w * 8) & (1 << bit) != 0 {
                    self.mark_sel(d, w);
                }
                0
            }
            hypervisor::abi::evtchn::EVTCHNOP_CLOSE => {
                let Ok(b) = r(self, 4) else { return EFAULT };
                let port = rd_u32(&b, 0);
                match self.doms.get_mut(&d).unwrap().ports.remove(&port) {
                    None => EINVAL,
                    Some(PortState::Interdomain { dom, port: rp }) => {
                        if let Some(peer) = self.doms.get_mut(&dom) {
                            peer.ports.insert(rp, PortState::Unbound { remote: d });
                        }
                        0
                    }
                    Some(_) => 0,
                }
            }
            hypervisor::abi::evtchn::EVTCHNOP_BIND_VIRQ => {
                let Ok(b) = r(self, 12) else { return EFAULT };
                let virq = rd_u32(&b, 0);
                if virq != 0 || rd_u32(&b, 4) != 0 {
                    return EINVAL;
                }
                if self.doms[&d]
                    .ports
                    .values()
                    .any(|s| *s == PortState::Virq(0))
                {
                    return EEXIST;
                }
                let p = self.alloc_port(d, PortState::Virq(0));
                match self.copy_to(d, arg + 8, &p.to_le_bytes()) {
                    Ok(()) => 0,
                    Err(e) => e,
                }
            }
            hypervisor::abi::evtchn::EVTCHNOP_ALLOC_UNBOUND => {
                let Ok(b) = r(self, 8) else { return EFAULT };
                let dom = u16::from_le_bytes([b[0], b[1]]);
                let remote = u16::from_le_bytes([b[2], b[3]]);
                if dom != 0x7ff0 && dom != d {
                    return EPERM;
                }
                let remote = if remote == 0x7ff0 { d } else { remote };
                let p = self.alloc_port(d, PortState::Unbound { remote });
                match self.copy_to(d, arg + 4, &p.to_le_bytes()) {
                    Ok(()) => 0,
                    Err(e) => e,
                }
            }
            hypervisor::abi::evtchn::EVTCHNOP_BIND_INTERDOMAIN => {
                let Ok(b) = r(self, 12) else { return EFAULT };
                let rdom = u16::from_le_bytes([b[0], b[1]]);
                let rdom = if rdom == 0x7ff0 { d } else { rdom };
                let rport = rd_u32(&b, 4);
                let ok = self
                    .doms
                    .get(&rdom)
                    .and_then(|x| x.ports.get(&rport))
                    .copied()
                    == Some(PortState::Unbound { remote: d });
                if !ok {
                    return EINVAL;
                }
                let lp = self.alloc_port(
                    d,
                    PortState::Interdomain {
                        dom: rdom,
                        port: rport,
                    },
                );
                self.doms
                    .get_mut(&rdom)
                    .unwrap()
                    .ports
                    .insert(rport, PortState::Interdomain { dom: d, port: lp });
                self.set_pending(d, lp);
                match self.copy_to(d, arg + 8, &lp.to_le_bytes()) {
                    Ok(()) => 0,
                    Err(e) => e,
                }
            }
            _ => {
                self.log
                    .push(format!("dom{d}: event_channel_op {cmd} unsupported"));
                ENOSYS
            }
        }
    }

    // -----------------------------------------------------------------------------
    // Hypercalls.

    fn hypercall(&mut self, d: u16) -> Option<i64> {
        let regs = self.doms[&d].vcpu.regs.clone();
        let nr = regs.gpr[gpr::RAX];
        let a = [
            regs.gpr[gpr::RDI],
            regs.gpr[gpr::RSI],
            regs.gpr[gpr::RDX],
            regs.gpr[gpr::R10],
            regs.gpr[gpr::R8],
        ];
        let seen = self.hypercalls.entry(d).or_default();
        if !seen.contains(&nr) {
            seen.push(nr);
        }
        let r = match nr {
            hc::HYPERVISOR_SET_TRAP_TABLE => {
                let mut i = 0;
                loop {
                    let Ok(e) = self.copy_from(d, a[0] + i * 16, 16) else {
                        break EFAULT;
                    };
                    let addr = rd_u64(&e, 8);
                    if addr == 0 {
                        break 0;
                    }
                    self.doms
                        .get_mut(&d)
                        .unwrap()
                        .vcpu
                        .traps
                        .insert(e[0], (e[1], addr));
                    i += 1;
                }
            }
            hc::HYPERVISOR_SET_CALLBACKS => {
                let v = &mut self.doms.get_mut(&d).unwrap().vcpu;
                (v.event_cb, v.failsafe_cb, v.syscall_cb) = (a[0], a[1], a[2]);
                0
            }
            hc::HYPERVISOR_CALLBACK_OP => match self.copy_from(d, a[1], 16) {
                Err(e) => e,
                Ok(b) if a[0] == hc::CALLBACKOP_REGISTER => {
                    let ty = u32::from(u16::from_le_bytes([b[0], b[1]]));
                    let mask = u16::from_le_bytes([b[2], b[3]]) & hc::CALLBACKF_MASK_EVENTS != 0;
                    let addr = rd_u64(&b, 8);
                    let v = &mut self.doms.get_mut(&d).unwrap().vcpu;
                    match ty {
                        hc::CALLBACKTYPE_EVENT => v.event_cb = addr,
                        hc::CALLBACKTYPE_FAILSAFE => v.failsafe_cb = addr,
                        hc::CALLBACKTYPE_SYSCALL => {
                            v.syscall_cb = addr;
                            v.syscall_masks = mask;
                        }
                        _ => return Some(EINVAL),
                    }
                    0
                }
                Ok(_) => EINVAL,
            },
            hc::HYPERVISOR_STACK_SWITCH => {
                self.doms.get_mut(&d).unwrap().vcpu.kernel_sp = a[1];
                0
            }
            hc::HYPERVISOR_UPDATE_VA_MAPPING => self.update_va_mapping(d, a[0], a[1]),
            hc::HYPERVISOR_MMU_UPDATE => self.mmu_update(d, a[0], a[1], a[2]),
            hc::HYPERVISOR_MMUEXT_OP => self.mmuext_op(d, a[0], a[1], a[2]),
            hc::HYPERVISOR_EVENT_CHANNEL_OP => self.event_channel_op(d, a[0], a[1]),
            hc::HYPERVISOR_SCHED_OP => return self.sched_op(d, a[0], a[1], a[2]),
            hc::HYPERVISOR_VCPU_OP => match a[0] {
                hc::VCPUOP_SET_SINGLESHOT_TIMER if a[1] == 0 => match self.copy_from(d, a[2], 16) {
                    Ok(b) => {
                        self.doms.get_mut(&d).unwrap().vcpu.timer = Some(rd_u64(&b, 0));
                        0
                    }
                    Err(e) => e,
                },
                hc::VCPUOP_STOP_SINGLESHOT_TIMER if a[1] == 0 => {
                    self.doms.get_mut(&d).unwrap().vcpu.timer = None;
                    0
                }
                _ => EINVAL,
            },
            hc::HYPERVISOR_SET_TIMER_OP => {
                self.doms.get_mut(&d).unwrap().vcpu.timer = (a[0] != 0).then_some(a[0]);
                0
            }
            hc::HYPERVISOR_XEN_VERSION => 0x0004_0011,
            hc::HYPERVISOR_IRET => return self.iret(d),
            _ => {
                self.log.push(format!("dom{d}: hypercall {nr} unsupported"));
                ENOSYS
            }
        };
        Some(r)
    }

    fn check_l1e(&self, d: u16, val: u64) -> i64 {
        if val & PTE_PRESENT == 0 {
            return 0;
        }
        let target = (val & ADDR) >> 12;
        if !self.owns(d, target) {
            return EPERM;
        }
        if val & PTE_RW != 0 && self.table_frames(d).contains_key(&target) {
            return EBUSY;
        }
        0
    }

    fn update_va_mapping(&mut self, d: u16, va: u64, val: u64) -> i64 {
        let cr3 = self.cur_cr3(d);
        let Some((l1, off)) = self.mem.l1e(cr3, va) else {
            return EINVAL;
        };
        let r = self.check_l1e(d, val);
        if r != 0 {
            return r;
        }
        self.mem.wr(l1, off, val);
        0
    }

    fn mmu_update(&mut self, d: u16, reqs: u64, count: u64, pdone: u64) -> i64 {
        let tables = self.table_frames(d);
        for i in 0..count {
            let Ok(b) = self.copy_from(d, reqs + i * 16, 16) else {
                return EFAULT;
            };
            let (ptr, val) = (rd_u64(&b, 0), rd_u64(&b, 8));
            if ptr & 3 != 0 {
                return ENOSYS;
            }
            let frame = ptr >> 12;
            let Some(&lvl) = tables.get(&frame) else {
                return EINVAL;
            };
            if lvl == 1 {
                let r = self.check_l1e(d, val);
                if r != 0 {
                    return r;
                }
            }
            self.mem.wr(frame, (ptr & 0xff8) as usize, val);
            if pdone != 0 && self.copy_to(d, pdone, &(i + 1).to_le_bytes()).is_err() {
                return EFAULT;
            }
        }
        0
    }

    fn mmuext_op(&mut self, d: u16, ops: u64, count: u64, pdone: u64) -> i64 {
        for i in 0..count {
            let Ok(b) = self.copy_from(d, ops + i * 24, 24) else {
                return EFAULT;
            };
            let (cmd, mfn) = (rd_u32(&b, 0), rd_u64(&b, 8));
            let r = match cmd {
                0..=3 => {
                    let level = cmd as u8 + 1;
                    if !self.owns(d, mfn) || self.doms[&d].pinned.contains_key(&mfn) {
                        EINVAL
                    } else if self.writable_mapped(d, mfn) {
                        EINVAL
                    } else {
                        self.doms.get_mut(&d).unwrap().pinned.insert(mfn, level);
                        0
                    }
                }
                4 => {
                    if self.doms.get_mut(&d).unwrap().pinned.remove(&mfn).is_some() {
                        0
                    } else {
                        EINVAL
                    }
                }
                5 | 15 => {
                    if !(cmd == 15 && mfn == 0)
                        && (!self.owns(d, mfn) || self.doms[&d].pinned.get(&mfn) != Some(&4))
                    {
                        EINVAL
                    } else {
                        let v = &mut self.doms.get_mut(&d).unwrap().vcpu;
                        if cmd == 5 {
                            v.cr3 = mfn;
                        } else {
                            v.user_cr3 = mfn;
                        }
                        0
                    }
                }
                6 | 7 | 10 | 11 => 0,
                _ => ENOSYS,
            };
            if r != 0 {
                return r;
            }
            if pdone != 0 && self.copy_to(d, pdone, &(i + 1).to_le_bytes()).is_err() {
                return EFAULT;
            }
        }
        0
    }

    fn sched_op(&mut self, d: u16, cmd: u64, arg: u64, rdx: u64) -> Option<i64> {
        match cmd {
            0 => Some(0),
            1 => {
                let si = self.doms[&d].shinfo;
                self.mem.page_mut(si)[1] = 0;
                if self.mem.page(si)[0] == 0 {
                    self.doms.get_mut(&d).unwrap().vcpu.blocked = true;
                }
                Some(0)
            }
            2 => {
                let Ok(b) = self.copy_from(d, arg, 4) else {
                    return Some(EFAULT);
                };
                let reason = rd_u32(&b, 0);
                let dom = self.doms.get_mut(&d).unwrap();
                dom.shutdown = Some(reason);
                if reason == 2 {
                    dom.suspend_rdx = Some(rdx);
                }
                Some(0)
            }
            _ => Some(ENOSYS),
        }
    }

    fn iret(&mut self, d: u16) -> Option<i64> {
        let rsp = self.doms[&d].vcpu.regs.gpr[gpr::RSP];
        let Ok(b) = self.copy_from(d, rsp, 72) else {
            self.crash(d, "iret frame unreadable");
            return None;
        };
        let f: Vec<u64> = (0..9).map(|i| rd_u64(&b, i * 8)).collect();
        let si = self.doms[&d].shinfo;
        let to_user = f[5] & 3 == 3;
        if to_user && self.doms[&d].vcpu.user_cr3 == 0 {
            self.crash(d, "iret to user mode without user page tables");
            return None;
        }
        let v = &mut self.doms.get_mut(&d).unwrap().vcpu;
        v.regs.gpr[gpr::RAX] = f[0];
        if f[3] & (1 << 8) == 0 {
            v.regs.gpr[gpr::R11] = f[1];
            v.regs.gpr[gpr::RCX] = f[2];
        }
        v.regs.rip = f[4];
        v.regs.cs = (f[5] as u16) | 3;
        v.regs.rflags = (f[6] & 0x0dd5) | 0x202;
        v.regs.gpr[gpr::RSP] = f[7];
        v.regs.ss = (f[8] as u16) | 3;
        if to_user {
            v.in_kernel = false;
        }
        self.mem.page_mut(si)[1] = u8::from(f[6] & 0x200 == 0);
        None
    }

    fn crash(&mut self, d: u16, why: &str) {
        self.log.push(format!("dom{d} crashed by minixen: {why}"));
        self.doms.get_mut(&d).unwrap().shutdown = Some(3);
    }

    /// Bounce to `target` with an optional error code (Xen's create_bounce_frame).
    fn bounce(&mut self, d: u16, target: u64, err: Option<u64>, mask: bool) {
        let si = self.doms[&d].shinfo;
        let saved_mask = self.mem.page(si)[1];
        let v = self.doms[&d].vcpu.clone();
        let (mut sp, cs) = if v.in_kernel {
            (v.regs.gpr[gpr::RSP], u64::from(v.regs.cs & !3))
        } else {
            (v.kernel_sp, u64::from(v.regs.cs))
        };
        if !v.in_kernel {
            let vm = &mut self.doms.get_mut(&d).unwrap().vcpu;
            vm.in_kernel = true;
        }
        sp &= !15;
        let rflags = (v.regs.rflags & !0x200) | if saved_mask == 0 { 0x200 } else { 0 };
        let mut words = vec![v.regs.gpr[gpr::RCX], v.regs.gpr[gpr::R11]];
        if let Some(e) = err {
            words.push(e);
        }
        words.extend([
            v.regs.rip,
            cs | (u64::from(saved_mask) << 32),
            rflags,
            v.regs.gpr[gpr::RSP],
            u64::from(v.regs.ss),
        ]);
        sp -= 8 * words.len() as u64;
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        if self.copy_to(d, sp, &bytes).is_err() {
            self.crash(d, "bounce frame not writable");
            return;
        }
        if mask {
            self.mem.page_mut(si)[1] = 1;
        }
        let vm = &mut self.doms.get_mut(&d).unwrap().vcpu;
        vm.regs.gpr[gpr::RSP] = sp;
        vm.regs.rip = target;
        vm.regs.cs = 0xe033;
        vm.regs.ss = 0xe02b;
        vm.regs.rflags &= !0x4_4100;
    }

    fn exception(&mut self, d: u16, f: Fault) {
        let si = self.doms[&d].shinfo;
        if f.vector == 14 {
            self.mem.wr(si, 16, f.cr2.unwrap_or(0));
        }
        let Some(&(flags, addr)) = self.doms[&d].vcpu.traps.get(&f.vector) else {
            let rip = self.doms[&d].vcpu.regs.rip;
            self.crash(
                d,
                &format!("exception {} at {rip:#x} ({f:?}) with no handler", f.vector),
            );
            return;
        };
        self.bounce(d, addr, f.error_code.map(u64::from), flags & 4 != 0);
    }

    // -----------------------------------------------------------------------------
    // Services.

    fn consoled(&mut self, d: u16) {
        let Some(dom) = self.doms.get(&d) else { return };
        let Some(&mfn) = dom.p2m.get(dom.console_pfn as usize) else {
            return;
        };
        let (cons, prod) = (self.mem.rd32(mfn, 3080), self.mem.rd32(mfn, 3084));
        let mut out = Vec::new();
        let mut c = cons;
        while c != prod && prod.wrapping_sub(c) <= 2048 {
            out.push(self.mem.page(mfn)[1024 + (c as usize & 2047)]);
            c = c.wrapping_add(1);
        }
        if c != cons {
            self.mem.wr32(mfn, 3080, c);
            let text = String::from_utf8_lossy(&out).into_owned();
            self.doms.get_mut(&d).unwrap().console.push_str(&text);
        }
    }

    fn store_port(&self, d: u16) -> Option<u32> {
        self.doms[&d]
            .ports
            .iter()
            .find(|(_, s)| **s == PortState::Store)
            .map(|(p, _)| *p)
    }

    fn xenstored(&mut self, d: u16) {
        let Some(dom) = self.doms.get(&d) else { return };
        if dom.shutdown.is_some() {
            return;
        }
        let ring = dom.p2m[dom.store_pfn as usize];
        let mut notify = false;
        loop {
            let (cons, prod) = (self.mem.rd32(ring, 2048), self.mem.rd32(ring, 2052));
            let avail = prod.wrapping_sub(cons) as usize;
            if avail < 16 {
                break;
            }
            let get = |me: &Self, at: u32, n: usize| -> Vec<u8> {
                (0..n)
                    .map(|i| me.mem.page(ring)[(at as usize + i) & 1023])
                    .collect()
            };
            let hdr = get(self, cons, 16);
            let len = rd_u32(&hdr, 12) as usize;
            if avail < 16 + len {
                break;
            }
            let payload = get(self, cons.wrapping_add(16), len);
            self.mem
                .wr32(ring, 2048, cons.wrapping_add(16 + len as u32));
            let (ty, rid, tx) = (rd_u32(&hdr, 0), rd_u32(&hdr, 4), rd_u32(&hdr, 8));
            let (rty, body) = self.xs_handle(d, ty, &payload);
            let mut msg = Vec::new();
            for v in [rty, rid, tx, body.len() as u32] {
                msg.extend_from_slice(&v.to_le_bytes());
            }
            msg.extend_from_slice(&body);
            self.doms.get_mut(&d).unwrap().xs_out.push_back(msg);
            notify = true;
        }
        notify |= self.xs_flush(d);
        if notify {
            if let Some(p) = self.store_port(d) {
                self.set_pending(d, p);
            }
        }
    }

    /// Moves queued messages into the response ring; true if any moved.
    fn xs_flush(&mut self, d: u16) -> bool {
        let dom = &self.doms[&d];
        let ring = dom.p2m[dom.store_pfn as usize];
        let mut moved = false;
        while let Some(m) = self.doms[&d].xs_out.front().cloned() {
            let (cons, prod) = (self.mem.rd32(ring, 2056), self.mem.rd32(ring, 2060));
            if 1024 - (prod.wrapping_sub(cons) as usize) < m.len() {
                break;
            }
            for (i, &b) in m.iter().enumerate() {
                self.mem.page_mut(ring)[1024 + ((prod as usize + i) & 1023)] = b;
            }
            self.mem.wr32(ring, 2060, prod.wrapping_add(m.len() as u32));
            self.doms.get_mut(&d).unwrap().xs_out.pop_front();
            moved = true;
        }
        moved
    }

    fn abs(d: u16, p: &str) -> String {
        if p.starts_with('/') {
            p.to_string()
        } else {
            format!("/local/domain/{d}/{p}")
        }
    }

    fn perm(&self, d: u16, path: &str) -> u8 {
        if d == 0 {
            return b'b';
        }
        let Some(n) = self.store.get(path) else {
            return b'n';
        };
        if n.perms[0].1 == d {
            return b'b';
        }
        n.perms
            .iter()
            .skip(1)
            .find(|(_, id)| *id == d)
            .map_or(n.perms[0].0, |(l, _)| *l)
    }

    fn can_read(&self, d: u16, path: &str) -> bool {
        matches!(self.perm(d, path), b'r' | b'b')
    }

    fn can_write(&self, d: u16, path: &str) -> bool {
        matches!(self.perm(d, path), b'w' | b'b')
    }

    fn xs_handle(&mut self, d: u16, ty: u32, payload: &[u8]) -> (u32, Vec<u8>) {
        let parts: Vec<&[u8]> = payload.split(|&b| b == 0).collect();
        let s =
            |i: usize| String::from_utf8_lossy(parts.get(i).copied().unwrap_or(b"")).into_owned();
        let err = |e: &str| (xs::XS_ERROR, format!("{e}\0").into_bytes());
        match ty {
            xs::XS_READ => {
                let p = Self::abs(d, &s(0));
                match self.store.get(&p) {
                    None => err("ENOENT"),
                    Some(_) if !self.can_read(d, &p) => err("EACCES"),
                    Some(n) => (ty, n.value.clone()),
                }
            }
            xs::XS_WRITE => {
                let nul = payload
                    .iter()
                    .position(|&b| b == 0)
                    .unwrap_or(payload.len());
                let value = payload.get(nul + 1..).unwrap_or(&[]).to_vec();
                let p = Self::abs(d, &s(0));
                if let Err(e) = self.xs_write(d, &p, value) {
                    return err(e);
                }
                (ty, b"OK\0".to_vec())
            }
            xs::XS_WATCH => {
                let path = s(0);
                let w = Watch {
                    dom: d,
                    abs: Self::abs(d, &path),
                    path,
                    token: s(1),
                };
                self.watches.push(w.clone());
                self.fire_one(&w, &w.abs.clone());
                (ty, b"OK\0".to_vec())
            }
            xs::XS_SET_PERMS => {
                let p = Self::abs(d, &s(0));
                let Some(n) = self.store.get(&p) else {
                    return err("ENOENT");
                };
                if d != 0 && n.perms[0].1 != d {
                    return err("EACCES");
                }
                let perms: Vec<(u8, u16)> = parts[1..]
                    .iter()
                    .filter(|x| !x.is_empty())
                    .map(|x| {
                        (
                            x[0],
                            String::from_utf8_lossy(&x[1..]).parse().unwrap_or(u16::MAX),
                        )
                    })
                    .collect();
                if perms.is_empty() {
                    return err("EINVAL");
                }
                self.store.get_mut(&p).unwrap().perms = perms;
                self.fire(&p);
                (ty, b"OK\0".to_vec())
            }
            _ => {
                self.log
                    .push(format!("dom{d}: xenstore message type {ty} unsupported"));
                err("ENOSYS")
            }
        }
    }

    /// Writes `path` on behalf of `d` (0 = the toolstack).
    pub(crate) fn xs_write(
        &mut self,
        d: u16,
        path: &str,
        value: Vec<u8>,
    ) -> Result<(), &'static str> {
        if self.store.contains_key(path) {
            if !self.can_write(d, path) {
                return Err("EACCES");
            }
            self.store.get_mut(path).unwrap().value = value;
        } else {
            let parent = path.rsplit_once('/').map_or("/", |(p, _)| p).to_string();
            let Some(pn) = self.store.get(&parent) else {
                return Err("ENOENT");
            };
            if !self.can_write(d, &parent) {
                return Err("EACCES");
            }
            let mut perms = pn.perms.clone();
            if d != 0 {
                perms[0].1 = d;
            }
            self.store.insert(path.to_string(), Node { value, perms });
        }
        self.fire(path);
        Ok(())
    }

    pub(crate) fn xs_read(&self, path: &str) -> Option<String> {
        self.store
            .get(path)
            .map(|n| String::from_utf8_lossy(&n.value).into_owned())
    }

    fn fire(&mut self, path: &str) {
        for w in self.watches.clone() {
            if path == w.abs || path.starts_with(&format!("{}/", w.abs)) {
                self.fire_one(&w, path);
            }
        }
    }

    fn fire_one(&mut self, w: &Watch, path: &str) {
        if !self.doms.contains_key(&w.dom)
            || (self.store.contains_key(path) && !self.can_read(w.dom, path))
        {
            return;
        }
        let shown = if w.path.starts_with('/') {
            path.to_string()
        } else {
            path.strip_prefix(&format!("/local/domain/{}/", w.dom))
                .unwrap_or(path)
                .to_string()
        };
        let body = format!("{shown}\0{}\0", w.token).into_bytes();
        let mut msg = Vec::new();
        for v in [xs::XS_WATCH_EVENT, 0, 0, body.len() as u32] {
            msg.extend_from_slice(&v.to_le_bytes());
        }
        msg.extend_from_slice(&body);
        let d = w.dom;
        self.doms.get_mut(&d).unwrap().xs_out.push_back(msg);
        if self.xs_flush(d) {
            if let Some(p) = self.store_port(d) {
                self.set_pending(d, p);
            }
        }
    }

    // -----------------------------------------------------------------------------
    // Scheduling.

    fn runnable(&self, d: u16) -> bool {
        let dom = &self.doms[&d];
        dom.shutdown.is_none() && !dom.paused && !dom.vcpu.blocked
    }

    fn update_time(&mut self, d: u16) {
        let si = self.doms[&d].shinfo;
        let now = self.now;
        let ver = self.mem.rd32(si, 32);
        self.mem.wr32(si, 32, ver.wrapping_add(2) & !1);
        self.mem.wr(si, 40, now);
        self.mem.wr(si, 48, now);
        self.mem.wr32(si, 56, 1 << 31);
        self.mem.page_mut(si)[60] = 1;
    }

    fn fire_timers(&mut self) {
        let ids: Vec<u16> = self.doms.keys().copied().collect();
        for d in ids {
            if let Some(t) = self.doms[&d].vcpu.timer {
                if t <= self.now && self.doms[&d].shutdown.is_none() {
                    self.doms.get_mut(&d).unwrap().vcpu.timer = None;
                    let port = self.doms[&d]
                        .ports
                        .iter()
                        .find(|(_, s)| **s == PortState::Virq(0))
                        .map(|(p, _)| *p);
                    if let Some(p) = port {
                        self.set_pending(d, p);
                    }
                }
            }
        }
    }

    /// Runs one slice of `d`.
    fn slice(&mut self, d: u16, budget: u64, cache: &mut DecodeCache) {
        self.update_time(d);
        let mut left = budget;
        while left > 0 && self.runnable(d) {
            // Deliver a pending upcall on the way back to the guest.
            let si = self.doms[&d].shinfo;
            let cb = self.doms[&d].vcpu.event_cb;
            if self.mem.page(si)[0] != 0 && self.mem.page(si)[1] == 0 && cb != 0 {
                self.bounce(d, cb, None, true);
                if !self.runnable(d) {
                    break;
                }
            }
            let cr3 = self.cur_cr3(d);
            let mut regs = self.doms[&d].vcpu.regs.clone();
            let mut bus = MBus {
                mem: &mut self.mem,
                cr3,
            };
            let res = cpu::run(
                &mut regs,
                &mut bus,
                cache,
                RunLimits {
                    budget: left,
                    tsc: self.now,
                    tsc_aux: 0,
                },
            );
            self.now += res.retired;
            left = left.saturating_sub(res.retired.max(1));
            let dom = self.doms.get_mut(&d).unwrap();
            dom.insns += res.retired;
            dom.vcpu.regs = regs;
            match res.exit {
                Exit::Budget => {}
                Exit::Syscall if self.doms[&d].vcpu.in_kernel => {
                    if let Some(r) = self.hypercall(d) {
                        self.doms.get_mut(&d).unwrap().vcpu.regs.gpr[gpr::RAX] = r as u64;
                    }
                }
                Exit::Syscall => {
                    let v = &self.doms[&d].vcpu;
                    let (cb, mask) = (v.syscall_cb, v.syscall_masks);
                    if cb == 0 {
                        self.crash(d, "syscall with no callback");
                    } else {
                        self.bounce(d, cb, None, mask);
                    }
                }
                Exit::Exception(f) => self.exception(d, f),
            }
            self.consoled(d);
            self.fire_timers();
        }
    }

    /// Runs every runnable domain round-robin for up to `budget` instructions in total;
    /// returns the instructions run. Idle time jumps to the next timer.
    pub(crate) fn run(&mut self, budget: u64) -> u64 {
        let mut cache = DecodeCache::new();
        let start: u64 = self.doms.values().map(|d| d.insns).sum();
        let mut spent = 0;
        while spent < budget {
            let ids: Vec<u16> = self.doms.keys().copied().collect();
            let mut any = false;
            for d in ids {
                self.xenstored(d);
                self.consoled(d);
                if self.runnable(d) {
                    any = true;
                    cache.clear();
                    self.slice(d, 10_000.min(budget - spent).max(1), &mut cache);
                    spent = self.doms.values().map(|d| d.insns).sum::<u64>() - start;
                }
            }
            if !any {
                let next = self
                    .doms
                    .values()
                    .filter(|d| d.shutdown.is_none() && !d.paused)
                    .filter_map(|d| d.vcpu.timer)
                    .min();
                match next {
                    Some(t) => {
                        self.now = self.now.max(t);
                        self.fire_timers();
                    }
                    None => break,
                }
            }
        }
        spent
    }

    /// Runs until `pred` holds (checked between rounds) or `budget` runs out.
    pub(crate) fn run_until(
        &mut self,
        budget: u64,
        mut pred: impl FnMut(&MiniXen) -> bool,
    ) -> bool {
        let mut spent = 0;
        while spent < budget {
            if pred(self) {
                return true;
            }
            let n = self.run(20_000);
            if n == 0 && !pred(self) {
                // Everything blocked without timers: nothing will change.
                return false;
            }
            spent += n.max(1);
        }
        pred(self)
    }

    // -----------------------------------------------------------------------------
    // Inspection.

    /// Guest memory of `d` by PFN.
    pub(crate) fn pages(&self, d: u16) -> Vec<Vec<u8>> {
        self.doms[&d]
            .p2m
            .iter()
            .map(|&m| self.mem.page(m).to_vec())
            .collect()
    }

    /// The u64 at `va` of `d` (through its page tables).
    pub(crate) fn peek(&self, d: u16, va: u64) -> u64 {
        self.copy_from(d, va, 8).map_or(u64::MAX, |b| rd_u64(&b, 0))
    }

    /// Shared info arch fields: (max_pfn, frame_list_list).
    fn shinfo_p2m(&self, d: u16) -> (u64, u64) {
        let si = self.doms[&d].shinfo;
        (self.mem.rd(si, 3088), self.mem.rd(si, 3096))
    }

    // -----------------------------------------------------------------------------
    // Suspend, save, restore.

    /// Toolstack: ask `d` to suspend (as libxl does).
    pub(crate) fn request_suspend(&mut self, d: u16) {
        self.xs_write(
            0,
            &format!("/local/domain/{d}/control/shutdown"),
            b"suspend".to_vec(),
        )
        .unwrap();
    }

    /// Fast resume (`xc_domain_resume(fast=1)`): the suspend hypercall returns 1.
    pub(crate) fn resume_fast(&mut self, d: u16) {
        let dom = self.doms.get_mut(&d).unwrap();
        assert_eq!(
            dom.shutdown,
            Some(2),
            "resume of a domain that is not suspended"
        );
        dom.shutdown = None;
        dom.suspend_rdx = None;
        dom.vcpu.regs.gpr[gpr::RAX] = 1;
    }

    /// Saves a suspended domain and destroys it; checks what a saver checks.
    pub(crate) fn save(&mut self, d: u16) -> Result<Saved, String> {
        let dom = self.doms[&d].clone();
        if dom.shutdown != Some(2) {
            return Err(format!("dom{d} is not suspended: {:?}", dom.shutdown));
        }
        let si_mfn = dom.p2m[dom.start_info_pfn as usize];
        if dom.suspend_rdx != Some(si_mfn) {
            return Err(format!(
                "suspend rdx {:?}, start_info mfn {si_mfn:#x}",
                dom.suspend_rdx
            ));
        }
        // The p2m through the guest's frame list list.
        let (max_pfn, fll) = self.shinfo_p2m(d);
        if max_pfn != dom.p2m.len() as u64 || fll == 0 {
            return Err(format!("shared_info p2m: max_pfn {max_pfn}, fll {fll:#x}"));
        }
        let frames = max_pfn.div_ceil(512);
        let mut p2m_frame_pfns = Vec::new();
        for k in 0..frames {
            let fl = self.mem.rd(fll, (k / 512 * 8) as usize);
            let f = self.mem.rd(fl, (k % 512 * 8) as usize);
            let Some(&pfn) = self.mem.m2p.get(&f) else {
                return Err(format!("p2m frame {k}: mfn {f:#x} not the guest's"));
            };
            p2m_frame_pfns.push(pfn);
            for e in 0..512 {
                let pfn = k * 512 + e;
                if pfn < max_pfn && self.mem.rd(f, (e * 8) as usize) != dom.p2m[pfn as usize] {
                    return Err(format!("p2m entry {pfn} wrong through the frame list"));
                }
            }
        }
        // start_info: store/console must hold PFNs now.
        let store = self.mem.rd(si_mfn, 56);
        let cons = self.mem.rd(si_mfn, 72);
        if store != dom.store_pfn || cons != dom.console_pfn {
            return Err(format!(
                "start_info store {store:#x} console {cons:#x}: not the PFNs"
            ));
        }
        // Page tables: normalise, and refuse foreign mappings.
        let tables = self.table_frames(d);
        let mut table_pfns = BTreeSet::new();
        for (&t, &lvl) in &tables {
            let Some(&pfn) = self.mem.m2p.get(&t) else {
                return Err(format!("table mfn {t:#x} not the guest's"));
            };
            table_pfns.insert(pfn);
            for i in 0..512 {
                let e = self.mem.rd(t, i * 8);
                if e & PTE_PRESENT == 0 || (lvl == 4 && (256..272).contains(&i)) {
                    continue;
                }
                let m = (e & ADDR) >> 12;
                if !self
                    .mem
                    .m2p
                    .get(&m)
                    .is_some_and(|&p| dom.p2m.get(p as usize) == Some(&m))
                {
                    return Err(format!("pfn {pfn} entry {i} maps foreign mfn {m:#x}"));
                }
            }
        }
        let mut pages = Vec::new();
        for (pfn, &m) in dom.p2m.iter().enumerate() {
            let mut p = self.mem.page(m).to_vec();
            if table_pfns.contains(&(pfn as u64)) {
                for i in 0..512 {
                    let e = rd_u64(&p, i * 8);
                    if e & PTE_PRESENT != 0 {
                        let mp = self.mem.m2p[&((e & ADDR) >> 12)];
                        p[i * 8..i * 8 + 8]
                            .copy_from_slice(&((e & !ADDR) | (mp << 12)).to_le_bytes());
                    }
                }
            }
            pages.push(p);
        }
        let m2p = |m: u64| self.mem.m2p[&m];
        let saved = Saved {
            pages,
            table_pfns,
            p2m_frame_pfns,
            cr3_pfn: m2p(dom.vcpu.cr3),
            user_cr3_pfn: (dom.vcpu.user_cr3 != 0).then(|| m2p(dom.vcpu.user_cr3)),
            vcpu: dom.vcpu.clone(),
            vcpu_info: self.mem.page(dom.shinfo)[..64].to_vec(),
            start_info_pfn: dom.start_info_pfn,
            pinned_pfns: dom.pinned.iter().map(|(&m, &l)| (m2p(m), l)).collect(),
            console: dom.console.clone(),
            old_id: d,
        };
        self.destroy(d);
        Ok(saved)
    }

    /// Destroys `d` (peers' channels become unbound, its xenstore home goes).
    pub(crate) fn destroy(&mut self, d: u16) {
        let Some(dom) = self.doms.remove(&d) else {
            return;
        };
        for st in dom.ports.values() {
            if let PortState::Interdomain { dom: pd, port } = *st {
                if let Some(peer) = self.doms.get_mut(&pd) {
                    peer.ports.insert(port, PortState::Unbound { remote: d });
                }
            }
        }
        for m in dom.p2m {
            self.mem.m2p.remove(&m);
        }
        let home = format!("/local/domain/{d}");
        let gone: Vec<String> = self
            .store
            .keys()
            .filter(|k| *k == &home || k.starts_with(&format!("{home}/")))
            .cloned()
            .collect();
        for k in gone {
            self.store.remove(&k);
            self.fire(&k);
        }
        self.watches.retain(|w| w.dom != d);
    }

    /// Restores `s` into a new domain (new id, new MFNs, new store/console ports) and
    /// leaves it running.
    pub(crate) fn restore(&mut self, s: &Saved) -> u16 {
        let id = self.next_dom;
        self.next_dom += 1;
        let n = s.pages.len() as u64;
        let mfns = self.alloc_mfns(n);
        for (pfn, &m) in mfns.iter().enumerate() {
            self.mem.m2p.insert(m, pfn as u64);
        }
        let shinfo = self.alloc_mfns(1)[0];
        for (pfn, p) in s.pages.iter().enumerate() {
            let mut p = p.clone();
            if s.table_pfns.contains(&(pfn as u64)) {
                for i in 0..512 {
                    let e = rd_u64(&p, i * 8);
                    if e & PTE_PRESENT != 0 {
                        let m = mfns[((e & ADDR) >> 12) as usize];
                        p[i * 8..i * 8 + 8]
                            .copy_from_slice(&((e & !ADDR) | (m << 12)).to_le_bytes());
                    }
                }
            }
            self.mem.page_mut(mfns[pfn]).copy_from_slice(&p);
        }
        // The guest's p2m, rewritten in place.
        for (k, &fp) in s.p2m_frame_pfns.iter().enumerate() {
            for e in 0..512 {
                let pfn = k * 512 + e;
                if pfn < mfns.len() {
                    self.mem.wr(mfns[fp as usize], e * 8, mfns[pfn]);
                }
            }
        }
        // New ports: deliberately not the old numbers.
        let (store_port, cons_port) = (5u32, 3u32);
        let si = mfns[s.start_info_pfn as usize];
        let store_pfn = self.mem.rd(si, 56);
        let cons_pfn = self.mem.rd(si, 72);
        self.mem.wr(si, 32, n);
        self.mem.wr(si, 40, shinfo << 12);
        self.mem.wr32(si, 48, 0);
        self.mem.wr(si, 56, mfns[store_pfn as usize]);
        self.mem.wr32(si, 64, store_port);
        self.mem.wr(si, 72, mfns[cons_pfn as usize]);
        self.mem.wr32(si, 80, cons_port);
        // shared_info: vcpu_info kept, nothing pending, every port masked.
        {
            let p = self.mem.page_mut(shinfo);
            p[..64].copy_from_slice(&s.vcpu_info);
            p[0] = 0;
            p[8..16].fill(0);
            p[2560..3072].fill(0xff);
        }
        let mut vcpu = s.vcpu.clone();
        vcpu.cr3 = mfns[s.cr3_pfn as usize];
        vcpu.user_cr3 = s.user_cr3_pfn.map_or(0, |p| mfns[p as usize]);
        vcpu.timer = None;
        vcpu.blocked = false;
        let mut ports = BTreeMap::new();
        ports.insert(store_port, PortState::Store);
        ports.insert(cons_port, PortState::Console);
        let dom = Dom {
            id,
            p2m: mfns.clone(),
            shinfo,
            vcpu,
            ports,
            shutdown: None,
            suspend_rdx: None,
            paused: false,
            console: s.console.clone(),
            start_info_pfn: s.start_info_pfn,
            store_pfn,
            console_pfn: cons_pfn,
            xs_out: VecDeque::new(),
            pinned: s
                .pinned_pfns
                .iter()
                .map(|(&p, &l)| (mfns[p as usize], l))
                .collect(),
            insns: 0,
        };
        self.doms.insert(id, dom);
        self.introduce(id);
        let _ = s.old_id;
        id
    }
}

/// Xen's 64-bit PV hypercall page: stub i is `push rcx; push r11; mov $i, eax; syscall;
/// pop r11; pop rcx; ret`; stub 23 (iret) is `push rcx; push r11; push rax; mov $23,
/// eax; syscall` and does not return.
pub(crate) fn fill_hypercall_page(p: &mut [u8; PAGE]) {
    for i in 0..128u32 {
        let s = &mut p[i as usize * 32..i as usize * 32 + 32];
        if u64::from(i) == hc::HYPERVISOR_IRET {
            s[..4].copy_from_slice(&[0x51, 0x41, 0x53, 0x50]);
            s[4] = 0xb8;
            s[5..9].copy_from_slice(&i.to_le_bytes());
            s[9..11].copy_from_slice(&[0x0f, 0x05]);
        } else {
            s[..3].copy_from_slice(&[0x51, 0x41, 0x53]);
            s[3] = 0xb8;
            s[4..8].copy_from_slice(&i.to_le_bytes());
            s[8..14].copy_from_slice(&[0x0f, 0x05, 0x41, 0x5b, 0x59, 0xc3]);
        }
    }
}
