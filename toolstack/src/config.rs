//! Guest configuration files in `xl.cfg` syntax, and the [`DomainConfig`] they describe.
//!
//! # Syntax
//!
//! The subset of `xl.cfg(5)` that xi understands:
//!
//! ```text
//! # a comment runs to the end of the line
//! name   = "counter-1"          # or 'counter-1'
//! memory = 64                   # MiB; decimal or 0x hex
//! vcpus  = 1
//! kernel = "toy:counter"        # a built-in toy guest, or a path to a flat/ELF image
//! extra  = "seed=7 pages=64"    # the guest's command line (at most 1023 bytes)
//! disk   = [ "a", 'b',          # lists may span lines; a trailing comma is fine
//!          ]
//! ```
//!
//! One setting per line (or several separated by `;`). Strings take the escapes `\\`,
//! `\"`, `\'`, `\n`, `\t`, `\r` and `\xHH`. A key may be set only once.
//!
//! # Keys
//!
//! | key | meaning | default |
//! |---|---|---|
//! | `name` | the domain's name (xenstore `name`) | required |
//! | `memory` | RAM in MiB | required |
//! | `vcpus` | number of vCPUs | 1 |
//! | `kernel` | `"toy:<guest>"` or a path | required |
//! | `extra` | kernel command line | none |
//! | `uuid` | the domain handle, `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` | derived from the name by the builder |
//! | `on_poweroff`, `on_reboot`, `on_crash` | what to do then (`destroy`, `restart`, `rename-restart`, `preserve`, `coredump-destroy`, `coredump-restart`, `soft-reset`) | none (the CLI decides) |
//!
//! Any other key is kept verbatim in [`DomainConfig::other`] and reported as a
//! [`ConfigWarning`], never an error, so configs written for `xl` load.
//!
//! [`DomainConfig`] is serde-serialisable: the save file embeds it as JSON. And
//! [`DomainConfig::to_xl_cfg`] writes it back in this syntax such that parsing the text
//! gives the same value again.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Longest command line a PV guest can be given (`MAX_GUEST_CMDLINE` − the NUL).
pub const MAX_CMDLINE_BYTES: usize = 1023;

/// The `on_*` actions `xl` knows.
pub const ACTIONS: &[&str] = &[
    "destroy",
    "restart",
    "rename-restart",
    "preserve",
    "coredump-destroy",
    "coredump-restart",
    "soft-reset",
];

/// What the guest runs: a built-in toy guest or an image file.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum KernelSpec {
    /// `toy:<name>`: one of the `guest-model` toy guests.
    Toy(String),
    /// A path to a flat binary or an ELF64 image.
    File(String),
}

impl KernelSpec {
    /// Parses the `kernel` value.
    ///
    /// # Errors
    /// A description of what is wrong (empty value, `toy:` without a name).
    pub fn parse(s: &str) -> Result<KernelSpec, String> {
        if s.is_empty() {
            return Err("the kernel must not be empty".into());
        }
        match s.strip_prefix("toy:") {
            Some("") => Err("`toy:` needs a guest name, e.g. \"toy:counter\"".into()),
            Some(name) => Ok(KernelSpec::Toy(name.to_owned())),
            None => Ok(KernelSpec::File(s.to_owned())),
        }
    }

    /// The path of a [`KernelSpec::File`].
    #[must_use]
    pub fn path(&self) -> Option<&Path> {
        match self {
            KernelSpec::File(p) => Some(Path::new(p)),
            KernelSpec::Toy(_) => None,
        }
    }
}

impl fmt::Display for KernelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelSpec::Toy(n) => write!(f, "toy:{n}"),
            KernelSpec::File(p) => f.write_str(p),
        }
    }
}

impl From<KernelSpec> for String {
    fn from(k: KernelSpec) -> String {
        k.to_string()
    }
}

impl TryFrom<String> for KernelSpec {
    type Error = String;
    fn try_from(s: String) -> Result<KernelSpec, String> {
        KernelSpec::parse(&s)
    }
}

