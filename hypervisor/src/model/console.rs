//! The console backend (xenconsoled) for the model.
//!
//! Each attached domain has a console page ([`XenconsInterface`]) and an event channel.
//! Whenever the guest notifies that channel, the model hands the page to
//! [`Consoles::process_ring`], which does what xenconsoled's `buffer_append` and
//! `handle_tty_read` do: it drains `out` (guest output) into the domain's transcript and
//! moves pending host input into `in_`. Like xenconsoled it trusts nothing in the page:
//! a ring whose producer/consumer distance exceeds the ring's size is left untouched
//! ("ring is screwed: ignore it"), never read past.
//!
//! The transcript stands in for xenconsoled's log file and pty. It is bounded: once it
//! grows past [`TRANSCRIPT_LIMIT`] plus a quarter, the oldest bytes are discarded down to
//! [`TRANSCRIPT_LIMIT`] (trimming in steps keeps appends cheap), and
//! [`Consoles::dropped`] counts what was discarded.
//!
//! The backend never touches machine memory; it is given the page as bytes.

use std::collections::{BTreeMap, VecDeque};

use crate::abi::console::{
    mask_xencons_in, mask_xencons_out, XENCONS_IN, XENCONS_IN_CONS, XENCONS_IN_PROD,
    XENCONS_IN_SIZE, XENCONS_OUT, XENCONS_OUT_CONS, XENCONS_OUT_PROD, XENCONS_OUT_SIZE,
};
use crate::error::{Errno, XenResult};
use crate::types::{DomId, Mfn, Port};

/// How many transcript bytes are kept per domain (at least; see the module doc).
pub const TRANSCRIPT_LIMIT: usize = 1 << 20;

/// The console of one domain.
#[derive(Debug, Clone, Default)]
struct Console {
    /// The console page's frame, as given at attach.
    mfn: Option<Mfn>,
    /// The guest's console event channel, as given at attach.
    port: Option<Port>,
    /// Output kept so far (the newest bytes).
    transcript: Vec<u8>,
    /// Output bytes discarded from the front of `transcript`.
    dropped: u64,
    /// Absolute output position up to which `take_output` has returned.
    taken: u64,
    /// Host input not yet delivered into the ring.
    input: VecDeque<u8>,
}

impl Console {
    /// Absolute position of the first byte of `transcript`.
    fn start(&self) -> u64 {
        self.dropped
    }

    fn append(&mut self, bytes: &[u8]) {
        self.transcript.extend_from_slice(bytes);
        if self.transcript.len() > TRANSCRIPT_LIMIT + TRANSCRIPT_LIMIT / 4 {
            let excess = self.transcript.len() - TRANSCRIPT_LIMIT;
            self.transcript.drain(..excess);
            self.dropped += excess as u64;
        }
    }
}

/// The console backend: one console per attached domain.
#[derive(Debug, Default, Clone)]
pub struct Consoles {
    consoles: BTreeMap<DomId, Console>,
}

fn get_u32(page: &[u8; 4096], off: usize) -> u32 {
    u32::from_le_bytes([page[off], page[off + 1], page[off + 2], page[off + 3]])
}

