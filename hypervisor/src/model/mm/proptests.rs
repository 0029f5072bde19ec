//! A hand-rolled proptest state machine over machine memory: random sequences of mm
//! operations from scripted guests (dom1, dom2) and from the privileged toolstack
//! (dom0) — populate, map/remap/unmap through mmu_update, pin/unpin at every level,
//! update_va_mapping, MACHPHYS updates, decrease_reservation, CR3 roots taken and
//! dropped, stores through the walker, log-dirty, destroy — with
//! [`Memory::check_invariants`] after every step.
//!
//! The hostile-guest operations aim at the rules: a writable mapping of the guest's own
//! page tables (by mmu_update, update_va_mapping, or the toolstack), mapping another
//! domain's frame, writing Xen's L4 slots, nested pins, pins of the wrong type, RW
//! linear self-maps, PSE, MACHPHYS on a foreign frame, unpinning what is not pinned.
//! Each one is only attempted when the current state makes it an attack, and must fail
//! with the errno Xen gives, leaving the entry untouched.

use proptest::prelude::*;

use super::testutil::*;
use super::{Memory, PageType};
use crate::abi::mm::{
    MmuUpdate, MMU_MACHPHYS_UPDATE, PTE_ACCESSED, PTE_DIRTY, PTE_GLOBAL, PTE_NX, PTE_PCD,
    PTE_PRESENT, PTE_PSE, PTE_RW, PTE_USER,
};
use crate::error::Errno;
use crate::model::walk::{self, Access};
use crate::types::{DomId, Mfn, Pfn};

#[derive(Clone, Debug)]
enum Op {
    Populate {
        dom: u8,
        n: u8,
    },
    Decrease {
        dom: u8,
        pick: u16,
    },
    MapPte {
        by_tool: bool,
        dom: u8,
        table: u16,
        slot: u16,
        target: Target,
        flags: u8,
        preserve_ad: bool,
    },
    Unmap {
        dom: u8,
        table: u16,
        slot: u16,
    },
    Pin {
        by_tool: bool,
        dom: u8,
        pick: u16,
        level: u8,
    },
    Unpin {
        by_tool: bool,
        dom: u8,
        pick: u16,
    },
    UpdateVa {
        dom: u8,
        page: u8,
        target: Target,
        flags: u8,
    },
    Machphys {
        dom: u8,
        pick: u16,
        pfn: u16,
    },
    TakeRoot {
        dom: u8,
        pick: u16,
    },
    DropRoot {
        pick: u16,
    },
    Store {
        dom: u8,
        page: u8,
        off: u16,
        user: bool,
    },
    Fetch {
        dom: u8,
        page: u8,
        user: bool,
    },
    ClearCopy {
        dom: u8,
        a: u16,
        b: u16,
        copy: bool,
    },
    LogDirty {
        dom: u8,
        action: u8,
    },
    ForeignWrite {
        dom: u8,
        pick: u16,
    },
    Destroy {
        dom: u8,
    },
    NewSpace {
        dom: u8,
        by_tool: bool,
    },
    Hostile {
        dom: u8,
        kind: u8,
        a: u16,
        b: u16,
    },
}

