//! The toy guests: each module has the guest's code and its oracle.

pub mod counter;
pub mod epoch;
pub mod pagetable;

use crate::asm::AsmResult;
use crate::params::Guest;
use crate::runtime::Gen;

/// Emits the guest's code (`guest_main` and its routines); returns the number of
/// guest-region pages the image needs after [`PG_GUEST`](crate::layout::PG_GUEST).
pub(crate) fn emit(g: &mut Gen<'_>) -> AsmResult<u64> {
    match g.p.guest {
        Guest::Counter => {
            counter::emit(g)?;
            Ok(counter::region_pages(g.p))
        }
        Guest::Epoch => {
            epoch::emit(g)?;
            Ok(epoch::region_pages(g.p))
        }
        Guest::Pagetable => {
            pagetable::emit(g)?;
            Ok(pagetable::region_pages(g.p))
        }
        _ => todo!(),
    }
}