/// A domain handle (UUID), as 16 bytes; written `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct DomainUuid(pub [u8; 16]);

impl DomainUuid {
    /// Parses the canonical 36-character form (hex digits in either case).
    ///
    /// # Errors
    /// A description of what is wrong.
    pub fn parse(s: &str) -> Result<DomainUuid, String> {
        let bad = || format!("`{s}` is not a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)");
        let b = s.as_bytes();
        if b.len() != 36 || [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
            return Err(bad());
        }
        let hex: Vec<u8> = b.iter().copied().filter(|&c| c != b'-').collect();
        if hex.len() != 32 {
            return Err(bad());
        }
        let mut out = [0u8; 16];
        for (i, pair) in hex.chunks_exact(2).enumerate() {
            let hi = hex_val(pair[0]).ok_or_else(bad)?;
            let lo = hex_val(pair[1]).ok_or_else(bad)?;
            out[i] = (hi << 4) | lo;
        }
        Ok(DomainUuid(out))
    }

    /// A deterministic handle for a domain that has no `uuid` setting: two FNV-1a
    /// hashes of the name (the second seeded with the first), with the RFC 9562
    /// version nibble set to 8 ("custom") and the variant bits to `10`. The same name
    /// always gives the same handle; no clock or random source is involved.
    #[must_use]
    pub fn from_name(name: &str) -> DomainUuid {
        const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
        const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
        let fnv = |seed: u64| {
            name.bytes()
                .fold(seed, |h, b| (h ^ u64::from(b)).wrapping_mul(FNV_PRIME))
        };
        let h1 = fnv(FNV_OFFSET);
        let h2 = fnv(h1 ^ 0x9e37_79b9_7f4a_7c15);
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&h1.to_be_bytes());
        out[8..].copy_from_slice(&h2.to_be_bytes());
        out[6] = (out[6] & 0x0f) | 0x80;
        out[8] = (out[8] & 0x3f) | 0x80;
        DomainUuid(out)
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for DomainUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for DomainUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "uuid:{self}")
    }
}

impl From<DomainUuid> for String {
    fn from(u: DomainUuid) -> String {
        u.to_string()
    }
}

impl TryFrom<String> for DomainUuid {
    type Error = String;
    fn try_from(s: String) -> Result<DomainUuid, String> {
        DomainUuid::parse(&s)
    }
}

/// One element of a list value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CfgAtom {
    /// A number.
    Int(i64),
    /// A quoted string.
    Str(String),
}

/// A value of a setting xi does not interpret, kept as written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CfgValue {
    /// A number.
    Int(i64),
    /// A quoted string.
    Str(String),
    /// A `[ … ]` list.
    List(Vec<CfgAtom>),
}

impl CfgValue {
    fn kind(&self) -> &'static str {
        match self {
            CfgValue::Int(_) => "a number",
            CfgValue::Str(_) => "a string",
            CfgValue::List(_) => "a list",
        }
    }
}

/// A guest's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainConfig {
    /// `name`.
    pub name: String,
    /// `memory`, in MiB.
    pub memory_mib: u64,
    /// `vcpus`.
    pub vcpus: u32,
    /// `kernel`.
    pub kernel: KernelSpec,
    /// `extra`: the kernel command line.
    #[serde(default)]
    pub extra: Option<String>,
    /// `uuid`; when absent the builder derives one from the name
    /// ([`DomainUuid::from_name`]).
    #[serde(default)]
    pub uuid: Option<DomainUuid>,
    /// `on_poweroff`.
    #[serde(default)]
    pub on_poweroff: Option<String>,
    /// `on_reboot`.
    #[serde(default)]
    pub on_reboot: Option<String>,
    /// `on_crash`.
    #[serde(default)]
    pub on_crash: Option<String>,
    /// Every other setting, kept as written.
    #[serde(default)]
    pub other: BTreeMap<String, CfgValue>,
}

