//! Compact human-readable forms of headers and records (one line each), used by
//! `xi inspect`.
//!
//! `Display` for a record prints its spec name and a summary; `Display` for a
//! [`Located`]`<`[`Item`]`>` prints one inspect line: offset, layer, name, body length
//! (the record's length field, or the header size) and the summary.

use std::fmt;

use super::records::{
    DomainHeader, DomainType, ImageHeader, Item, LibxcRecord, LibxlHeader, LibxlRecord, Located,
    PageData, PageType, XlHeader,
};
use super::XL_HEADER_SIZE;

/// Offset of `arch.max_pfn` in a 64-bit shared_info page.
const SHINFO_ARCH_MAX_PFN: usize = 3088;

fn write_page_data_summary(p: &PageData, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(f, "{} pfns", p.entries.len())?;
    if let (Some(first), Some(last)) = (p.entries.first(), p.entries.last()) {
        write!(
            f,
            ", first {:#x}, last {:#x}",
            first.pfn.get(),
            last.pfn.get()
        )?;
    }
    write!(f, ", {} with data [", p.pages_with_data())?;
    let mut counts = [0usize; PageType::ALL.len()];
    for e in &p.entries {
        if let Some(i) = PageType::ALL.iter().position(|t| *t == e.ty) {
            counts[i] += 1;
        }
    }
    let mut sep = "";
    for (ty, n) in PageType::ALL.iter().zip(counts) {
        if n > 0 {
            write!(f, "{sep}{} {n}", ty.short_name())?;
            sep = ", ";
        }
    }
    f.write_str("]")
}

fn write_blob(vcpu: u32, len: usize, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    if len == 0 {
        write!(f, "vcpu {vcpu}, empty (zero-content record)")
    } else {
        write!(f, "vcpu {vcpu}, {len} bytes")
    }
}

impl LibxcRecord {
    fn write_summary(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LibxcRecord::End
            | LibxcRecord::Verify
            | LibxcRecord::Checkpoint
            | LibxcRecord::StaticDataEnd => Ok(()),
            LibxcRecord::PageData(p) => write_page_data_summary(p, f),
            LibxcRecord::X86PvInfo(i) => write!(
                f,
                "{}-bit guest, {} page-table levels",
                u32::from(i.guest_width) * 8,
                i.pt_levels
            ),
            LibxcRecord::X86PvP2mFrames(p) => {
                write!(
                    f,
                    "pfns {:#x}..={:#x} in {} frames",
                    p.start_pfn,
                    p.end_pfn,
                    p.frames.len()
                )?;
                if let (Some(first), Some(last)) = (p.frames.first(), p.frames.last()) {
                    write!(f, " (pfn {:#x} .. pfn {:#x})", first.get(), last.get())?;
                }
                Ok(())
            }
            LibxcRecord::X86PvVcpuBasic(b)
            | LibxcRecord::X86PvVcpuExtended(b)
            | LibxcRecord::X86PvVcpuXsave(b) => write_blob(b.vcpu_id, b.context.len(), f),
            LibxcRecord::X86PvVcpuMsrs(m) => {
                if m.msrs.is_empty() {
                    write!(f, "vcpu {}, empty (zero-content record)", m.vcpu_id)
                } else {
                    write!(f, "vcpu {}, {} MSRs", m.vcpu_id, m.msrs.len())
                }
            }
            LibxcRecord::SharedInfo(page) => {
                let mut w = [0u8; 8];
                w.copy_from_slice(&page[SHINFO_ARCH_MAX_PFN..SHINFO_ARCH_MAX_PFN + 8]);
                write!(f, "arch.max_pfn {:#x}", u64::from_le_bytes(w))
            }
            LibxcRecord::X86TscInfo(t) => write!(
                f,
                "mode {}, {} kHz, {} ns, incarnation {}",
                t.mode, t.khz, t.nsec, t.incarnation
            ),
            LibxcRecord::HvmContext(b) | LibxcRecord::Toolstack(b) => {
                write!(f, "{} bytes", b.len())
            }
            LibxcRecord::HvmParams(p) => write!(f, "{} params", p.len()),
            LibxcRecord::CheckpointDirtyPfnList(p) => write!(f, "{} pfns", p.len()),
            LibxcRecord::X86CpuidPolicy(l) => write!(f, "{} leaves", l.len()),
            LibxcRecord::X86MsrPolicy(m) => write!(f, "{} MSRs", m.len()),
            LibxcRecord::Unknown { type_, body } => {
                write!(f, "optional type {type_:#010x}, {} bytes", body.len())
            }
        }
    }
}

