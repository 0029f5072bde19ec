//! The fixed CPUID table the virtual CPU reports.
//!
//! | leaf | eax | ebx | ecx | edx |
//! |---|---|---|---|---|
//! | 0 | max basic leaf 7 | "XiVi" | "lCPU" | "rtua" — vendor `XiVirtualCPU` |
//! | 1 | family 6 model 1 stepping 0 (`0x610`) | clflush 8 qwords, 1 logical CPU, APIC id 0 | POPCNT MOVBE CX16, hypervisor bit | TSC CX8 CMOV |
//! | 7.0 | 0 (max subleaf) | BMI1 | 0 | 0 |
//! | 0x4000_0000 | max 0x4000_0002 | "XenV" | "MXen" | "VMM\0"... — `XenVMMXenVMM` |
//! | 0x4000_0001 | Xen version 4.17 (`0x0004_0011`) | 0 | 0 | 0 |
//! | 0x4000_0002 | 1 hypercall page | MSR base 0x4000_0000 | 0 | 0 |
//! | 0x8000_0000 | max extended leaf 0x8000_0008 | 0 | 0 | 0 |
//! | 0x8000_0001 | 0 | 0 | LAHF/SAHF, ABM (lzcnt) | SYSCALL, NX, RDTSCP, LM |
//! | 0x8000_0002..4 | brand string `Xi interpreted x86-64 vCPU` | | | |
//! | 0x8000_0008 | 48-bit linear, 40-bit physical (`0x3028`) | 0 | 0 | 0 |
//!
//! Every other leaf (and subleaf of leaf 7) returns zeros. Nothing the interpreter does not
//! implement is advertised: no x87, MMX or SSE (the toy guests are built soft-float), no
//! BMI2, no AVX, no FSGSBASE. Everything advertised is implemented and tested.

/// Vendor string in ebx, edx, ecx order.
const VENDOR: &[u8; 12] = b"XiVirtualCPU";
/// Xen's hypervisor signature.
const XEN_SIG: &[u8; 12] = b"XenVMMXenVMM";
/// Brand string (48 bytes, NUL padded).
const BRAND: &[u8] = b"Xi interpreted x86-64 vCPU";

/// Leaf 1 ecx bits.
pub mod leaf1_ecx {
    /// cmpxchg16b.
    pub const CX16: u32 = 1 << 13;
    /// movbe.
    pub const MOVBE: u32 = 1 << 22;
    /// popcnt.
    pub const POPCNT: u32 = 1 << 23;
    /// Running under a hypervisor.
    pub const HYPERVISOR: u32 = 1 << 31;
}

/// Leaf 1 edx bits.
pub mod leaf1_edx {
    /// rdtsc.
    pub const TSC: u32 = 1 << 4;
    /// cmpxchg8b.
    pub const CX8: u32 = 1 << 8;
    /// cmovcc.
    pub const CMOV: u32 = 1 << 15;
}

/// Leaf 7.0 ebx bits.
pub mod leaf7_ebx {
    /// andn bextr blsi blsmsk blsr tzcnt.
    pub const BMI1: u32 = 1 << 3;
}

/// Leaf 0x8000_0001 bits.
pub mod ext1 {
    /// ecx: lahf/sahf in 64-bit mode.
    pub const LAHF: u32 = 1 << 0;
    /// ecx: lzcnt.
    pub const ABM: u32 = 1 << 5;
    /// edx: syscall/sysret.
    pub const SYSCALL: u32 = 1 << 11;
    /// edx: no-execute pages.
    pub const NX: u32 = 1 << 20;
    /// edx: rdtscp.
    pub const RDTSCP: u32 = 1 << 27;
    /// edx: long mode.
    pub const LM: u32 = 1 << 29;
}

fn words(s: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    for (k, out) in b.iter_mut().enumerate() {
        *out = s.get(at + k).copied().unwrap_or(0);
    }
    u32::from_le_bytes(b)
}

/// `cpuid(leaf, subleaf)` → `[eax, ebx, ecx, edx]`.
pub fn cpuid(leaf: u32, subleaf: u32) -> [u32; 4] {
    match leaf {
        0 => [7, words(VENDOR, 0), words(VENDOR, 8), words(VENDOR, 4)],
        1 => [
            0x0000_0610,
            (1 << 16) | (8 << 8),
            leaf1_ecx::CX16 | leaf1_ecx::MOVBE | leaf1_ecx::POPCNT | leaf1_ecx::HYPERVISOR,
            leaf1_edx::TSC | leaf1_edx::CX8 | leaf1_edx::CMOV,
        ],
        7 if subleaf == 0 => [0, leaf7_ebx::BMI1, 0, 0],
        0x4000_0000 => [
            0x4000_0002,
            words(XEN_SIG, 0),
            words(XEN_SIG, 4),
            words(XEN_SIG, 8),
        ],
        0x4000_0001 => [(4 << 16) | 17, 0, 0, 0],
        0x4000_0002 => [1, 0x4000_0000, 0, 0],
        0x8000_0000 => [0x8000_0008, 0, 0, 0],
        0x8000_0001 => [
            0,
            0,
            ext1::LAHF | ext1::ABM,
            ext1::SYSCALL | ext1::NX | ext1::RDTSCP | ext1::LM,
        ],
        0x8000_0002..=0x8000_0004 => {
            let base = (leaf - 0x8000_0002) as usize * 16;
            [
                words(BRAND, base),
                words(BRAND, base + 4),
                words(BRAND, base + 8),
                words(BRAND, base + 12),
            ]
        }
        0x8000_0008 => [0x3028, 0, 0, 0],
        _ => [0; 4],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(regs: [u32; 3]) -> String {
        regs.iter()
            .flat_map(|r| r.to_le_bytes())
            .map(char::from)
            .collect()
    }

    #[test]
    fn vendor_and_signature() {
        let [max, b, c, d] = cpuid(0, 0);
        assert_eq!(max, 7);
        assert_eq!(string([b, d, c]), "XiVirtualCPU");
        let [max, b, c, d] = cpuid(0x4000_0000, 0);
        assert_eq!(max, 0x4000_0002);
        assert_eq!(string([b, c, d]), "XenVMMXenVMM");
        assert_eq!(cpuid(0x4000_0001, 0)[0], 0x0004_0011);
    }

    #[test]
    fn brand_and_unknown() {
        let mut s = String::new();
        for l in 0x8000_0002..=0x8000_0004u32 {
            let [a, b, c, d] = cpuid(l, 0);
            s.push_str(&string([a, b, c]));
            s.push_str(&string([d, 0, 0])[..4]);
        }
        assert!(s.starts_with("Xi interpreted x86-64 vCPU\0"));
        assert_eq!(cpuid(2, 0), [0; 4]);
        assert_eq!(cpuid(7, 1), [0; 4]);
    }
}