/// Why a configuration file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read the configuration file")]
    Io {
        /// The file.
        file: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The text is not `xl.cfg` syntax.
    #[error("{file}:{line}: {what}")]
    Syntax {
        /// The file.
        file: String,
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        what: String,
    },
    /// A setting has a value xi cannot use.
    #[error("{file}:{line}: `{key}`: {what}")]
    BadValue {
        /// The file.
        file: String,
        /// 1-based line number of the setting.
        line: usize,
        /// The key.
        key: String,
        /// What was wrong.
        what: String,
    },
    /// A key appears twice.
    #[error("{file}:{line}: `{key}` is set again (first set on line {first})")]
    Duplicate {
        /// The file.
        file: String,
        /// 1-based line number of the second setting.
        line: usize,
        /// The key.
        key: String,
        /// Line of the first setting.
        first: usize,
    },
    /// A required key is missing.
    #[error("{file}: required setting `{key}` is missing")]
    Missing {
        /// The file.
        file: String,
        /// The key.
        key: &'static str,
    },
}

impl ConfigError {
    /// The line the error is about, if it is about one.
    #[must_use]
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::Syntax { line, .. }
            | ConfigError::BadValue { line, .. }
            | ConfigError::Duplicate { line, .. } => Some(*line),
            ConfigError::Io { .. } | ConfigError::Missing { .. } => None,
        }
    }
}

/// A setting that was accepted but is not understood by xi (kept in
/// [`DomainConfig::other`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigWarning {
    /// The file.
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    /// The key.
    pub key: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: unknown setting `{}` kept but not used",
            self.file, self.line, self.key
        )
    }
}

impl DomainConfig {
    /// A configuration with the given required settings and defaults for the rest.
    #[must_use]
    pub fn new(name: &str, memory_mib: u64, kernel: KernelSpec) -> DomainConfig {
        DomainConfig {
            name: name.to_owned(),
            memory_mib,
            vcpus: 1,
            kernel,
            extra: None,
            uuid: None,
            on_poweroff: None,
            on_reboot: None,
            on_crash: None,
            other: BTreeMap::new(),
        }
    }