impl LibxlRecord {
    fn write_summary(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LibxlRecord::End | LibxlRecord::LibxcContext | LibxlRecord::CheckpointEnd => Ok(()),
            LibxlRecord::EmulatorXenstoreData(e) | LibxlRecord::EmulatorContext(e) => {
                let emu = match e.emulator_id {
                    0 => "unknown",
                    1 => "qemu-traditional",
                    2 => "qemu-upstream",
                    _ => "reserved",
                };
                write!(
                    f,
                    "emulator {emu} index {}, {} bytes",
                    e.index,
                    e.data.len()
                )
            }
            LibxlRecord::CheckpointState(id) => write!(f, "state {id}"),
            LibxlRecord::Unknown { type_, body } => {
                write!(f, "optional type {type_:#010x}, {} bytes", body.len())
            }
        }
    }
}

impl fmt::Display for LibxcRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())?;
        let s = Summary(|f: &mut fmt::Formatter<'_>| self.write_summary(f)).to_string();
        if !s.is_empty() {
            write!(f, " {s}")?;
        }
        Ok(())
    }
}

impl fmt::Display for LibxlRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())?;
        let s = Summary(|f: &mut fmt::Formatter<'_>| self.write_summary(f)).to_string();
        if !s.is_empty() {
            write!(f, " {s}")?;
        }
        Ok(())
    }
}

/// Adapts a summary-writing closure to `Display`.
struct Summary<F: Fn(&mut fmt::Formatter<'_>) -> fmt::Result>(F);

impl<F: Fn(&mut fmt::Formatter<'_>) -> fmt::Result> fmt::Display for Summary<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (self.0)(f)
    }
}

impl fmt::Display for XlHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let json = if self.config_is_json { "JSON|" } else { "" };
        write!(
            f,
            "mandatory {:#x} ({json}STREAMv2), optional {:#x}, ",
            self.mandatory_flags(),
            self.optional_flags
        )?;
        match &self.config {
            Some(c) => write!(
                f,
                "config {} bytes{}",
                c.len(),
                if self.config_is_json {
                    " (JSON)"
                } else {
                    " (xl text)"
                }
            ),
            None => f.write_str("no config"),
        }
    }
}

impl fmt::Display for LibxlHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LibxlFmt v2, little-endian")?;
        if self.legacy {
            f.write_str(", converted from legacy")?;
        }
        Ok(())
    }
}

impl fmt::Display for ImageHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "XENF v{}, little-endian", self.version)
    }
}

impl fmt::Display for DomainHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ty = match self.domain_type {
            DomainType::X86Pv => "x86 PV",
            DomainType::X86Hvm => "x86 HVM",
        };
        if self.xen_major == 0 {
            write!(
                f,
                "{ty}, page_shift 12, converted from legacy (converter v{})",
                self.xen_minor
            )
        } else {
            write!(
                f,
                "{ty}, page_shift 12, from Xen {}.{}",
                self.xen_major, self.xen_minor
            )
        }
    }
}

impl Item {
    /// The name shown in an inspect line ("xl header", "PAGE_DATA", ...).
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Item::XlHeader(_) => "header",
            Item::LibxlHeader(_) => "header",
            Item::ImageHeader(_) => "image header",
            Item::DomainHeader(_) => "domain header",
            Item::Libxl(r) => r.name(),
            Item::Libxc(r) => r.name(),
        }
    }

    /// The length shown in an inspect line: the record's length field, or the header's
    /// size.
    #[must_use]
    pub fn shown_len(&self) -> u64 {
        match self {
            Item::XlHeader(h) => XL_HEADER_SIZE as u64 + h.optional_data_len(),
            Item::Libxl(r) => r.body_len(),
            Item::Libxc(r) => r.body_len(),
            other => other.encoded_len(),
        }
    }

    fn write_summary(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Item::XlHeader(h) => write!(f, "{h}"),
            Item::LibxlHeader(h) => write!(f, "{h}"),
            Item::ImageHeader(h) => write!(f, "{h}"),
            Item::DomainHeader(h) => write!(f, "{h}"),
            Item::Libxl(r) => r.write_summary(f),
            Item::Libxc(r) => r.write_summary(f),
        }
    }
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ", self.layer(), self.name())?;
        self.write_summary(f)
    }
}

impl fmt::Display for Located<Item> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let summary = Summary(|f: &mut fmt::Formatter<'_>| self.item.write_summary(f)).to_string();
        let line = format!(
            "{:#010x}  {:<5}  {:<25} {:>9}  {}",
            self.offset,
            self.item.layer().to_string(),
            self.item.name(),
            self.item.shown_len(),
            summary
        );
        f.write_str(line.trim_end())
    }
}
