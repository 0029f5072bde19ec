//! Property 2, exactness at the cut: a guest is saved with `-p` (so the source stays,
//! suspended and paused) at an arbitrary instruction count and restored on the same
//! host; before the copy runs, its memory by PFN and its vCPU state equal the source's
//! except for the conversions the stream spec documents (stream.md §4, §5.3). Listed
//! and checked field by field:
//!
//! | where | what may differ | how it is compared |
//! |---|---|---|
//! | page tables (types from the stream's PAGE_DATA) | frames of present entries | each entry normalised (flags, PFN of its frame through the M2P); L4 slots 256–271 (Xen's) skipped |
//! | start_info | `nr_pages`, `shared_info`, `flags`, `store_mfn`/`store_evtchn`, `console_mfn`/`console_evtchn` | those fields masked, the rest of the page exact |
//! | the guest's p2m list (`mfn_list`, `nr_pages` entries) | every entry (new MFNs) | each entry normalised to its PFN, which must be its index |
//! | xenstore ring | the four indices (`req_cons`..`rsp_prod`) | masked (xenstored may reset them on introduce) |
//! | console ring | the four indices | masked (xenconsoled consumes on attach) |
//! | every other page | nothing | byte for byte |
//! | vCPU 0 | `rax` | 0 in the copy (the suspend hypercall returns 0 in a new domain); the `-p` source, resumed as a cancelled suspend, holds 1 |
//! | vCPU 0 | `rdx` (start_info MFN), `ctrlreg[3]` (and `ctrlreg[1]` if set), GDT frames `0..⌈gdt_ents/512⌉`, `flags` (`VGCF_online` set) | normalised to PFNs / flag checked; every other field byte for byte |

mod common;

use std::collections::BTreeMap;

use common::*;
use harness::{observe, Runner, SaveMode, Step};
use hypervisor::abi::mm::{PTE_ADDR_MASK, PTE_PRESENT};
use hypervisor::abi::shared::StartInfo;
use hypervisor::abi::vcpu::{xen_cr3_to_pfn, VcpuGuestContext, VGCF_ONLINE};
use hypervisor::{Mfn, Pfn};
use proptest::prelude::*;
use toolstack::p2m::{read_m2p, M2p};
use toolstack::save::xc;
use toolstack::stream::{read_all, Item, LibxcRecord, PageType, ReaderOptions};
use zerocopy::{FromBytes, IntoBytes};

const VIRT_BASE: u64 = 0x40_0000;

fn pfn_of(m2p: &M2p, mfn: u64) -> Result<u64, String> {
    m2p.get(Mfn::new(mfn))
        .map(Pfn::get)
        .ok_or_else(|| format!("mfn {mfn:#x} has no M2P entry"))
}

fn normalise_table(page: &[u8], level: u8, m2p: &M2p) -> Result<Vec<(usize, u64, u64)>, String> {
    let mut v = Vec::new();
    for i in 0..512 {
        if level == 4 && (256..272).contains(&i) {
            continue;
        }
        let pte = u64::from_le_bytes(page[i * 8..i * 8 + 8].try_into().unwrap());
        if pte & PTE_PRESENT == 0 {
            v.push((i, pte, u64::MAX));
        } else {
            let frame = (pte & PTE_ADDR_MASK) >> 12;
            v.push((i, pte & !PTE_ADDR_MASK, pfn_of(m2p, frame)?));
        }
    }
    Ok(v)
}

fn mask(page: &mut [u8], range: std::ops::Range<usize>) {
    page[range].fill(0);
}