/// Which frame a new entry names.
#[derive(Clone, Copy, Debug)]
enum Target {
    Own(u16),
    /// A frame of the domain whose type fits the table being written (the next lower
    /// table level; for an L1, a frame that may be mapped writable).
    Fit(u16),
    /// A frame of the domain nobody holds a type reference on.
    Untyped(u16),
    Other(u16),
    Xen(u16),
    Raw(u32),
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        4 => any::<u16>().prop_map(Target::Own),
        4 => any::<u16>().prop_map(Target::Fit),
        2 => any::<u16>().prop_map(Target::Untyped),
        1 => any::<u16>().prop_map(Target::Other),
        1 => any::<u16>().prop_map(Target::Xen),
        1 => any::<u32>().prop_map(Target::Raw),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let d = 0u8..2;
    prop_oneof![
        2 => (d.clone(), 1u8..4).prop_map(|(dom, n)| Op::Populate { dom, n }),
        1 => (d.clone(), any::<u16>()).prop_map(|(dom, pick)| Op::Decrease { dom, pick }),
        8 => (any::<bool>(), d.clone(), any::<u16>(), 0u16..512, target(), any::<u8>(), any::<bool>())
            .prop_map(|(by_tool, dom, table, slot, target, flags, preserve_ad)| Op::MapPte {
                by_tool: by_tool && slot % 4 == 0,
                dom,
                table,
                slot,
                target,
                flags,
                preserve_ad,
            }),
        3 => (d.clone(), any::<u16>(), 0u16..512).prop_map(|(dom, table, slot)| Op::Unmap { dom, table, slot }),
        4 => (any::<bool>(), d.clone(), any::<u16>(), 1u8..5)
            .prop_map(|(by_tool, dom, pick, level)| Op::Pin { by_tool, dom, pick, level }),
        3 => (any::<bool>(), d.clone(), any::<u16>()).prop_map(|(by_tool, dom, pick)| Op::Unpin { by_tool, dom, pick }),
        3 => (d.clone(), any::<u8>(), target(), any::<u8>())
            .prop_map(|(dom, page, target, flags)| Op::UpdateVa { dom, page, target, flags }),
        1 => (d.clone(), any::<u16>(), any::<u16>()).prop_map(|(dom, pick, pfn)| Op::Machphys { dom, pick, pfn }),
        2 => (d.clone(), any::<u16>()).prop_map(|(dom, pick)| Op::TakeRoot { dom, pick }),
        1 => any::<u16>().prop_map(|pick| Op::DropRoot { pick }),
        3 => (d.clone(), any::<u8>(), any::<u16>(), any::<bool>())
            .prop_map(|(dom, page, off, user)| Op::Store { dom, page, off, user }),
        1 => (d.clone(), any::<u8>(), any::<bool>()).prop_map(|(dom, page, user)| Op::Fetch { dom, page, user }),
        1 => (d.clone(), any::<u16>(), any::<u16>(), any::<bool>())
            .prop_map(|(dom, a, b, copy)| Op::ClearCopy { dom, a, b, copy }),
        1 => (d.clone(), 0u8..4).prop_map(|(dom, action)| Op::LogDirty { dom, action }),
        1 => (d.clone(), any::<u16>()).prop_map(|(dom, pick)| Op::ForeignWrite { dom, pick }),
        1 => d.clone().prop_map(|dom| Op::Destroy { dom }),
        1 => (d.clone(), any::<bool>()).prop_map(|(dom, by_tool)| Op::NewSpace { dom, by_tool }),
        6 => (d, 0u8..12, any::<u16>(), any::<u16>()).prop_map(|(dom, kind, a, b)| Op::Hostile { dom, kind, a, b }),
    ]
}

/// Flags of a random entry: mostly sane, sometimes with bits Xen refuses.
fn flags(f: u8) -> u64 {
    let mut v = PTE_PRESENT;
    if f & 1 != 0 {
        v |= PTE_RW;
    }
    if f & 2 != 0 {
        v |= PTE_USER;
    }
    if f & 4 != 0 {
        v |= PTE_ACCESSED | PTE_DIRTY;
    }
    if f & 8 != 0 {
        v |= PTE_NX;
    }
    match f >> 4 {
        0 => v &= !PTE_PRESENT,
        1 => v |= PTE_PSE,
        2 => v |= PTE_PCD,
        3 => v |= PTE_GLOBAL,
        _ => {}
    }
    v
}

struct Sut {
    m: Memory,
    /// Guest id slot → current domain id (a destroyed guest comes back as a new id).
    ids: [DomId; 2],
    next_id: u16,
    /// The initial address space of each guest slot and of the toolstack.
    spaces: [Space; 2],
    tool: Space,
    /// CR3-like references the "model" holds.
    roots: Vec<(Mfn, PageType)>,
    next_pfn: u64,
}

fn pick<T: Copy>(v: &[T], k: u16) -> Option<T> {
    (!v.is_empty()).then(|| v[k as usize % v.len()])
}

impl Sut {
    fn new() -> Sut {
        let mut m = machine();
        let tool = pinned_space(&mut m, D0, 0, 2);
        let s1 = pinned_space(&mut m, D1, 0, 6);
        let s2 = pinned_space(&mut m, D2, 0, 6);
        Sut {
            m,
            ids: [D1, D2],
            next_id: 3,
            spaces: [s1, s2],
            tool,
            roots: Vec::new(),
            next_pfn: 100,
        }
    }

