//! The identifiers a call draws (tags, branches, Call-IDs, leg UUIDs) and the ids of the
//! operations it waits on. Drawn from a generator seeded by the caller, so a harness run with
//! the same seed repeats byte for byte.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One outstanding operation (a media command, a document fetch, a resolution): the reply
/// carries it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpId(pub u64);

pub struct Ids {
    rng: StdRng,
    next_op: u64,
}

impl Ids {
    pub fn new(seed: u64) -> Ids {
        Ids { rng: StdRng::seed_from_u64(seed), next_op: 1 }
    }

    pub fn op(&mut self) -> OpId {
        let op = OpId(self.next_op);
        self.next_op += 1;
        op
    }

    pub fn token(&mut self, len: usize) -> String {
        (&mut self.rng).sample_iter(&rand::distributions::Alphanumeric).take(len).map(char::from).collect()
    }

    pub fn random_u32(&mut self) -> u32 {
        self.rng.r#gen()
    }

    pub fn tag(&mut self) -> String {
        self.token(10)
    }

    /// A branch with RFC 3261's magic cookie (§8.1.1.7).
    pub fn branch(&mut self) -> String {
        format!("z9hG4bK{}", self.token(16))
    }

    pub fn call_id(&mut self) -> String {
        format!("{}@voxbridge", self.token(20))
    }

    pub fn uuid(&mut self) -> String {
        uuid::Builder::from_random_bytes(self.rng.r#gen()).into_uuid().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_ids() {
        let (mut a, mut b) = (Ids::new(7), Ids::new(7));
        assert_eq!((a.branch(), a.uuid(), a.op()), (b.branch(), b.uuid(), b.op()));
        assert!(a.branch().starts_with("z9hG4bK"));
        assert_ne!(a.uuid(), Ids::new(8).uuid());
    }
}
