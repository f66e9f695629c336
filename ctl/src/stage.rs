//! The four stages as the operator names them.

use std::fmt;

use common::Layer;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum Stage {
    Ingest,
    Parse,
    Recast,
    Snapshot,
}

impl Stage {
    pub const ALL: [Stage; 4] = [Stage::Ingest, Stage::Parse, Stage::Recast, Stage::Snapshot];

    /// The layer the stage publishes.
    pub fn layer(self) -> Layer {
        match self {
            Stage::Ingest => Layer::Raw,
            Stage::Parse => Layer::Parsed,
            Stage::Recast => Layer::Increment,
            Stage::Snapshot => Layer::Snapshot,
        }
    }

    /// The stage that publishes `layer`.
    pub fn publishing(layer: Layer) -> Stage {
        match layer {
            Layer::Raw => Stage::Ingest,
            Layer::Parsed => Stage::Parse,
            Layer::Increment => Stage::Recast,
            Layer::Snapshot => Stage::Snapshot,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Stage::Ingest => "ingest",
            Stage::Parse => "parse",
            Stage::Recast => "recast",
            Stage::Snapshot => "snapshot",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_map_to_their_layers_both_ways() {
        for stage in Stage::ALL {
            assert_eq!(Stage::publishing(stage.layer()), stage);
        }
        let downstream: Vec<_> = Stage::Recast.and_downstream().collect();
        assert_eq!(downstream, [Stage::Recast, Stage::Snapshot]);
        assert_eq!(Stage::Parse.layer().upstream(), Some(Layer::Raw));
    }
}