    fn live(&self) -> Vec<DomId> {
        let mut v = vec![D0];
        v.extend(
            self.ids
                .iter()
                .copied()
                .filter(|&d| self.m.domain_exists(d)),
        );
        v
    }

    fn frames(&self, dom: DomId) -> Vec<Mfn> {
        self.m.domain_frames(dom).collect()
    }

    fn frames_where(&self, dom: DomId, f: impl Fn(&super::FrameInfo) -> bool) -> Vec<Mfn> {
        self.m
            .domain_frames(dom)
            .filter(|&x| f(self.m.frame(x).unwrap()))
            .collect()
    }

    /// `cr3` is a validated L4 of `dom` (what a running vCPU's CR3 always is).
    fn rooted(&self, dom: DomId, cr3: Mfn) -> bool {
        self.m.frame(cr3).is_some_and(|f| {
            f.owner == Some(dom) && f.ty == PageType::L4 && f.validated && f.type_count > 0
        })
    }

    fn resolve(&self, dom: DomId, t: Target, level: u32) -> Mfn {
        let other = self.ids.iter().copied().find(|&d| d != dom).unwrap_or(D0);
        match t {
            Target::Own(k) => pick(&self.frames(dom), k).unwrap_or(Mfn::new(0)),
            Target::Fit(k) => {
                let want = PageType::from_level(level.saturating_sub(1));
                let fit = self.frames_where(dom, |f| match want {
                    Some(ty) => f.ty == ty && f.validated,
                    None => f.ty == PageType::Writable || f.type_count == 0,
                });
                pick(&fit, k).unwrap_or(Mfn::new(0))
            }
            Target::Untyped(k) => {
                pick(&self.frames_where(dom, |f| f.type_count == 0), k).unwrap_or(Mfn::new(0))
            }
            Target::Other(k) => pick(&self.frames(other), k).unwrap_or(Mfn::new(1)),
            Target::Xen(k) => Mfn::new(u64::from(k) % 2048),
            Target::Raw(r) => Mfn::new(u64::from(r)),
        }
    }