fn check_exact(kind: &str, extra: &str, insns: u64) -> Result<(), String> {
    let mut r = Runner::new(1);
    boot(&mut r, "src", 0, kind, extra);
    r.hosts[0].model.run(insns);
    r.step(
        0,
        &Step::Save {
            guest: "src".into(),
            mode: SaveMode::LeavePaused,
        },
    )
    .unwrap();
    let l = r.log.last().unwrap().clone();
    if l.contains("error") {
        return Err(l);
    }
    r.step(
        1,
        &Step::Restore {
            stream: 0,
            host: 0,
            guest: "copy".into(),
        },
    )
    .unwrap();
    let l = r.log.last().unwrap().clone();
    if l.contains("error") {
        return Err(l);
    }
    let stream = r.streams[0].bytes.clone();
    let (s, c) = (slot(&r, "src").clone(), slot(&r, "copy").clone());
    let (sd, cd) = (s.dom.unwrap(), c.dom.unwrap());
    let h = &mut r.hosts[0];
    let m2p = read_m2p(h).map_err(|e| e.to_string())?;
    let src = observe::memory_pages(h, sd, &s.p2m).map_err(|e| e.to_string())?;
    let copy = observe::memory_pages(h, cd, &c.p2m).map_err(|e| e.to_string())?;
    let sctx = xc::get_vcpu_context(h, sd, 0).map_err(|e| e.to_string())?;
    let cctx = xc::get_vcpu_context(h, cd, 0).map_err(|e| e.to_string())?;

    // Page types as the stream carries them.
    let mut types = BTreeMap::new();
    for i in read_all(&stream[..], ReaderOptions::default()).map_err(|e| e.to_string())? {
        if let Item::Libxc(LibxcRecord::PageData(pd)) = i.item {
            for e in pd.entries {
                types.insert(e.pfn.get(), e.ty);
            }
        }
    }
    // The special pages, from the source's start_info (its MFN is rdx at the suspend;
    // the guest has turned store_mfn and console_mfn into PFNs itself).
    let si_pfn = pfn_of(&m2p, sctx.user_regs.rdx)?;
    let si = StartInfo::read_from_prefix(&src[&si_pfn].clone().unwrap()[..])
        .unwrap()
        .0;
    let p2m_first = (si.mfn_list - VIRT_BASE) >> 12;
    let p2m_pages = (si.nr_pages * 8).div_ceil(4096);
    let (store, console) = (si.store_mfn, si.console_mfn);

    if src.keys().ne(copy.keys()) {
        return Err("different PFN sets".into());
    }
    for (pfn, sp) in &src {
        let (Some(sp), Some(cp)) = (sp, &copy[pfn]) else {
            return Err(format!("pfn {pfn:#x}: unreadable"));
        };
        let level = match types.get(pfn) {
            Some(PageType::L1Tab | PageType::L1Pinned) => 1,
            Some(PageType::L2Tab | PageType::L2Pinned) => 2,
            Some(PageType::L3Tab | PageType::L3Pinned) => 3,
            Some(PageType::L4Tab | PageType::L4Pinned) => 4,
            _ => 0,
        };
        let (mut a, mut b) = (sp.clone(), cp.clone());
        if level > 0 {
            if normalise_table(&a, level, &m2p)? != normalise_table(&b, level, &m2p)? {
                return Err(format!(
                    "pfn {pfn:#x}: L{level} table differs after normalising"
                ));
            }
            continue;
        }
        if *pfn == si_pfn {
            let off = |f: usize, n: usize| f..f + n;
            for r in [
                off(32, 8),
                off(40, 8),
                off(48, 4),
                off(56, 8),
                off(64, 4),
                off(72, 8),
                off(80, 4),
            ] {
                mask(&mut a, r.clone());
                mask(&mut b, r);
            }
        } else if (p2m_first..p2m_first + p2m_pages).contains(pfn) {
            let first = (pfn - p2m_first) * 512;
            for i in 0..512u64 {
                let idx = first + i;
                if idx >= si.nr_pages {
                    break;
                }
                let at = i as usize * 8;
                let e = |p: &[u8]| u64::from_le_bytes(p[at..at + 8].try_into().unwrap());
                let (x, y) = (pfn_of(&m2p, e(&a))?, pfn_of(&m2p, e(&b))?);
                if x != idx || y != idx {
                    return Err(format!("p2m entry {idx}: source pfn {x}, copy pfn {y}"));
                }
                mask(&mut a, at..at + 8);
                mask(&mut b, at..at + 8);
            }
        } else if *pfn == store {
            mask(&mut a, 2048..2064);
            mask(&mut b, 2048..2064);
        } else if *pfn == console {
            mask(&mut a, 3072..3088);
            mask(&mut b, 3072..3088);
        }
        if a != b {
            let at = a.iter().zip(&b).position(|(x, y)| x != y).unwrap_or(0);
            return Err(format!("pfn {pfn:#x}: differs at byte {at:#x}"));
        }
    }
    compare_vcpu(&sctx, &cctx, &m2p)
}