    /// Reads and parses a configuration file.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file (and line) and what was wrong.
    pub fn load(path: &Path) -> Result<DomainConfig, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            file: file.clone(),
            source,
        })?;
        DomainConfig::parse(&text, &file)
    }

    /// Parses configuration text; `file` names it in errors.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file, line and what was wrong.
    pub fn parse(text: &str, file: &str) -> Result<DomainConfig, ConfigError> {
        DomainConfig::parse_with_warnings(text, file).map(|(c, _)| c)
    }

    /// [`DomainConfig::parse`], also returning one warning per unknown setting.
    ///
    /// # Errors
    /// As [`DomainConfig::parse`].
    pub fn parse_with_warnings(
        text: &str,
        file: &str,
    ) -> Result<(DomainConfig, Vec<ConfigWarning>), ConfigError> {
        let settings = Parser::new(text, file).settings()?;
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for s in &settings {
            if let Some(&first) = seen.get(&s.key) {
                return Err(ConfigError::Duplicate {
                    file: file.to_owned(),
                    line: s.line,
                    key: s.key.clone(),
                    first,
                });
            }
            seen.insert(s.key.clone(), s.line);
        }
        let bad = |s: &Setting, what: String| ConfigError::BadValue {
            file: file.to_owned(),
            line: s.line,
            key: s.key.clone(),
            what,
        };
        let string = |s: &Setting| match &s.value {
            CfgValue::Str(v) => Ok(v.clone()),
            other => Err(bad(s, format!("expected a string, found {}", other.kind()))),
        };
        let int = |s: &Setting| match &s.value {
            CfgValue::Int(v) => Ok(*v),
            other => Err(bad(s, format!("expected a number, found {}", other.kind()))),
        };
        let action = |s: &Setting| {
            let v = string(s)?;
            if ACTIONS.contains(&v.as_str()) {
                Ok(Some(v))
            } else {
                Err(bad(
                    s,
                    format!("unknown action `{v}` (one of: {})", ACTIONS.join(", ")),
                ))
            }
        };

        let mut name = None;
        let mut memory = None;
        let mut vcpus = 1u32;
        let mut kernel = None;
        let mut extra = None;
        let mut uuid = None;
        let mut on_poweroff = None;
        let mut on_reboot = None;
        let mut on_crash = None;
        let mut other = BTreeMap::new();
        let mut warnings = Vec::new();
        for s in &settings {
            match s.key.as_str() {
                "name" => {
                    let v = string(s)?;
                    if v.is_empty() {
                        return Err(bad(s, "the name must not be empty".into()));
                    }
                    if v.chars().any(char::is_control) {
                        return Err(bad(
                            s,
                            "the name must not contain control characters".into(),
                        ));
                    }
                    name = Some(v);
                }
                "memory" => {
                    let v = int(s)?;
                    if v < 1 {
                        return Err(bad(s, format!("{v} MiB: need at least 1 MiB")));
                    }
                    memory = Some(v as u64);
                }
                "vcpus" => {
                    let v = int(s)?;
                    vcpus = u32::try_from(v).ok().filter(|&n| n >= 1).ok_or_else(|| {
                        bad(
                            s,
                            format!(
                                "{v}: the number of vCPUs must be between 1 and {}",
                                u32::MAX
                            ),
                        )
                    })?;
                }
                "kernel" => kernel = Some(KernelSpec::parse(&string(s)?).map_err(|w| bad(s, w))?),
                "extra" => {
                    let v = string(s)?;
                    if v.len() > MAX_CMDLINE_BYTES {
                        return Err(bad(
                            s,
                            format!(
                                "the command line is {} bytes; at most {MAX_CMDLINE_BYTES} fit in start_info",
                                v.len()
                            ),
                        ));
                    }
                    if v.contains('\0') {
                        return Err(bad(s, "the command line must not contain NUL".into()));
                    }
                    extra = Some(v);
                }
                "uuid" => uuid = Some(DomainUuid::parse(&string(s)?).map_err(|w| bad(s, w))?),
                "on_poweroff" => on_poweroff = action(s)?,
                "on_reboot" => on_reboot = action(s)?,
                "on_crash" => on_crash = action(s)?,
                _ => {
                    warnings.push(ConfigWarning {
                        file: file.to_owned(),
                        line: s.line,
                        key: s.key.clone(),
                    });
                    other.insert(s.key.clone(), s.value.clone());
                }
            }
        }
        let missing = |key| ConfigError::Missing {
            file: file.to_owned(),
            key,
        };
        let config = DomainConfig {
            name: name.ok_or_else(|| missing("name"))?,
            memory_mib: memory.ok_or_else(|| missing("memory"))?,
            vcpus,
            kernel: kernel.ok_or_else(|| missing("kernel"))?,
            extra,
            uuid,
            on_poweroff,
            on_reboot,
            on_crash,
            other,
        };
        Ok((config, warnings))
    }

    /// The configuration in `xl.cfg` syntax; [`DomainConfig::parse`] of the result gives
    /// `self` back.
    #[must_use]
    pub fn to_xl_cfg(&self) -> String {
        let mut out = String::new();
        let mut line = |k: &str, v: String| {
            out.push_str(k);
            out.push_str(" = ");
            out.push_str(&v);
            out.push('\n');
        };
        line("name", quote(&self.name));
        if let Some(u) = &self.uuid {
            line("uuid", quote(&u.to_string()));
        }
        line("memory", self.memory_mib.to_string());
        line("vcpus", self.vcpus.to_string());
        line("kernel", quote(&self.kernel.to_string()));
        if let Some(e) = &self.extra {
            line("extra", quote(e));
        }
        for (k, v) in [
            ("on_poweroff", &self.on_poweroff),
            ("on_reboot", &self.on_reboot),
            ("on_crash", &self.on_crash),
        ] {
            if let Some(v) = v {
                line(k, quote(v));
            }
        }
        for (k, v) in &self.other {
            let text = match v {
                CfgValue::Int(i) => i.to_string(),
                CfgValue::Str(s) => quote(s),
                CfgValue::List(items) => {
                    let parts: Vec<String> = items
                        .iter()
                        .map(|a| match a {
                            CfgAtom::Int(i) => i.to_string(),
                            CfgAtom::Str(s) => quote(s),
                        })
                        .collect();
                    format!("[ {} ]", parts.join(", "))
                }
            };
            line(k, text);
        }
        out
    }

    /// The domain handle: `uuid` if set, otherwise [`DomainUuid::from_name`].
    #[must_use]
    pub fn handle(&self) -> DomainUuid {
        self.uuid
            .unwrap_or_else(|| DomainUuid::from_name(&self.name))
    }

    /// The command line (empty if `extra` is not set).
    #[must_use]
    pub fn cmdline(&self) -> &str {
        self.extra.as_deref().unwrap_or("")
    }
}

