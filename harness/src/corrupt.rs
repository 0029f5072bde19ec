//! Single corruptions of a valid stream, described as data so a scenario (and a
//! proptest case) can name one. Record indices count the libxl and libxc records of the
//! stream in file order (headers excluded) and are taken modulo their number; byte
//! offsets are taken modulo the stream length, so any value names some corruption.

use serde::{Deserialize, Serialize};
use toolstack::stream::{read_all, Item, ReaderOptions};

/// One way to damage a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Corruption {
    /// Keep only the first `at` bytes (modulo the length).
    Truncate {
        /// Bytes kept.
        at: u64,
    },
    /// Flip one bit.
    FlipBit {
        /// The byte.
        offset: u64,
        /// The bit (0–7, modulo 8).
        bit: u8,
    },
    /// Swap a record with the one after it.
    SwapRecords {
        /// The first record.
        index: u32,
    },
    /// Take a record out and put it back in front of record `to` (both counted in the
    /// original stream; `to` may also be one past the last record, i.e. the end): a
    /// reorder over any distance.
    MoveRecord {
        /// The record moved.
        from: u32,
        /// The record it is put in front of (modulo the record count plus one).
        to: u32,
    },
    /// Write a record twice in a row.
    DuplicateRecord {
        /// The record.
        index: u32,
    },
    /// Leave a record out.
    DropRecord {
        /// The record.
        index: u32,
    },
    /// Insert a record of a type no spec defines before record `index`, of the layer
    /// of that record; `optional` sets bit 31 (which readers must skip).
    InsertUnknown {
        /// Where.
        index: u32,
        /// Bit 31 set?
        optional: bool,
    },
    /// Add `by` to a record's length field.
    InflateLength {
        /// The record.
        index: u32,
        /// Added to the length (wrapping).
        by: u32,
    },
    /// Add `by` to the first `u32` of a record's body (the count of PAGE_DATA and
    /// X86_PV_P2M_FRAMES' start pfn, the vCPU id of vCPU records...).
    InflateCount {
        /// The record.
        index: u32,
        /// Added (wrapping).
        by: u32,
    },
}

/// A record's place in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordSpan {
    /// Offset of its header.
    pub offset: usize,
    /// Header, body and padding.
    pub len: usize,
}

/// The records (libxl and libxc, not the headers) of a valid stream.
///
/// # Errors
/// The reader's error text if `stream` is not valid.
pub fn record_spans(stream: &[u8]) -> Result<Vec<RecordSpan>, String> {
    let items = read_all(stream, ReaderOptions::default()).map_err(|e| e.to_string())?;
    Ok(items
        .iter()
        .filter(|i| matches!(i.item, Item::Libxl(_) | Item::Libxc(_)))
        .map(|i| RecordSpan {
            offset: i.offset as usize,
            len: i.item.encoded_len() as usize,
        })
        .collect())
}

/// The offset just after the last record (where the moved record goes for "the end").
fn a_end_of(spans: &[RecordSpan]) -> usize {
    spans.last().map_or(0, |s| s.offset + s.len)
}

fn le32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

impl Corruption {
    /// The name of every kind, in declaration order (what [`Corruption::kind`] returns).
    pub const KINDS: [&'static str; 9] = [
        "truncate",
        "flip-bit",
        "swap-records",
        "move-record",
        "duplicate-record",
        "drop-record",
        "insert-unknown",
        "inflate-length",
        "inflate-count",
    ];

