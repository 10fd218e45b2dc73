//! What the report holds: per benchmark a table of outcomes, one column per peer.

/// The peers, in column order; fiber is the first, every ratio is fiber ÷ one of the others. `go`
/// is goroutines (`benches/peers/go`, run when `go` is on `PATH`: `fiber_support::go_peer`).
pub(crate) const PEERS: [&str; 5] = ["fiber", "tokio", "go", "may", "std"];

/// How each peer is labelled in tables and charts.
pub(crate) const PEER_LABELS: [&str; 5] = ["fiber", "tokio", "go", "may", "std threads"];

/// A variant of fiber measured in some benchmarks only (`Spec::variants`): its child `--point`
/// kind and its label. Shown in columns of its own after the peers', with variant ÷ fiber ratios.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Variant {
    pub(crate) kind: &'static str,
    pub(crate) label: &'static str,
}

/// One measured cell.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    /// The figure, in the table's unit.
    Value(f64),
    /// The peer could not run this size (or was not attempted), and why.
    Cannot(String),
}

impl Outcome {
    pub(crate) fn value(&self) -> Option<f64> {
        match self {
            Outcome::Value(v) => Some(*v),
            Outcome::Cannot(_) => None,
        }
    }
}

/// One row: one size (or configuration) of a benchmark, every peer.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    /// The size or configuration (N, connections, workers).
    pub(crate) x: u64,
    /// One outcome per peer, in [`PEERS`] order.
    pub(crate) cells: Vec<Outcome>,
    /// Side figures the measurements reported (a variant of a peer, a caveat).
    pub(crate) notes: Vec<String>,
    /// One outcome per variant of the benchmark (`Table::variants`), in that order.
    pub(crate) variants: Vec<Outcome>,
}

impl Row {
    /// fiber ÷ the peer at `i`, if both ran.
    pub(crate) fn ratio(&self, i: usize) -> Option<f64> {
        match (self.cells[0].value(), self.cells[i].value()) {
            (Some(f), Some(p)) if p > 0.0 => Some(f / p),
            _ => None,
        }
    }

    /// The variant at `i` ÷ fiber, if both ran.
    pub(crate) fn variant_ratio(&self, i: usize) -> Option<f64> {
        match (self.variants[i].value(), self.cells[0].value()) {
            (Some(v), Some(f)) if f > 0.0 => Some(v / f),
            _ => None,
        }
    }
}

/// One benchmark's results in one unit: a table and a chart.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    /// File-name stem of the chart, and the anchor.
    pub(crate) id: String,
    pub(crate) title: String,
    /// How one figure is taken (markdown).
    pub(crate) about: String,
    /// What the rows vary.
    pub(crate) x_name: &'static str,
    /// How a row's `x` is shown.
    pub(crate) x_label: fn(u64) -> String,
    pub(crate) unit: &'static str,
    pub(crate) higher_is_better: bool,
    pub(crate) rows: Vec<Row>,
    /// The fiber variants measured beside the peers (each row has one outcome per variant).
    pub(crate) variants: &'static [Variant],
    /// Load average (1 min) when the benchmark started and when it ended.
    pub(crate) load: [f64; 2],
    /// Wall time of the benchmark, seconds.
    pub(crate) secs: f64,
}