fn compare_vcpu(s: &VcpuGuestContext, c: &VcpuGuestContext, m2p: &M2p) -> Result<(), String> {
    let (mut a, mut b) = (*s, *c);
    if pfn_of(m2p, a.user_regs.rdx)? != pfn_of(m2p, b.user_regs.rdx)? {
        return Err("rdx (start_info) is not the same PFN".into());
    }
    for cr in [3usize, 1] {
        if a.ctrlreg[cr] != 0 || b.ctrlreg[cr] != 0 {
            let x = pfn_of(m2p, xen_cr3_to_pfn(a.ctrlreg[cr]))?;
            let y = pfn_of(m2p, xen_cr3_to_pfn(b.ctrlreg[cr]))?;
            if x != y {
                return Err(format!("ctrlreg[{cr}]: pfn {x:#x} vs {y:#x}"));
            }
        }
        a.ctrlreg[cr] = 0;
        b.ctrlreg[cr] = 0;
    }
    let gdt = (a.gdt_ents as usize).div_ceil(512).min(16);
    for i in 0..gdt {
        if pfn_of(m2p, a.gdt_frames[i])? != pfn_of(m2p, b.gdt_frames[i])? {
            return Err(format!("gdt frame {i}"));
        }
        a.gdt_frames[i] = 0;
        b.gdt_frames[i] = 0;
    }
    if b.flags & VGCF_ONLINE == 0 {
        return Err("restored vCPU 0 not online".into());
    }
    // The suspend hypercall's return: 0 in the new domain; the `-p` source was resumed
    // as a cancelled suspend (1) and left paused.
    if b.user_regs.rax != 0 || a.user_regs.rax > 1 {
        return Err(format!(
            "rax: source {:#x}, copy {:#x} (want 0 or 1, and 0)",
            a.user_regs.rax, b.user_regs.rax
        ));
    }
    a.user_regs.rax = 0;
    a.flags |= VGCF_ONLINE;
    a.user_regs.rdx = 0;
    b.user_regs.rdx = 0;
    if a.as_bytes() != b.as_bytes() {
        let at = a
            .as_bytes()
            .iter()
            .zip(b.as_bytes())
            .position(|(x, y)| x != y)
            .unwrap_or(0);
        return Err(format!(
            "vcpu_guest_context differs at byte {at:#x}: source rax {:#x} rip {:#x}, copy rax {:#x} rip {:#x}",
            s.user_regs.rax, s.user_regs.rip, c.user_regs.rax, c.user_regs.rip
        ));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: persistence("exactness"), cases: cases(96), ..ProptestConfig::default() })]

    #[test]
    fn right_after_restore_the_copy_is_the_source(
        (kind, extra) in prop_oneof![
            Just(("counter", "pages=16 report=50")),
            Just(("epoch", "seed=4 pages=16 writes=4")),
            Just(("pagetable", "report=5")),
            Just(("checksum", "pages=8 seed=9 report=100")),
        ],
        insns in 50_000u64..1_500_000,
    ) {
        check_exact(kind, extra, insns).map_err(TestCaseError::fail)?;
    }
}

#[test]
fn each_guest_is_exact_at_one_cut() {
    for (kind, extra) in [
        ("counter", "pages=16 report=50"),
        ("epoch", "seed=4 pages=16 writes=4"),
        ("pagetable", "report=5"),
    ] {
        check_exact(kind, extra, 777_777).unwrap_or_else(|e| panic!("{kind}: {e}"));
    }
}