    /// The kind of corruption, as a short name (one of [`Corruption::KINDS`]), for
    /// reports that tally outcomes by kind.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Corruption::Truncate { .. } => "truncate",
            Corruption::FlipBit { .. } => "flip-bit",
            Corruption::SwapRecords { .. } => "swap-records",
            Corruption::MoveRecord { .. } => "move-record",
            Corruption::DuplicateRecord { .. } => "duplicate-record",
            Corruption::DropRecord { .. } => "drop-record",
            Corruption::InsertUnknown { .. } => "insert-unknown",
            Corruption::InflateLength { .. } => "inflate-length",
            Corruption::InflateCount { .. } => "inflate-count",
        }
    }

    /// `stream` with this corruption applied; `None` if `stream` is empty or not a
    /// valid stream (record corruptions need its records) or the corruption is
    /// impossible or no change (swapping the last record with nothing, moving a record
    /// to where it already is).
    #[must_use]
    pub fn apply(&self, stream: &[u8]) -> Option<Vec<u8>> {
        if stream.is_empty() {
            return None;
        }
        let n = stream.len() as u64;
        match *self {
            Corruption::Truncate { at } => return Some(stream[..(at % n) as usize].to_vec()),
            Corruption::FlipBit { offset, bit } => {
                let mut v = stream.to_vec();
                v[(offset % n) as usize] ^= 1 << (bit % 8);
                return Some(v);
            }
            _ => {}
        }
        let spans = record_spans(stream).ok()?;
        if spans.is_empty() {
            return None;
        }
        let pick = |index: u32| spans[index as usize % spans.len()];
        let bytes = |s: RecordSpan| &stream[s.offset..s.offset + s.len];
        let mut v = Vec::with_capacity(stream.len() + 64);
        match *self {
            Corruption::Truncate { .. } | Corruption::FlipBit { .. } => unreachable!(),
            Corruption::SwapRecords { index } => {
                let i = index as usize % spans.len();
                let (a, b) = (spans[i], *spans.get(i + 1)?);
                v.extend_from_slice(&stream[..a.offset]);
                v.extend_from_slice(bytes(b));
                v.extend_from_slice(bytes(a));
                v.extend_from_slice(&stream[b.offset + b.len..]);
            }
            Corruption::MoveRecord { from, to } => {
                let n = spans.len();
                let (from, to) = (from as usize % n, to as usize % (n + 1));
                if to == from || to == from + 1 {
                    return None;
                }
                let a = spans[from];
                let dest = spans.get(to).map_or(a_end_of(&spans), |s| s.offset);
                let (c0, c1) = (a.offset, a.offset + a.len);
                // Bytes lo..hi of the stream without the moved record.
                let without = |v: &mut Vec<u8>, lo: usize, hi: usize| {
                    if lo < c0 {
                        v.extend_from_slice(&stream[lo..hi.min(c0)]);
                    }
                    if hi > c1 {
                        v.extend_from_slice(&stream[lo.max(c1)..hi]);
                    }
                };
                without(&mut v, 0, dest);
                v.extend_from_slice(bytes(a));
                without(&mut v, dest, stream.len());
            }
            Corruption::DuplicateRecord { index } => {
                let a = pick(index);
                v.extend_from_slice(&stream[..a.offset + a.len]);
                v.extend_from_slice(bytes(a));
                v.extend_from_slice(&stream[a.offset + a.len..]);
            }
            Corruption::DropRecord { index } => {
                let a = pick(index);
                v.extend_from_slice(&stream[..a.offset]);
                v.extend_from_slice(&stream[a.offset + a.len..]);
            }
            Corruption::InsertUnknown { index, optional } => {
                let a = pick(index);
                let ty: u32 = 0x0000_7f3a | if optional { 0x8000_0000 } else { 0 };
                v.extend_from_slice(&stream[..a.offset]);
                v.extend_from_slice(&ty.to_le_bytes());
                v.extend_from_slice(&8u32.to_le_bytes());
                v.extend_from_slice(&0x0123_4567_89ab_cdefu64.to_le_bytes());
                v.extend_from_slice(&stream[a.offset..]);
            }
            Corruption::InflateLength { index, by } => {
                let a = pick(index);
                v.extend_from_slice(stream);
                let len = le32(stream, a.offset + 4).wrapping_add(by.max(1));
                v[a.offset + 4..a.offset + 8].copy_from_slice(&len.to_le_bytes());
            }
            Corruption::InflateCount { index, by } => {
                let a = pick(index);
                v.extend_from_slice(stream);
                let at = if le32(stream, a.offset + 4) >= 4 {
                    a.offset + 8
                } else {
                    a.offset + 4
                };
                let c = le32(stream, at).wrapping_add(by.max(1));
                v[at..at + 4].copy_from_slice(&c.to_le_bytes());
            }
        }
        Some(v)
    }
}
