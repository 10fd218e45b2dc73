//! The comparison table of the `stress` demo: one row per figure, a column each for fibers, std
//! threads, tokio and Go (goroutines, when `go` is installed: [`crate::go_peer`]), and the
//! fiber ÷ peer ratios.

/// One row of the final table: a figure for fibers, std threads and tokio (lower is better).
struct Row {
    stage: &'static str,
    metric: String,
    unit: &'static str,
    fiber: Option<f64>,
    thread: Option<f64>,
    tokio: Option<f64>,
    /// Filled afterwards by [`Table::set_go`] (`None`: no Go equivalent, or Go not installed).
    go: Option<f64>,
}

/// The rows, in the order they were added.
#[derive(Default)]
pub struct Table(Vec<Row>);

impl Table {
    /// Adds a row: `metric` of `stage` in `unit`, for each peer that was measured.
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        stage: &'static str,
        metric: impl Into<String>,
        unit: &'static str,
        fiber: Option<f64>,
        thread: Option<f64>,
        tokio: Option<f64>,
    ) {
        self.0.push(Row {
            stage,
            metric: metric.into(),
            unit,
            fiber,
            thread,
            tokio,
            go: None,
        });
    }

    /// Sets the Go figure of the row of `stage` whose metric starts with `metric` (if there is one).
    pub fn set_go(&mut self, stage: &str, metric: &str, go: Option<f64>) {
        if let Some(r) = self
            .0
            .iter_mut()
            .find(|r| r.stage == stage && r.metric.starts_with(metric))
        {
            r.go = go;
        }
    }

    /// Prints the table on stdout.
    pub fn print(&self) {
        let cell = |v: Option<f64>| match v {
            Some(v) if v >= 100.0 => format!("{v:.0}"),
            Some(v) => format!("{v:.2}"),
            None => "-".into(),
        };
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
            _ => "-".into(),
        };
        println!(
            "\n{:<8} {:<34} {:>10} {:>10} {:>10} {:>10} {:>13} {:>13} {:>13}",
            "stage",
            "metric",
            "fiber",
            "std",
            "tokio",
            "go",
            "fiber/tokio",
            "fiber/go",
            "fiber/std"
        );
        println!("{}", "-".repeat(130));
        for r in &self.0 {
            println!(
                "{:<8} {:<34} {:>10} {:>10} {:>10} {:>10} {:>13} {:>13} {:>13}",
                r.stage,
                format!("{} ({})", r.metric, r.unit),
                cell(r.fiber),
                cell(r.thread),
                cell(r.tokio),
                cell(r.go),
                ratio(r.fiber, r.tokio),
                ratio(r.fiber, r.go),
                ratio(r.fiber, r.thread),
            );
        }
        println!("(lower is better except for counts; a ratio below 1 means fibers win)");
        if let Some(go) = crate::go_peer::describe() {
            println!("go: {go}");
        }
    }
}