    fn step(&mut self, op: &Op) -> Result<(), String> {
        match *op {
            Op::Populate { dom, n } => {
                let d = self.ids[dom as usize];
                let mut v: Vec<u64> = (self.next_pfn..self.next_pfn + u64::from(n)).collect();
                self.next_pfn += u64::from(n);
                let _ = self.m.populate_physmap(d, &mut v, 0);
            }
            Op::Decrease { dom, pick: k } => {
                let d = self.ids[dom as usize];
                if let Some(f) = pick(&self.frames(d), k) {
                    let _ = self.m.decrease_reservation(d, &[f.get()], 0);
                }
            }
            Op::MapPte {
                by_tool,
                dom,
                table,
                slot,
                target,
                flags: fl,
                preserve_ad,
            } => {
                let d = self.ids[dom as usize];
                // Half the time aim at a table in use, else at any frame.
                let pool = if table & 1 == 0 {
                    self.frames_where(d, |f| f.ty.is_pagetable() && f.validated)
                } else {
                    self.frames(d)
                };
                let Some(t) = pick(&pool, table >> 1) else {
                    return Ok(());
                };
                let level = self.m.frame(t).unwrap().ty.level();
                let val = pte(self.resolve(d, target, level), flags(fl));
                let cmd = if preserve_ad { 2 } else { 0 };
                if by_tool {
                    // The domain builder's path: dom0 edits the guest's tables.
                    let fd = (u32::from(d.get()) + 1) << 16 | u32::from(d.get());
                    let _ = upd_cmd(&mut self.m, D0, true, t, slot as usize, val, cmd, fd);
                } else {
                    let _ = upd_cmd(&mut self.m, d, false, t, slot as usize, val, cmd, SELF_FD);
                }
            }
            Op::Unmap { dom, table, slot } => {
                let d = self.ids[dom as usize];
                if let Some(t) = pick(&self.frames(d), table) {
                    let _ = upd(&mut self.m, d, t, slot as usize, 0);
                }
            }
            Op::Pin {
                by_tool,
                dom,
                pick: k,
                level,
            } => {
                let d = self.ids[dom as usize];
                let Some(f) = pick(&self.frames(d), k) else {
                    return Ok(());
                };
                let ty = PageType::from_level(u32::from(level)).unwrap();
                let _ = if by_tool {
                    self.m.pin(D0, true, d, f, ty)
                } else {
                    self.m.pin(d, false, DomId::SELF, f, ty)
                };
            }
            Op::Unpin {
                by_tool,
                dom,
                pick: k,
            } => {
                let d = self.ids[dom as usize];
                let Some(f) = pick(&self.frames(d), k) else {
                    return Ok(());
                };
                let _ = if by_tool {
                    self.m.unpin(D0, true, d, f)
                } else {
                    self.m.unpin(d, false, DomId::SELF, f)
                };
            }
            Op::UpdateVa {
                dom,
                page,
                target,
                flags: fl,
            } => {
                let d = self.ids[dom as usize];
                let s = &self.spaces[dom as usize];
                let va = Space::va(usize::from(page) % 16);
                let val = pte(self.resolve(d, target, 1), flags(fl));
                let _ = self.m.update_va_mapping(d, s.l4, va, val);
            }
            Op::Machphys { dom, pick: k, pfn } => {
                let d = self.ids[dom as usize];
                if let Some(f) = pick(&self.frames(d), k) {
                    let mut done = 0;
                    let req = [MmuUpdate {
                        ptr: f.to_addr() | MMU_MACHPHYS_UPDATE,
                        val: u64::from(pfn),
                    }];
                    let _ = self.m.mmu_update(d, false, &req, SELF_FD, &mut done);
                }
            }
            Op::TakeRoot { dom, pick: k } => {
                let d = self.ids[dom as usize];
                if let Some(f) = pick(&self.frames(d), k) {
                    if self.m.get_page_and_type(f, d, PageType::L4).is_ok() {
                        self.roots.push((f, PageType::L4));
                    }
                }
            }
            Op::DropRoot { pick: k } => {
                if !self.roots.is_empty() {
                    let (f, _) = self.roots.remove(k as usize % self.roots.len());
                    self.m.put_page_and_type(f);
                }
            }
            Op::Store {
                dom,
                page,
                off,
                user,
            } => {
                // A store by the guest's vCPU: only ever through its current CR3, which
                // the model keeps validated (an L4 type reference).
                let d = self.ids[dom as usize];
                let cr3 = self.spaces[dom as usize].l4;
                if !self.rooted(d, cr3) {
                    return Ok(());
                }
                let va = Space::va(usize::from(page) % 16) + u64::from(off % 4096);
                let acc = Access {
                    write: true,
                    user,
                    fetch: false,
                };
                if let Ok(t) = walk::translate(&mut self.m, cr3, va, acc) {
                    let f = *self.m.frame(t.mfn).unwrap();
                    if f.ty != PageType::Writable || f.type_count == 0 {
                        return Err(format!(
                            "guest got a writable translation of {:?} ({f:?})",
                            t.mfn
                        ));
                    }
                    self.m
                        .guest_write(t.mfn, (va & 0xfff) as usize, &[0x5a])
                        .map_err(|e| format!("store: {e}"))?;
                }
                let _ = walk::copy_to_guest(&mut self.m, cr3, va, &[1, 2, 3]);
            }
            Op::Fetch { dom, page, user } => {
                let cr3 = self.spaces[dom as usize].l4;
                let acc = Access {
                    write: false,
                    user,
                    fetch: true,
                };
                let va = Space::va(usize::from(page) % 16);
                if let Err(e) = walk::translate(&mut self.m, cr3, va, acc) {
                    if e.page_fault().is_none() {
                        return Err(format!("canonical {va:#x} gave {e:?}"));
                    }
                }
            }
            Op::ClearCopy { dom, a, b, copy } => {
                let d = self.ids[dom as usize];
                let fr = self.frames(d);
                if let (Some(x), Some(y)) = (pick(&fr, a), pick(&fr, b)) {
                    let _ = if copy {
                        self.m.copy_page(d, x, y)
                    } else {
                        self.m.clear_page(d, x)
                    };
                }
            }
            Op::LogDirty { dom, action } => {
                let d = self.ids[dom as usize];
                match action {
                    0 => {
                        let _ = self.m.logdirty_enable(d);
                    }
                    1 => self.m.logdirty_disable(d),
                    _ => {
                        let mut bm = [0u8; 64];
                        let mut pages = 512;
                        let _ = self.m.logdirty_read(d, &mut bm, &mut pages, action == 2);
                    }
                }
            }
            Op::ForeignWrite { dom, pick: k } => {
                let d = self.ids[dom as usize];
                if let Some(f) = pick(&self.frames(d), k) {
                    if self.m.foreign_write_check(d, f).is_ok() {
                        self.m
                            .guest_write(f, 8, &[7; 8])
                            .map_err(|e| format!("foreign write: {e}"))?;
                    }
                }
            }
            Op::Destroy { dom } => {
                let d = self.ids[dom as usize];
                let (mine, rest): (Vec<_>, Vec<_>) = self
                    .roots
                    .iter()
                    .partition(|(f, _)| self.m.frame(*f).unwrap().owner == Some(d));
                self.roots = rest;
                for (f, _) in mine {
                    self.m.put_page_and_type(f);
                }
                self.m.destroy_domain(d);
                // Frames dom0 still maps may keep it dying; come back as a new domain.
                let id = DomId::new(self.next_id);
                self.next_id += 1;
                self.m
                    .add_domain(id)
                    .map_err(|e| format!("add {id:?}: {e}"))?;
                self.m.set_max_pages(id, 256);
                self.ids[dom as usize] = id;
                self.spaces[dom as usize] = pinned_space(&mut self.m, id, 0, 6);
            }
            Op::NewSpace { dom, by_tool } => {
                // Another address space, built with plain stores and pinned, sometimes
                // by the toolstack (the restore path), then made this guest's CR3.
                let d = self.ids[dom as usize];
                if self.m.tot_pages(d) + 8 > self.m.max_pages(d) {
                    return Ok(());
                }
                let sp = build_space(&mut self.m, d, self.next_pfn, 3);
                self.next_pfn += 7;
                let r = if by_tool {
                    self.m.pin(D0, true, d, sp.l4, PageType::L4)
                } else {
                    self.m.pin(d, false, DomId::SELF, sp.l4, PageType::L4)
                };
                r.map_err(|e| format!("pinning a fresh space: {e}"))?;
                self.spaces[dom as usize] = sp;
            }
            Op::Hostile { dom, kind, a, b } => self.hostile(dom, kind, a, b)?,
        }
        Ok(())
    }

