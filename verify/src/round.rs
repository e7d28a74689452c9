//! A request's round as every member sees it, by block times: the phase it is in. The
//! protocol's state machine lives in the node; this is the public name of where a round
//! stands, shown by `status` and used to decide what a member does next.

use serde::{Deserialize, Serialize};

/// The phase of an open round. Serialised as its name ([`Phase::name`]: `"commit"`,
/// `"reveal"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Members build the request and commit to their outcome.
    Commit,
    /// Members that committed reveal their outcome and salt.
    Reveal,
}

impl Phase {
    /// Every phase, in the order a round goes through them.
    pub const ALL: [Phase; 2] = [Self::Commit, Self::Reveal];

    /// Its name, as serialised.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Commit => "commit",
            Self::Reveal => "reveal",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;

    #[test]
    fn phases_serialise_as_their_names() {
        for p in Phase::ALL {
            let bytes = codec::to_vec(&p);
            assert_eq!(bytes, codec::to_vec(p.name()));
            assert_eq!(codec::from_slice::<Phase>(&bytes, 16), Ok(p));
            assert_eq!(p.to_string(), p.name());
        }
        assert_eq!(
            serde_json::to_string(&Phase::ALL).ok().as_deref(),
            Some(r#"["commit","reveal"]"#)
        );
    }
}
