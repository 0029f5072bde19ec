//! A minimal PV domain builder for tests of the model itself (the real domain builder
//! is `toolstack::build`, written against the `Xen` trait).
//!
//! [`MiniGuest::build`] creates a domain with `pages` data pages mapped read-write at
//! [`MINI_BASE`], its four page-table frames mapped read-only right after them, the L4
//! pinned and vCPU 0 initialised on it (kernel mode, online, unpaused).

use crate::abi::vcpu::{self as vc, VcpuGuestContext};
use crate::error::XenResult;
use crate::model::domain::CreateDomain;
use crate::model::mm::PageType;
use crate::model::Model;
use crate::types::{DomId, Mfn, Pfn, VcpuId};
use zerocopy::FromZeros;

/// Virtual address of the first data page of a [`MiniGuest`].
pub const MINI_BASE: u64 = 0x40_0000;

/// PTE bits used by the builder.
const P: u64 = 1;
const RW: u64 = 2;
const US: u64 = 4;

/// A built test domain.
#[derive(Debug, Clone)]
pub struct MiniGuest {
    /// Its id.
    pub dom: DomId,
    /// Data pages, by PFN (PFN i is mapped at `MINI_BASE + i * 4096`).
    pub data: Vec<Mfn>,
    /// The L4, L3, L2 and L1 frames.
    pub tables: [Mfn; 4],
}

impl MiniGuest {
    /// Builds the guest (`pages` ≤ 500).
    ///
    /// # Errors
    /// Any errno from the model while building.
    pub fn build(m: &mut Model, pages: usize) -> XenResult<MiniGuest> {
        assert!(pages > 0 && pages <= 500, "1..=500 data pages");
        let dom = m.create_domain(&CreateDomain {
            max_vcpus: 1,
            grant_opts: 1,
            max_grant_frames: 32,
            max_evtchn_port: 1023,
            ..CreateDomain::default()
        })?;
        m.set_max_vcpus(dom, 1)?;
        m.mem.set_max_pages(dom, pages as u64 + 4);
        let mut pfns: Vec<u64> = (0..pages as u64 + 4).collect();
        let n = m.mem.populate_physmap(dom, &mut pfns, 0)?;
        assert_eq!(n, pages + 4, "populate_physmap");
        let mfns: Vec<Mfn> = pfns.iter().map(|&x| Mfn::new(x)).collect();
        let data = mfns[..pages].to_vec();
        let [l4, l3, l2, l1] = [
            mfns[pages],
            mfns[pages + 1],
            mfns[pages + 2],
            mfns[pages + 3],
        ];
        let pte = |mfn: Mfn, flags: u64| (mfn.to_addr() | flags).to_le_bytes();
        // VA MINI_BASE = L4[0] → L3[0] → L2[2] → L1[0..].
        m.mem.guest_write(l4, 0, &pte(l3, P | RW | US))?;
        m.mem.guest_write(l3, 0, &pte(l2, P | RW | US))?;
        m.mem.guest_write(l2, 2 * 8, &pte(l1, P | RW | US))?;
        for (i, &d) in data.iter().enumerate() {
            m.mem.guest_write(l1, i * 8, &pte(d, P | RW | US))?;
        }
        for (j, &t) in [l4, l3, l2, l1].iter().enumerate() {
            m.mem.guest_write(l1, (pages + j) * 8, &pte(t, P | US))?;
        }
        m.mem.pin(DomId::DOM0, true, dom, l4, PageType::L4)?;
        let mut ctx = VcpuGuestContext::new_zeroed();
        ctx.flags = vc::VGCF_IN_KERNEL | vc::VGCF_ONLINE;
        ctx.user_regs.rip = MINI_BASE;
        ctx.user_regs.rsp = MINI_BASE + pages as u64 * 4096;
        ctx.user_regs.cs = 0xe033;
        ctx.user_regs.ss = 0xe02b;
        ctx.ctrlreg[3] = vc::xen_pfn_to_cr3(l4.get());
        m.set_vcpu_context(dom, 0, &ctx)?;
        m.unpause_domain(dom)?;
        Ok(MiniGuest {
            dom,
            data,
            tables: [l4, l3, l2, l1],
        })
    }

    /// Guest virtual address of data page `pfn`.
    #[must_use]
    pub fn va(&self, pfn: usize) -> u64 {
        MINI_BASE + pfn as u64 * 4096
    }

    /// Guest virtual address of page-table frame `level` (4, 3, 2, 1), mapped read-only.
    #[must_use]
    pub fn table_va(&self, level: usize) -> u64 {
        MINI_BASE + (self.data.len() + 4 - level) as u64 * 4096
    }

    /// Machine address of the L1 entry that maps data slot `slot`.
    #[must_use]
    pub fn l1e_maddr(&self, slot: usize) -> u64 {
        self.tables[3].to_addr() + slot as u64 * 8
    }

    /// The PFN of data page `i`.
    #[must_use]
    pub fn pfn(i: usize) -> Pfn {
        Pfn::new(i as u64)
    }

    /// vCPU 0.
    #[must_use]
    pub fn vcpu0() -> VcpuId {
        VcpuId::new(0)
    }
}
