//! The four stages of the pipeline, in order, and the layer each publishes: the one list the
//! services, the operator (`tascomi`) and the tests name them from.

use std::fmt;
use std::str::FromStr;

use crate::layout::Layer;

/// A stage of the pipeline; ordered as the data flows (ingest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    Ingest,
    Parse,
    Recast,
    Snapshot,
}

impl Stage {
    /// Every stage, in pipeline order.
    pub const ALL: [Stage; 4] = [Stage::Ingest, Stage::Parse, Stage::Recast, Stage::Snapshot];

    /// Every stage's [`name`](Stage::name), in pipeline order.
    pub const NAMES: [&'static str; 4] = [
        Stage::Ingest.name(),
        Stage::Parse.name(),
        Stage::Recast.name(),
        Stage::Snapshot.name(),
    ];

    /// `ingest`: the name in messages, metrics, queue and service names (`ingest-svc`).
    pub const fn name(self) -> &'static str {
        match self {
            Stage::Ingest => "ingest",
            Stage::Parse => "parse",
            Stage::Recast => "recast",
            Stage::Snapshot => "snapshot",
        }
    }

    /// The layer the stage publishes.
    pub const fn layer(self) -> Layer {
        match self {
            Stage::Ingest => Layer::Raw,
            Stage::Parse => Layer::Parsed,
            Stage::Recast => Layer::Increment,
            Stage::Snapshot => Layer::Snapshot,
        }
    }

    /// The stage that publishes `layer`.
    pub const fn publishing(layer: Layer) -> Stage {
        match layer {
            Layer::Raw => Stage::Ingest,
            Layer::Parsed => Stage::Parse,
            Layer::Increment => Stage::Recast,
            Layer::Snapshot => Stage::Snapshot,
        }
    }

    /// `INGEST`, for environment variable names.
    pub fn env_name(self) -> String {
        self.name().to_uppercase()
    }

    /// This stage and every stage after it.
    pub fn and_downstream(self) -> impl Iterator<Item = Stage> {
        Stage::ALL.into_iter().filter(move |s| *s >= self)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is none of [`Stage::NAMES`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown stage {0:?}: expected one of {names}", names = Stage::NAMES.join(", "))]
pub struct UnknownStage(pub String);

impl FromStr for Stage {
    type Err = UnknownStage;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Stage::ALL
            .into_iter()
            .find(|stage| stage.name() == s)
            .ok_or_else(|| UnknownStage(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_map_to_their_layers_both_ways_in_order() {
        for stage in Stage::ALL {
            assert_eq!(Stage::publishing(stage.layer()), stage);
        }
        assert_eq!(Stage::ALL.map(Stage::layer), Layer::ALL);
        assert_eq!(Stage::Parse.layer().upstream(), Some(Layer::Raw));
    }

    #[test]
    fn names_parse_back_and_display_as_themselves() {
        assert_eq!(Stage::ALL.map(Stage::name), Stage::NAMES);
        for stage in Stage::ALL {
            assert_eq!(stage.name().parse::<Stage>(), Ok(stage));
            assert_eq!(stage.to_string(), stage.name());
        }
        assert_eq!(Stage::Recast.env_name(), "RECAST");
    }

    #[test]
    fn an_unknown_name_is_refused_with_the_names() {
        let err = "Parse".parse::<Stage>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown stage \"Parse\": expected one of ingest, parse, recast, snapshot"
        );
    }

    #[test]
    fn downstream_starts_at_the_stage() {
        let downstream: Vec<_> = Stage::Recast.and_downstream().collect();
        assert_eq!(downstream, [Stage::Recast, Stage::Snapshot]);
        assert_eq!(Stage::Ingest.and_downstream().count(), 4);
        assert_eq!(Stage::Snapshot.and_downstream().count(), 1);
    }
}