/// A string in double quotes with everything the parser treats specially escaped.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One `key = value` as written.
#[derive(Debug)]
struct Setting {
    key: String,
    value: CfgValue,
    line: usize,
}

/// A recursive-descent parser over the characters of the file, counting lines.
struct Parser<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: usize,
    file: &'a str,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str, file: &'a str) -> Self {
        Parser {
            chars: text.chars().peekable(),
            line: 1,
            file,
        }
    }

    fn err(&self, what: impl Into<String>) -> ConfigError {
        ConfigError::Syntax {
            file: self.file.to_owned(),
            line: self.line,
            what: what.into(),
        }
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next();
        if c == Some('\n') {
            self.line += 1;
        }
        c
    }

    /// Skips spaces, tabs, CRs and comments, and also newlines if `newlines`.
    fn skip_blank(&mut self, newlines: bool) {
        while let Some(&c) = self.chars.peek() {
            match c {
                ' ' | '\t' | '\r' => {
                    self.bump();
                }
                '\n' if newlines => {
                    self.bump();
                }
                '#' => {
                    while let Some(&c) = self.chars.peek() {
                        if c == '\n' {
                            break;
                        }
                        self.bump();
                    }
                }
                _ => break,
            }
        }
    }

    fn settings(mut self) -> Result<Vec<Setting>, ConfigError> {
        let mut out = Vec::new();
        loop {
            self.skip_blank(true);
            match self.chars.peek() {
                None => return Ok(out),
                Some(';') => {
                    self.bump();
                    continue;
                }
                Some(_) => {}
            }
            let line = self.line;
            let key = self.key()?;
            self.skip_blank(false);
            match self.bump() {
                Some('=') => {}
                Some('+') if self.chars.peek() == Some(&'=') => {
                    return Err(self.err(format!("`{key} +=`: appending is not supported")));
                }
                Some('\n') | None => {
                    self.line = line;
                    return Err(self.err(format!("expected `=` after `{key}`")));
                }
                Some(c) => return Err(self.err(format!("expected `=` after `{key}`, found `{c}`"))),
            }
            self.skip_blank(false);
            let value = self.value(&key)?;
            out.push(Setting { key, value, line });
            self.skip_blank(false);
            match self.chars.peek() {
                None | Some('\n') | Some(';') => {}
                Some(&c) => {
                    return Err(self.err(format!(
                        "unexpected `{c}` after the value (one setting per line, or separate them with `;`)"
                    )))
                }
            }
        }
    }

    fn key(&mut self) -> Result<String, ConfigError> {
        let mut key = String::new();
        while let Some(&c) = self.chars.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                key.push(c);
                self.bump();
            } else {
                break;
            }
        }
        match key.chars().next() {
            Some(c) if c.is_ascii_alphabetic() || c == '_' => Ok(key),
            Some(_) => Err(self.err(format!("`{key}` is not a setting name"))),
            None => {
                let c = self.chars.peek().copied().unwrap_or(' ');
                Err(self.err(format!("expected a setting name, found `{c}`")))
            }
        }
    }

    fn value(&mut self, key: &str) -> Result<CfgValue, ConfigError> {
        match self.chars.peek().copied() {
            Some('[') => {
                self.bump();
                self.list().map(CfgValue::List)
            }
            Some('"' | '\'') => self.string().map(CfgValue::Str),
            Some(c) if c.is_ascii_digit() || c == '-' => self.int().map(CfgValue::Int),
            None | Some('\n' | '#' | ';') => Err(self.err(format!("`{key}` has no value"))),
            Some(c) => Err(self.err(format!(
                "`{key}`: expected a value (a quoted string, a number or a [list]), found `{c}`"
            ))),
        }
    }

    fn list(&mut self) -> Result<Vec<CfgAtom>, ConfigError> {
        let start = self.line;
        let mut items = Vec::new();
        loop {
            self.skip_blank(true);
            match self.chars.peek().copied() {
                Some(']') => {
                    self.bump();
                    return Ok(items);
                }
                None => {
                    self.line = start;
                    return Err(self.err("the list opened here is never closed with `]`"));
                }
                Some('"' | '\'') => items.push(CfgAtom::Str(self.string()?)),
                Some(c) if c.is_ascii_digit() || c == '-' => items.push(CfgAtom::Int(self.int()?)),
                Some('[') => return Err(self.err("lists cannot contain lists")),
                Some(c) => return Err(self.err(format!("expected a list item, found `{c}`"))),
            }
            self.skip_blank(true);
            match self.chars.peek().copied() {
                Some(',') => {
                    self.bump();
                }
                Some(']') => {}
                None => {
                    self.line = start;
                    return Err(self.err("the list opened here is never closed with `]`"));
                }
                Some(c) => {
                    return Err(self.err(format!("expected `,` or `]` in the list, found `{c}`")))
                }
            }
        }
    }

    fn string(&mut self) -> Result<String, ConfigError> {
        let start = self.line;
        let quote = self.bump().unwrap_or('"');
        let mut s = String::new();
        loop {
            match self.bump() {
                None | Some('\n') => {
                    self.line = start;
                    return Err(self.err(format!("the string is not closed with {quote}")));
                }
                Some(c) if c == quote => return Ok(s),
                Some('\\') => {
                    let c = match self.bump() {
                        Some('\\') => '\\',
                        Some('"') => '"',
                        Some('\'') => '\'',
                        Some('n') => '\n',
                        Some('t') => '\t',
                        Some('r') => '\r',
                        Some('x') => {
                            let hi = self.bump().and_then(|c| c.to_digit(16));
                            let lo = self.bump().and_then(|c| c.to_digit(16));
                            match (hi, lo) {
                                (Some(h), Some(l)) => char::from((h * 16 + l) as u8),
                                _ => return Err(self.err("`\\x` needs two hex digits")),
                            }
                        }
                        Some(c) if c != '\n' => {
                            return Err(self.err(format!("unknown escape `\\{c}` in a string")))
                        }
                        _ => {
                            self.line = start;
                            return Err(self.err(format!("the string is not closed with {quote}")));
                        }
                    };
                    s.push(c);
                }
                Some(c) => s.push(c),
            }
        }
    }

    fn int(&mut self) -> Result<i64, ConfigError> {
        let mut text = String::new();
        while let Some(&c) = self.chars.peek() {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                text.push(c);
                self.bump();
            } else {
                break;
            }
        }
        let (neg, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.as_str()),
        };
        let parsed = match digits
            .strip_prefix("0x")
            .or_else(|| digits.strip_prefix("0X"))
        {
            Some(hex) if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                u64::from_str_radix(hex, 16).ok()
            }
            Some(_) => None,
            None if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
                digits.parse::<u64>().ok()
            }
            None => return Err(self.err(format!("`{text}` is not a number (strings need quotes)"))),
        };
        let v = parsed
            .and_then(|v| {
                if neg {
                    0i64.checked_sub_unsigned(v)
                } else {
                    i64::try_from(v).ok()
                }
            })
            .ok_or_else(|| self.err(format!("`{text}` is not a number in range")))?;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