fn put_u32(page: &mut [u8; 4096], off: usize, v: u32) {
    page[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

impl Consoles {
    /// No consoles attached.
    #[must_use]
    pub fn new() -> Self {
        Consoles::default()
    }

    /// Starts serving `dom`'s console page `mfn` with event channel `port`. Attaching an
    /// attached domain again only updates the page and port; its transcript and pending
    /// input are kept.
    pub fn attach(&mut self, dom: DomId, mfn: Mfn, port: Port) {
        let c = self.consoles.entry(dom).or_default();
        c.mfn = Some(mfn);
        c.port = Some(port);
    }

    /// Stops serving `dom` and forgets its transcript. Detaching an unattached domain
    /// does nothing.
    pub fn detach(&mut self, dom: DomId) {
        self.consoles.remove(&dom);
    }

    /// Whether `dom` has a console.
    #[must_use]
    pub fn is_attached(&self, dom: DomId) -> bool {
        self.consoles.contains_key(&dom)
    }

    /// The page and event channel `dom`'s console was attached with.
    #[must_use]
    pub fn ring(&self, dom: DomId) -> Option<(Mfn, Port)> {
        let c = self.consoles.get(&dom)?;
        Some((c.mfn?, c.port?))
    }

    /// Every attached domain with its page and port, by domain id.
    #[must_use]
    pub fn attached(&self) -> Vec<(DomId, Mfn, Port)> {
        self.consoles
            .iter()
            .filter_map(|(d, c)| Some((*d, c.mfn?, c.port?)))
            .collect()
    }

    /// Serves `dom`'s console page: drains guest output into the transcript and
    /// delivers pending input. Returns whether anything moved (the caller then notifies
    /// the guest's console event channel, as xenconsoled does). Does nothing for an
    /// unattached domain or a ring with inconsistent indices.
    pub fn process_ring(&mut self, dom: DomId, page: &mut [u8; 4096]) -> bool {
        let Some(c) = self.consoles.get_mut(&dom) else {
            return false;
        };
        let mut moved = false;

        // Output: the guest produces, we consume.
        let cons = get_u32(page, XENCONS_OUT_CONS);
        let prod = get_u32(page, XENCONS_OUT_PROD);
        let size = prod.wrapping_sub(cons) as usize;
        if size != 0 && size <= XENCONS_OUT_SIZE {
            let mut bytes = Vec::with_capacity(size);
            let mut idx = cons;
            while idx != prod {
                bytes.push(page[XENCONS_OUT + mask_xencons_out(idx)]);
                idx = idx.wrapping_add(1);
            }
            c.append(&bytes);
            put_u32(page, XENCONS_OUT_CONS, prod);
            moved = true;
        }

        // Input: we produce, the guest consumes.
        if !c.input.is_empty() {
            let cons = get_u32(page, XENCONS_IN_CONS);
            let mut prod = get_u32(page, XENCONS_IN_PROD);
            let used = prod.wrapping_sub(cons) as usize;
            if used <= XENCONS_IN_SIZE {
                let n = (XENCONS_IN_SIZE - used).min(c.input.len());
                for b in c.input.drain(..n) {
                    page[XENCONS_IN + mask_xencons_in(prod)] = b;
                    prod = prod.wrapping_add(1);
                }
                if n > 0 {
                    put_u32(page, XENCONS_IN_PROD, prod);
                    moved = true;
                }
            }
        }
        moved
    }

    /// The transcript kept so far (empty for an unattached domain).
    #[must_use]
    pub fn output(&self, dom: DomId) -> &[u8] {
        self.consoles.get(&dom).map_or(&[], |c| &c.transcript[..])
    }

    /// Output produced since the previous `take_output` (bytes already discarded by the
    /// transcript bound are lost and only counted by [`Consoles::dropped`]).
    pub fn take_output(&mut self, dom: DomId) -> Vec<u8> {
        let Some(c) = self.consoles.get_mut(&dom) else {
            return Vec::new();
        };
        let from = c.taken.max(c.start());
        let skip = (from - c.start()) as usize;
        let out = c.transcript[skip..].to_vec();
        c.taken = c.start() + c.transcript.len() as u64;
        out
    }

    /// How many of `dom`'s output bytes the transcript bound has discarded.
    #[must_use]
    pub fn dropped(&self, dom: DomId) -> u64 {
        self.consoles.get(&dom).map_or(0, |c| c.dropped)
    }

    /// Queues host input for `dom`; it reaches the guest's `in` ring on the following
    /// [`Consoles::process_ring`] calls, as space allows.
    ///
    /// # Errors
    /// `ENOENT` if `dom` has no console.
    pub fn push_input(&mut self, dom: DomId, bytes: &[u8]) -> XenResult<()> {
        let c = self.consoles.get_mut(&dom).ok_or(Errno::ENOENT)?;
        c.input.extend(bytes.iter().copied());
        Ok(())
    }

    /// How many input bytes wait for space in `dom`'s `in` ring.
    #[must_use]
    pub fn pending_input(&self, dom: DomId) -> usize {
        self.consoles.get(&dom).map_or(0, |c| c.input.len())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const D: DomId = DomId::new(3);

    fn attached() -> Consoles {
        let mut c = Consoles::new();
        c.attach(D, Mfn::new(0x1234), Port::new(2));
        c
    }

    /// Plays the guest: puts `bytes` into `out` at the current producer index.
    fn guest_write(page: &mut [u8; 4096], bytes: &[u8]) {
        let mut prod = get_u32(page, XENCONS_OUT_PROD);
        for &b in bytes {
            page[XENCONS_OUT + (prod as usize % XENCONS_OUT_SIZE)] = b;
            prod = prod.wrapping_add(1);
        }
        put_u32(page, XENCONS_OUT_PROD, prod);
    }

    /// Plays the guest: takes everything from `in`.
    fn guest_read(page: &mut [u8; 4096]) -> Vec<u8> {
        let mut cons = get_u32(page, XENCONS_IN_CONS);
        let prod = get_u32(page, XENCONS_IN_PROD);
        let mut out = Vec::new();
        while cons != prod {
            out.push(page[XENCONS_IN + (cons as usize % XENCONS_IN_SIZE)]);
            cons = cons.wrapping_add(1);
        }
        put_u32(page, XENCONS_IN_CONS, cons);
        out
    }

    #[test]
    fn drains_guest_output_into_transcript() {
        let mut c = attached();
        let mut page = [0u8; 4096];
        guest_write(&mut page, b"hello ");
        assert!(c.process_ring(D, &mut page));
        assert_eq!(get_u32(&page, XENCONS_OUT_CONS), 6);
        guest_write(&mut page, b"world\n");
        assert!(c.process_ring(D, &mut page));
        assert_eq!(c.output(D), b"hello world\n");
        // Nothing new: nothing moved.
        assert!(!c.process_ring(D, &mut page));
    }

    #[test]
    fn take_output_returns_only_new_bytes() {
        let mut c = attached();
        let mut page = [0u8; 4096];
        guest_write(&mut page, b"abc");
        c.process_ring(D, &mut page);
        assert_eq!(c.take_output(D), b"abc");
        assert_eq!(c.take_output(D), b"");
        guest_write(&mut page, b"de");
        c.process_ring(D, &mut page);
        assert_eq!(c.take_output(D), b"de");
        assert_eq!(c.output(D), b"abcde");
    }

    #[test]
    fn output_wraps_around_the_ring_and_the_index_space() {
        let mut c = attached();
        let mut page = [0u8; 4096];
        // Indices just below u32::MAX, so both the byte offset and the u32 wrap.
        let start = u32::MAX - 5;
        put_u32(&mut page, XENCONS_OUT_CONS, start);
        put_u32(&mut page, XENCONS_OUT_PROD, start);
        let msg: Vec<u8> = (0..2000u32).map(|i| b'a' + (i % 26) as u8).collect();
        guest_write(&mut page, &msg);
        assert!(c.process_ring(D, &mut page));
        assert_eq!(c.output(D), &msg[..]);
        assert_eq!(get_u32(&page, XENCONS_OUT_CONS), start.wrapping_add(2000));
    }

    #[test]
    fn a_full_out_ring_is_drained_whole() {
        let mut c = attached();
        let mut page = [0u8; 4096];
        let msg = vec![b'x'; XENCONS_OUT_SIZE];
        guest_write(&mut page, &msg);
        assert!(c.process_ring(D, &mut page));
        assert_eq!(c.output(D).len(), XENCONS_OUT_SIZE);
    }

    #[test]
    fn inconsistent_out_indices_are_ignored() {
        let mut c = attached();
        let mut page = [0u8; 4096];
        // The producer claims more than the ring holds: xenconsoled leaves it alone.
        put_u32(&mut page, XENCONS_OUT_CONS, 10);
        put_u32(
            &mut page,
            XENCONS_OUT_PROD,
            10 + XENCONS_OUT_SIZE as u32 + 1,
        );
        assert!(!c.process_ring(D, &mut page));
        assert_eq!(get_u32(&page, XENCONS_OUT_CONS), 10);
        assert!(c.output(D).is_empty());
        // Producer behind the consumer is the same thing (huge distance).
        put_u32(&mut page, XENCONS_OUT_PROD, 9);
        assert!(!c.process_ring(D, &mut page));
    }

    #[test]
    fn input_is_delivered_as_space_allows() {
        let mut c = attached();
        let mut page = [0u8; 4096];
        let input: Vec<u8> = (0..1500u32).map(|i| i as u8).collect();
        c.push_input(D, &input).unwrap();
        assert!(c.process_ring(D, &mut page));
        // Only one ring's worth fits while the guest has consumed nothing.
        assert_eq!(get_u32(&page, XENCONS_IN_PROD), XENCONS_IN_SIZE as u32);
        assert_eq!(c.pending_input(D), 1500 - XENCONS_IN_SIZE);
        // A full ring: nothing more moves.
        assert!(!c.process_ring(D, &mut page));
        let first = guest_read(&mut page);
        assert!(c.process_ring(D, &mut page));
        let second = guest_read(&mut page);
        assert_eq!([first, second].concat(), input);
        assert_eq!(c.pending_input(D), 0);
    }

    #[test]
    fn inconsistent_in_indices_get_no_input() {
        let mut c = attached();
        let mut page = [0u8; 4096];
        put_u32(&mut page, XENCONS_IN_CONS, 5000);
        put_u32(&mut page, XENCONS_IN_PROD, 1);
        c.push_input(D, b"x").unwrap();
        assert!(!c.process_ring(D, &mut page));
        assert_eq!(get_u32(&page, XENCONS_IN_PROD), 1);
        assert_eq!(c.pending_input(D), 1);
    }

    #[test]
    fn transcript_is_bounded_and_counts_drops() {
        let mut c = attached();
        let mut page = [0u8; 4096];
        let mut total = 0u64;
        let mut last = Vec::new();
        for i in 0..1000u32 {
            let chunk = vec![(i % 251) as u8; 2000];
            guest_write(&mut page, &chunk);
            c.process_ring(D, &mut page);
            total += 2000;
            last = chunk;
        }
        let kept = c.output(D).len() as u64;
        assert!(kept >= TRANSCRIPT_LIMIT as u64);
        assert!(kept <= (TRANSCRIPT_LIMIT + TRANSCRIPT_LIMIT / 4) as u64);
        assert_eq!(kept + c.dropped(D), total);
        assert!(c.output(D).ends_with(&last));
        // take_output after drops returns what is still held, never more.
        assert_eq!(c.take_output(D).len() as u64, kept);
    }

    #[test]
    fn unattached_domains() {
        let mut c = attached();
        let mut page = [0u8; 4096];
        guest_write(&mut page, b"x");
        let other = DomId::new(9);
        assert!(!c.is_attached(other));
        assert!(!c.process_ring(other, &mut page));
        assert_eq!(c.push_input(other, b"x"), Err(Errno::ENOENT));
        assert!(c.output(other).is_empty());
        assert_eq!(c.ring(D), Some((Mfn::new(0x1234), Port::new(2))));
        c.detach(D);
        assert!(!c.is_attached(D));
        assert!(!c.process_ring(D, &mut page));
        assert!(c.attached().is_empty());
    }

    proptest! {
        #[test]
        fn hostile_pages_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 4096),
            idx in proptest::array::uniform4(any::<u32>()),
            near in any::<bool>(),
            input in proptest::collection::vec(any::<u8>(), 0..3000),
        ) {
            let mut c = attached();
            c.push_input(D, &input).unwrap();
            let mut page = [0u8; 4096];
            page.copy_from_slice(&bytes);
            let idx = if near {
                // Indices close together, so the rings are actually used.
                [idx[0], idx[0].wrapping_add(idx[1] % 1100), idx[2], idx[2].wrapping_add(idx[3] % 2100)]
            } else {
                idx
            };
            put_u32(&mut page, XENCONS_IN_CONS, idx[0]);
            put_u32(&mut page, XENCONS_IN_PROD, idx[1]);
            put_u32(&mut page, XENCONS_OUT_CONS, idx[2]);
            put_u32(&mut page, XENCONS_OUT_PROD, idx[3]);
            for _ in 0..3 {
                c.process_ring(D, &mut page);
            }
            // Whatever happened, the in ring never holds more than its size.
            let used = get_u32(&page, XENCONS_IN_PROD).wrapping_sub(get_u32(&page, XENCONS_IN_CONS));
            let was = idx[1].wrapping_sub(idx[0]);
            prop_assert!(used as usize <= XENCONS_IN_SIZE || used == was);
            // One drain empties the ring; later rounds find nothing new.
            prop_assert!(c.output(D).len() <= XENCONS_OUT_SIZE);
        }
    }
}