    /// One attack; `Err` if Xen's rule did not hold.
    fn hostile(&mut self, dom: u8, kind: u8, a: u16, b: u16) -> Result<(), String> {
        let d = self.ids[dom as usize];
        let other = self.ids[1 - dom as usize];
        let in_use = |f: &super::FrameInfo| {
            f.type_count > 0 && f.ty != PageType::Writable && f.ty != PageType::None
        };
        let l1s = self.frames_where(d, |f| {
            f.ty == PageType::L1 && f.validated && f.type_count > 0
        });
        let tables = self.frames_where(d, in_use);
        let expect = |what: &str, got: Result<(), Errno>, want: Errno| -> Result<(), String> {
            if got == Err(want) {
                Ok(())
            } else {
                Err(format!("{what}: expected {want:?}, got {got:?}"))
            }
        };
        match kind {
            // A writable mapping of one of its own tables in use.
            0 => {
                let (Some(l1), Some(t)) = (pick(&l1s, a), pick(&tables, b)) else {
                    return Ok(());
                };
                let slot = usize::from(b) % 512;
                let before = get(&self.m, l1, slot);
                expect(
                    "RW map of own table",
                    upd(&mut self.m, d, l1, slot, pte(t, PTE_PRESENT | PTE_RW)),
                    Errno::EBUSY,
                )?;
                if get(&self.m, l1, slot) != before {
                    return Err("refused update changed the entry".into());
                }
            }
            // Mapping another domain's frame, with FD = self and FD = other.
            1 => {
                let (Some(l1), Some(t)) = (pick(&l1s, a), pick(&self.frames(other), b)) else {
                    return Ok(());
                };
                let slot = usize::from(a) % 512;
                expect(
                    "map foreign frame",
                    upd(&mut self.m, d, l1, slot, pte(t, PRO)),
                    Errno::EBUSY,
                )?;
                let fd = u32::from(other.get());
                expect(
                    "map foreign FD",
                    upd_cmd(&mut self.m, d, false, l1, slot, pte(t, PRO), 0, fd),
                    Errno::EPERM,
                )?;
            }
            // Xen's L4 slots.
            2 => {
                let l4s = self.frames_where(d, |f| f.ty == PageType::L4 && f.validated);
                let Some(l4) = pick(&l4s, a) else {
                    return Ok(());
                };
                let slot = 256 + usize::from(b) % 16;
                let val = pick(&self.frames(d), b).map_or(0, |t| pte(t, PRO));
                expect(
                    "Xen L4 slot",
                    upd(&mut self.m, d, l4, slot, val),
                    Errno::EINVAL,
                )?;
                if get(&self.m, l4, slot) != 0 {
                    return Err(format!("Xen L4 slot {slot} is not zero"));
                }
            }
            // Nested pin.
            3 => {
                let pinned = self.frames_where(d, |f| f.pinned);
                let Some(p) = pick(&pinned, a) else {
                    return Ok(());
                };
                let ty = self.m.frame(p).unwrap().ty;
                expect(
                    "nested pin",
                    self.m.pin(d, false, DomId::SELF, p, ty),
                    Errno::EINVAL,
                )?;
            }
            // Pin with another type than the one in use.
            4 => {
                let used = self.frames_where(d, |f| f.type_count > 0);
                let Some(p) = pick(&used, a) else {
                    return Ok(());
                };
                let ty = self.m.frame(p).unwrap().ty;
                let want = PageType::from_level(1 + u32::from(b) % 4).unwrap();
                if want == ty {
                    return Ok(());
                }
                expect(
                    "pin with another type",
                    self.m.pin(d, false, DomId::SELF, p, want),
                    Errno::EINVAL,
                )?;
            }
            // A writable linear self-map.
            5 => {
                let upper =
                    self.frames_where(d, |f| f.ty.level() >= 2 && f.validated && f.type_count > 0);
                let Some(t) = pick(&upper, a) else {
                    return Ok(());
                };
                let slot = usize::from(b) % 256;
                expect(
                    "RW self-map",
                    upd(&mut self.m, d, t, slot, pte(t, PTE_PRESENT | PTE_RW)),
                    Errno::EINVAL,
                )?;
            }
            // PSE in an L2 entry.
            6 => {
                let l2s = self.frames_where(d, |f| {
                    f.ty == PageType::L2 && f.validated && f.type_count > 0
                });
                let (Some(l2), Some(t)) = (pick(&l2s, a), pick(&self.frames(d), b)) else {
                    return Ok(());
                };
                let slot = usize::from(b) % 512;
                expect(
                    "PSE",
                    upd(&mut self.m, d, l2, slot, pte(t, PRO | PTE_PSE)),
                    Errno::EINVAL,
                )?;
            }
            // MACHPHYS_UPDATE of another domain's frame.
            7 => {
                let Some(t) = pick(&self.frames(other), a) else {
                    return Ok(());
                };
                let before = self.m.m2p(t);
                let mut done = 0;
                let req = [MmuUpdate {
                    ptr: t.to_addr() | MMU_MACHPHYS_UPDATE,
                    val: u64::from(b),
                }];
                expect(
                    "foreign MACHPHYS",
                    self.m.mmu_update(d, false, &req, SELF_FD, &mut done),
                    Errno::EINVAL,
                )?;
                if self.m.m2p(t) != before {
                    return Err("refused MACHPHYS changed the M2P".into());
                }
            }
            // Unpin something not pinned.
            8 => {
                let unpinned = self.frames_where(d, |f| !f.pinned);
                let Some(p) = pick(&unpinned, a) else {
                    return Ok(());
                };
                expect(
                    "unpin unpinned",
                    self.m.unpin(d, false, DomId::SELF, p),
                    Errno::EINVAL,
                )?;
            }
            // update_va_mapping to a writable mapping of a table in use.
            9 => {
                let s = &self.spaces[dom as usize];
                let va = Space::va(usize::from(a) % 16);
                let Some(t) = pick(&tables, b) else {
                    return Ok(());
                };
                let Some((l1, _)) = self.m.find_l1(s.l4, va) else {
                    return Ok(());
                };
                let f = *self.m.frame(Mfn::new(l1 as u64)).unwrap();
                if f.owner != Some(d) || f.ty != PageType::L1 || !f.validated || f.type_count == 0 {
                    return Ok(());
                }
                expect(
                    "update_va_mapping RW of a table",
                    self.m.update_va_mapping(d, s.l4, va, pte(t, PRW)),
                    Errno::EBUSY,
                )?;
            }
            // The toolstack: a writable foreign mapping or a foreign write of a table.
            10 => {
                let Some(t) = pick(&tables, a) else {
                    return Ok(());
                };
                expect(
                    "foreign write of a table",
                    self.m.foreign_write_check(d, t),
                    Errno::EBUSY,
                )?;
                let slot = 64 + usize::from(b) % 64;
                let fd = u32::from(d.get());
                let tl1 = self.tool.l1;
                expect(
                    "tool RW map of a table",
                    upd_cmd(&mut self.m, D0, true, tl1, slot, pte(t, PRW), 0, fd),
                    Errno::EBUSY,
                )?;
            }
            // Writing a page table through the walker from its own address space.
            _ => {
                let s = &self.spaces[dom as usize];
                let (cr3, k) = (s.l4, usize::from(a) % 4);
                let (t, va) = (s.tables()[k], Space::va(s.table_slot(k)));
                let f = *self.m.frame(t).unwrap();
                if !(self.rooted(d, cr3) && f.owner == Some(d) && in_use(&f)) {
                    return Ok(());
                }
                if walk::probe(&self.m, cr3, va, Access::READ).is_ok_and(|tr| tr.mfn == t) {
                    if walk::copy_to_guest(&mut self.m, cr3, va, &[0xff; 8]).is_ok() {
                        return Err(format!("copy_to_guest wrote table {t:?}"));
                    }
                    if walk::probe(&self.m, cr3, va, Access::WRITE).is_ok() {
                        return Err(format!("table {t:?} translates writable"));
                    }
                }
            }
        }
        Ok(())
    }
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let mut s = Sut::new();
    s.m.check_invariants(&s.roots, &s.live())
        .map_err(|e| TestCaseError::fail(format!("initial: {e}")))?;
    for (n, op) in ops.iter().enumerate() {
        s.step(op)
            .map_err(|e| TestCaseError::fail(format!("step {n} {op:?}: {e}")))?;
        s.m.check_invariants(&s.roots, &s.live())
            .map_err(|e| TestCaseError::fail(format!("after step {n} {op:?}: {e}")))?;
    }
    // Finally tear everything down: nothing may leak.
    for (f, _) in std::mem::take(&mut s.roots) {
        s.m.put_page_and_type(f);
    }
    for d in s.ids {
        s.m.destroy_domain(d);
    }
    s.m.destroy_domain(D0);
    let leftovers: Vec<_> = (0..s.m.nr_frames())
        .map(Mfn::new)
        .filter(|&f| s.m.frame(f).unwrap().owner.is_some_and(|o| o != DomId::XEN))
        .collect();
    prop_assert!(
        leftovers.is_empty(),
        "frames left after destroying everything: {leftovers:?}"
    );
    prop_assert_eq!(s.m.free_frames(), s.m.nr_frames() - s.m.m2p_frames());
    s.m.check_invariants(&[], &[])
        .map_err(|e| TestCaseError::fail(format!("after teardown: {e}")))?;
    let _ = Pfn::INVALID;
    Ok(())
}

proptest! {
    #[test]
    fn random_mm_sequences_keep_the_invariants(ops in proptest::collection::vec(op(), 1..80)) {
        run(&ops)?;
    }

    #[test]
    fn hostile_guests_always_fail_with_xens_errno(
        ops in proptest::collection::vec(
            prop_oneof![
                3 => (0u8..2, 0u8..12, any::<u16>(), any::<u16>())
                    .prop_map(|(dom, kind, a, b)| Op::Hostile { dom, kind, a, b }),
                2 => op(),
            ],
            1..60,
        )
    ) {
        run(&ops)?;
    }
}
