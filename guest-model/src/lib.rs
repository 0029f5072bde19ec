//! # guest-model
//!
//! Toy PV guests written in real x86-64 machine code (assembled once with iced-x86's
//! `CodeAssembler`), each with an oracle that says what its memory and console must
//! hold. (The image contract is documented below; see [`layout`] for the page map.)
#![forbid(unsafe_code)]

mod asm;
pub mod guests;
pub mod isa;
pub mod layout;
pub mod oracle;
pub mod params;
mod runtime;

#[cfg(test)]
mod minixen;
#[cfg(test)]
mod tests;

pub use guests::counter::CounterOracle;
pub use oracle::{GuestMemory, OracleError, Status, Stop};
pub use params::{Guest, Role, ToyParams};

use layout::{va, CODE_PAGES, PAGE, PG_GUEST, PG_HYPERCALL, VIRT_BASE};

/// A toy guest kernel image and what the domain builder needs to know about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToyImage {
    /// The guest's name (`counter`, `epoch`, `pagetable`, `pingpong`).
    pub name: &'static str,
    /// Where `bytes` is loaded ([`VIRT_BASE`]); the image's page `i` is PFN `i`.
    pub virt_base: u64,
    /// Entry point (= `virt_base`).
    pub entry: u64,
    /// Virtual address of the page Xen fills with hypercall stubs.
    pub hypercall_page: u64,
    /// The image, a whole number of pages (code, zeroed data and bss).
    pub bytes: Vec<u8>,
    /// The parameters it was built for.
    pub params: ToyParams,
    /// Length of the instruction part of the code (strings follow it).
    pub code_len: usize,
}

impl ToyImage {
    /// Pages in the image.
    #[must_use]
    pub fn pages(&self) -> u64 {
        self.bytes.len() as u64 / PAGE
    }

    /// PFN of the hypercall page.
    #[must_use]
    pub fn hypercall_pfn(&self) -> hypervisor::Pfn {
        hypervisor::Pfn::new(PG_HYPERCALL)
    }

    /// The instructions (without the string literals that follow them).
    #[must_use]
    pub fn code(&self) -> &[u8] {
        &self.bytes[..self.code_len]
    }
}

/// Why a toy image could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToyError {
    /// No toy guest has this name.
    #[error("unknown toy guest {name:?} (known: counter, epoch, pagetable, pingpong)")]
    UnknownGuest {
        /// The name asked for.
        name: String,
    },
    /// A command-line token is not `key=value`.
    #[error("toy parameter {token:?} is not key=value")]
    Malformed {
        /// The token.
        token: String,
    },
    /// The guest does not take this key.
    #[error("toy guest {guest} has no parameter {key:?}")]
    UnknownKey {
        /// The guest.
        guest: &'static str,
        /// The key.
        key: String,
    },
    /// A key was given twice.
    #[error("toy parameter {key:?} given twice")]
    DuplicateKey {
        /// The key.
        key: String,
    },
    /// A value is out of range or not a number.
    #[error("toy parameter {key}={value:?}: {reason}")]
    BadValue {
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A required key is missing.
    #[error("toy guest {guest} needs parameter {key:?}")]
    MissingKey {
        /// The guest.
        guest: &'static str,
        /// The key.
        key: &'static str,
    },
    /// The assembler rejected the code (a bug in this crate).
    #[error("assembling the toy guest failed: {0}")]
    Assemble(String),
}

/// The image of toy guest `name` with parameters parsed from `extra`.
///
/// # Errors
/// [`ToyError::UnknownGuest`] or a parameter error naming the key.
pub fn toy(name: &str, extra: &str) -> Result<ToyImage, ToyError> {
    let guest =
        Guest::from_name(name).ok_or_else(|| ToyError::UnknownGuest { name: name.into() })?;
    build(&ToyParams::parse(guest, extra)?)
}

/// The image for `params`. Deterministic: equal parameters give equal bytes.
///
/// # Errors
/// [`ToyError::Assemble`] (a bug) only.
pub fn build(params: &ToyParams) -> Result<ToyImage, ToyError> {
    let name = params.guest.name();
    let err = |e: iced_x86::IcedError| ToyError::Assemble(e.to_string());
    let mut x = asm::Asm::new(name).map_err(err)?;
    let rt = runtime::Rt::new(&mut x);
    let mut gen = runtime::Gen { x, rt, p: params };
    // The runtime starts with the entry point, so it lands at VIRT_BASE.
    gen.emit_runtime().map_err(err)?;
    let region = guests::emit(&mut gen).map_err(err)?;
    let out = gen.x.finish(VIRT_BASE).map_err(err)?;
    if out.bytes.len() as u64 > CODE_PAGES * PAGE {
        return Err(ToyError::Assemble(format!(
            "code is {} bytes, more than the {CODE_PAGES} code pages",
            out.bytes.len()
        )));
    }
    let mut bytes = vec![0u8; ((PG_GUEST + region) * PAGE) as usize];
    bytes[..out.bytes.len()].copy_from_slice(&out.bytes);
    Ok(ToyImage {
        name,
        virt_base: VIRT_BASE,
        entry: VIRT_BASE,
        hypercall_page: va(PG_HYPERCALL),
        bytes,
        params: params.clone(),
        code_len: out.code_len,
    })
}
