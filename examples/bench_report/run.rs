//! The parent side: runs every (benchmark, size, peer) cell in a child process, interleaving the
//! peers, and gathers the cells into tables.

use std::time::{Duration, Instant};

use fiber_support::go_peer;

use crate::child::{self, Measured};
use crate::machine;
use crate::model::{Outcome, Row, Table, PEERS};
use crate::plan::{Spec, SPECS};

/// One cell while the rounds run: not yet run, measured (best so far), or failed.
type Cell = Option<Result<Measured, String>>;

/// Runs every benchmark (or those whose id is in `only`); returns one table per benchmark metric.
/// `go` is the Go peer as built (`Err`: why no Go cell is run, e.g. "not installed").
pub(crate) fn all(
    quick: bool,
    only: Option<&[String]>,
    go: &Result<go_peer::Built, String>,
) -> Vec<Table> {
    SPECS
        .iter()
        .filter(|s| only.is_none_or(|ids| ids.iter().any(|id| id == s.id)))
        .flat_map(|s| benchmark(s, quick, go))
        .collect()
}

/// The `--point` kinds measured for `spec`: the peers, then its variants (the cells' order).
fn kinds(spec: &Spec) -> Vec<&'static str> {
    PEERS
        .iter()
        .copied()
        .chain(spec.variants.iter().map(|v| v.kind))
        .collect()
}

/// The order in which a round measures the kinds: fiber, its variants right after it (so that
/// a variant ÷ fiber ratio compares neighbours in time), then the other peers.
fn measuring_order(kinds: usize) -> Vec<usize> {
    std::iter::once(0)
        .chain(PEERS.len()..kinds)
        .chain(1..PEERS.len())
        .collect()
}

fn benchmark(spec: &Spec, quick: bool, go: &Result<go_peer::Built, String>) -> Vec<Table> {
    let load = machine::load()[0];
    let start = Instant::now();
    let sizes = if quick { spec.quick } else { spec.full };
    let rounds = if quick { 1 } else { spec.rounds };
    let timeout = Duration::from_secs(spec.timeout_secs);
    let kinds = kinds(spec);
    let mut cells: Vec<Vec<Cell>> = vec![vec![None; kinds.len()]; sizes.len()];
    let mut notes: Vec<Vec<String>> = vec![Vec::new(); sizes.len()];
    for round in 1..=rounds {
        for (xi, &x) in sizes.iter().enumerate() {
            for pi in measuring_order(kinds.len()) {
                let peer = kinds[pi];
                if matches!(cells[xi][pi], Some(Err(_))) {
                    continue; // failed in an earlier round: not retried
                }
                if let Some(reason) = skip(spec, &cells, sizes, xi, pi, go) {
                    cells[xi][pi] = Some(Err(reason));
                    continue;
                }
                let label = (spec.x_label)(x);
                eprint!("  {} {label} {peer} (round {round}/{rounds}) ... ", spec.id);
                let result = child::measure(spec.id, peer, x, quick, timeout);
                match &result {
                    Ok(m) => eprintln!("{:?}", m.values),
                    Err(e) => eprintln!("cannot: {e}"),
                }
                let cell = &mut cells[xi][pi];
                *cell = match (cell.take(), result) {
                    (Some(Ok(old)), Err(e)) => {
                        notes[xi].push(format!("{peer} failed in one round ({e})"));
                        Some(Ok(old))
                    }
                    (Some(Ok(old)), Ok(new)) => Some(Ok(better(spec, old, new))),
                    (_, result) => Some(result),
                }
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    tables(spec, sizes, cells, notes, [load, machine::load()[0]], secs)
}

/// Why a cell is not attempted: there is no Go peer (not installed, or its build failed), the
/// peer failed at a smaller size already, or (std threads) the size exceeds what this machine's
/// limits allow without starving the other processes of the user (threads count against
/// `ulimit -u`).
fn skip(
    spec: &Spec,
    cells: &[Vec<Cell>],
    sizes: &[u64],
    xi: usize,
    pi: usize,
    go: &Result<go_peer::Built, String>,
) -> Option<String> {
    if let (Some(&"go"), Err(why)) = (PEERS.get(pi), go) {
        return Some(why.clone());
    }
    if let Some(smaller) = (0..xi).find(|&i| matches!(cells[i][pi], Some(Err(_)))) {
        return Some(format!(
            "not attempted: failed already at {}",
            (spec.x_label)(sizes[smaller])
        ));
    }
    let live = (spec.live)(sizes[xi]);
    let budget = machine::thread_budget();
    (PEERS.get(pi) == Some(&"std") && live > budget.threads).then(|| {
        format!(
            "not attempted: {live} live threads exceed {} ({})",
            budget.threads, budget.why
        )
    })
}

/// Of two runs of the same cell, the one with the better first metric.
fn better(spec: &Spec, old: Measured, new: Measured) -> Measured {
    let m = &spec.metrics[0];
    let (a, b) = (old.get(m.key), new.get(m.key));
    let new_wins = match (a, b) {
        (Some(a), Some(b)) => (b > a) == m.higher_is_better,
        (None, Some(_)) => true,
        _ => false,
    };
    if new_wins {
        new
    } else {
        old
    }
}

fn tables(
    spec: &Spec,
    sizes: &[u64],
    cells: Vec<Vec<Cell>>,
    notes: Vec<Vec<String>>,
    load: [f64; 2],
    secs: f64,
) -> Vec<Table> {
    let multi = spec.metrics.len() > 1;
    spec.metrics
        .iter()
        .map(|m| {
            let rows = sizes
                .iter()
                .zip(&cells)
                .zip(&notes)
                .map(|((&x, row), extra)| {
                    let mut row_notes = extra.clone();
                    let mut cells: Vec<Outcome> = row
                        .iter()
                        .map(|c| match c {
                            Some(Ok(measured)) => {
                                row_notes.extend(measured.notes.iter().cloned());
                                measured.get(m.key).map_or_else(
                                    || Outcome::Cannot("no figure".into()),
                                    Outcome::Value,
                                )
                            }
                            Some(Err(reason)) => Outcome::Cannot(reason.clone()),
                            None => Outcome::Cannot("not run".into()),
                        })
                        .collect();
                    let variants = cells.split_off(PEERS.len());
                    Row {
                        x,
                        cells,
                        notes: row_notes,
                        variants,
                    }
                })
                .collect();
            Table {
                id: if multi {
                    format!("{}_{}", spec.id, m.key)
                } else {
                    spec.id.to_string()
                },
                title: if multi {
                    format!("{} {}", spec.title, m.title)
                } else {
                    spec.title.to_string()
                },
                about: spec.about.to_string(),
                x_name: spec.x_name,
                x_label: spec.x_label,
                unit: m.unit,
                higher_is_better: m.higher_is_better,
                rows,
                variants: spec.variants,
                load,
                secs,
            }
        })
        .collect()
}