# A toy guest.
name = "counter-1"
memory = 64
vcpus = 2
kernel = "toy:counter"
extra = 'seed=7 pages=64'
on_crash = "preserve"
disk = [ "phy:/dev/vg/a,xvda,w",
         'file:/b.img,xvdb,r', ]   # trailing comma
cpu_weight = 0x100; builder = "generic"
"#;

    fn parse(text: &str) -> Result<DomainConfig, ConfigError> {
        DomainConfig::parse(text, "t.cfg")
    }

    fn err_line(text: &str) -> (usize, String) {
        let e = parse(text).expect_err("should fail");
        (e.line().unwrap_or(0), e.to_string())
    }

    #[test]
    fn parses_a_full_file() {
        let (c, warnings) = DomainConfig::parse_with_warnings(GOOD, "t.cfg").expect("parses");
        assert_eq!(c.name, "counter-1");
        assert_eq!(c.memory_mib, 64);
        assert_eq!(c.vcpus, 2);
        assert_eq!(c.kernel, KernelSpec::Toy("counter".into()));
        assert_eq!(c.extra.as_deref(), Some("seed=7 pages=64"));
        assert_eq!(c.on_crash.as_deref(), Some("preserve"));
        assert_eq!(c.on_poweroff, None);
        assert_eq!(
            c.other.get("disk"),
            Some(&CfgValue::List(vec![
                CfgAtom::Str("phy:/dev/vg/a,xvda,w".into()),
                CfgAtom::Str("file:/b.img,xvdb,r".into()),
            ]))
        );
        assert_eq!(c.other.get("cpu_weight"), Some(&CfgValue::Int(256)));
        assert_eq!(
            c.other.get("builder"),
            Some(&CfgValue::Str("generic".into()))
        );
        let keys: Vec<(usize, &str)> = warnings.iter().map(|w| (w.line, w.key.as_str())).collect();
        assert_eq!(keys, vec![(9, "disk"), (11, "cpu_weight"), (11, "builder")]);
        assert_eq!(
            warnings[0].to_string(),
            "t.cfg:9: unknown setting `disk` kept but not used"
        );
    }

    #[test]
    fn defaults_and_paths() {
        let c = parse("name='a'\nmemory=1\nkernel=\"/boot/k.elf\"").expect("parses");
        assert_eq!(c.vcpus, 1);
        assert_eq!(c.extra, None);
        assert_eq!(c.cmdline(), "");
        assert_eq!(c.kernel.path(), Some(Path::new("/boot/k.elf")));
        assert_eq!(c.handle(), DomainUuid::from_name("a"));
    }

    #[test]
    fn escapes() {
        let c = parse(r#"name = 'n'; extra = "a\"b\\c\x41\n\t'" ; memory = 2 ; kernel = 'toy:x'"#)
            .expect("parses");
        assert_eq!(c.extra.as_deref(), Some("a\"b\\cA\n\t'"));
        assert_eq!(c.memory_mib, 2);
    }

    #[test]
    fn each_error_names_its_line() {
        // Values are checked before required keys, so the base needs only a kernel.
        let base = "kernel = \"toy:c\"\n# line 2\n\n";
        let cases: &[(&str, usize, &str)] = &[
            ("memory = \"8\"", 4, "expected a number, found a string"),
            ("memory = 0", 4, "need at least 1 MiB"),
            ("vcpus = 0", 4, "number of vCPUs must be between 1"),
            (
                "vcpus = 99999999999",
                4,
                "number of vCPUs must be between 1",
            ),
            ("name = 5", 4, "expected a string"),
            ("extra = [ \"a\" ]", 4, "expected a string, found a list"),
            ("on_reboot = \"explode\"", 4, "unknown action `explode`"),
            ("uuid = \"not-a-uuid\"", 4, "is not a UUID"),
            ("\n\nfoo = bar", 6, "expected a value"),
            ("foo = ", 4, "has no value"),
            ("foo \"x\"", 4, "expected `=` after `foo`"),
            ("foo = \"x", 4, "not closed"),
            ("foo = 'x\\q'", 4, "unknown escape"),
            ("foo = [ \"a\"\n\"b\" ]", 5, "expected `,` or `]`"),
            ("foo = [ \"a\",\n", 4, "never closed"),
            ("foo = [[1]]", 4, "lists cannot contain lists"),
            ("foo = 12abc", 4, "not a number"),
            ("foo = 99999999999999999999", 4, "not a number in range"),
            ("foo = 1 2", 4, "unexpected `2`"),
            ("foo += \"x\"", 4, "appending is not supported"),
            ("9foo = 1", 4, "not a setting name"),
            ("= 1", 4, "expected a setting name"),
            ("kernel = \"b\"", 4, "set again (first set on line 1)"),
        ];
        for (extra, line, what) in cases {
            let text = format!("{base}{extra}\n");
            let (l, msg) = err_line(&text);
            assert_eq!(l, *line, "{extra:?}: {msg}");
            assert!(msg.contains(what), "{extra:?}: {msg}");
            assert!(msg.starts_with(&format!("t.cfg:{line}: ")), "{msg}");
        }
        let long = format!("{base}extra = \"{}\"\n", "x".repeat(1024));
        let (l, msg) = err_line(&long);
        assert_eq!(l, 4);
        assert!(msg.contains("1024 bytes; at most 1023"), "{msg}");
        let ok = format!(
            "{base}name = 'n'\nmemory = 1\nextra = \"{}\"\n",
            "x".repeat(1023)
        );
        assert_eq!(parse(&ok).expect("1023 bytes fit").cmdline().len(), 1023);
        let (l, msg) = err_line("name=\"a\"\nmemory=1\nkernel=\"toy:\"\n");
        assert_eq!(l, 3);
        assert!(msg.contains("needs a guest name"), "{msg}");
        let (l, msg) = err_line("name=\"\"\n");
        assert_eq!((l, msg.contains("must not be empty")), (1, true));
    }

    #[test]
    fn missing_keys() {
        for (text, key) in [
            ("memory = 1\nkernel = \"k\"", "name"),
            ("name = \"a\"\nkernel = \"k\"", "memory"),
            ("name = \"a\"\nmemory = 1", "kernel"),
        ] {
            let e = parse(text).expect_err("missing");
            assert_eq!(e.line(), None);
            assert_eq!(
                e.to_string(),
                format!("t.cfg: required setting `{key}` is missing")
            );
        }
        let e = DomainConfig::load(Path::new("/nonexistent/xi.cfg")).expect_err("no file");
        assert!(
            e.to_string()
                .starts_with("/nonexistent/xi.cfg: cannot read"),
            "{e}"
        );
    }

    #[test]
    fn round_trips_through_xl_cfg_and_json() {
        let mut c = parse(GOOD).expect("parses");
        c.uuid = Some(DomainUuid::parse("0123ABCD-4567-89ab-cdef-0123456789AB").expect("uuid"));
        c.other
            .insert("weird".into(), CfgValue::Str("q\"\\\n\t\u{1}é".into()));
        c.other.insert("neg".into(), CfgValue::Int(i64::MIN));
        c.other.insert("empty".into(), CfgValue::List(vec![]));
        let text = c.to_xl_cfg();
        assert_eq!(parse(&text).expect("reparses"), c, "{text}");
        let json = serde_json::to_string(&c).expect("json");
        assert!(json.contains("\"kernel\":\"toy:counter\""), "{json}");
        assert!(
            json.contains("\"uuid\":\"0123abcd-4567-89ab-cdef-0123456789ab\""),
            "{json}"
        );
        let back: DomainConfig = serde_json::from_str(&json).expect("from json");
        assert_eq!(back, c);
        let plain = DomainConfig::new("p", 16, KernelSpec::File("/k".into()));
        assert_eq!(parse(&plain.to_xl_cfg()).expect("reparses"), plain);
    }

    #[test]
    fn uuid_from_name_is_stable_and_well_formed() {
        let a = DomainUuid::from_name("guest");
        assert_eq!(a, DomainUuid::from_name("guest"));
        assert_ne!(a, DomainUuid::from_name("guest2"));
        assert_eq!(a.0[6] >> 4, 8, "version 8");
        assert_eq!(a.0[8] >> 6, 2, "RFC variant");
        assert_eq!(DomainUuid::parse(&a.to_string()), Ok(a));
    }
}
