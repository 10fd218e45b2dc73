//! One SVG chart per table (plotters, SVG backend only): the sizes side by side on the x axis, the
//! figure on a log y axis (peers differ by orders of magnitude), one colour per peer. Benchmarks
//! over several sizes are drawn as lines, single-configuration ones as bars. Cells a peer could
//! not run are left out.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::markdown::num;
use crate::model::{Table, PEER_LABELS};

const COLORS: [RGBColor; 5] = [
    RGBColor(214, 39, 40),   // fiber
    RGBColor(31, 119, 180),  // tokio
    RGBColor(23, 190, 207),  // go
    RGBColor(44, 160, 44),   // may
    RGBColor(127, 127, 127), // std threads
];

pub(crate) fn draw(t: &Table, path: &Path) -> Result<(), String> {
    draw_inner(t, path).map_err(|e| format!("{}: {e}", path.display()))
}

fn draw_inner(t: &Table, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let values: Vec<f64> = t
        .rows
        .iter()
        .flat_map(|r| r.cells.iter().filter_map(|c| c.value()))
        .filter(|v| *v > 0.0)
        .collect();
    // Whole decades with some room around the data, so that the log axis is labelled at powers
    // of ten and no point sits on the frame.
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(0.0, f64::max);
    let (lo, hi) = if values.is_empty() {
        (1.0, 10.0)
    } else {
        (
            10f64.powf((lo / 1.5).log10().floor()),
            10f64.powf((hi * 1.5).log10().ceil()),
        )
    };
    let n = t.rows.len();
    let bars = n == 1;
    let root = SVGBackend::new(path, (760, 440)).into_drawing_area();
    root.fill(&WHITE)?;
    // Title and legend above the plot, where they cannot hide a point.
    let (top, body) = root.split_vertically(64);
    top.draw(&Text::new(
        format!("{} ({})", t.title, t.unit),
        (380, 8),
        ("sans-serif", 20)
            .into_font()
            .into_text_style(&top)
            .pos(Pos::new(HPos::Center, VPos::Top)),
    ))?;
    for (pi, label) in PEER_LABELS.iter().enumerate() {
        let x = 110 + 120 * pi as i32;
        top.draw(&Rectangle::new(
            [(x, 40), (x + 18, 50)],
            COLORS[pi].filled(),
        ))?;
        top.draw(&Text::new(*label, (x + 24, 39), ("sans-serif", 14)))?;
    }
    let mut chart = ChartBuilder::on(&body)
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(80)
        .build_cartesian_2d(-0.5f64..n as f64 - 0.5, (lo..hi).log_scale())?;
    let x_label = |x: &f64| {
        let i = x.round();
        if (x - i).abs() > 1e-6 || i < 0.0 || i as usize >= n {
            return String::new();
        }
        (t.x_label)(t.rows[i as usize].x)
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n.max(2) * 2 + 1)
        .x_label_formatter(&x_label)
        .y_label_formatter(&|y| num(*y, 1))
        .x_desc(t.x_name)
        .y_desc(t.unit)
        .draw()?;
    for (pi, &color) in COLORS.iter().enumerate() {
        let points: Vec<(f64, f64)> = t
            .rows
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.cells[pi].value().map(|v| (i as f64, v)))
            .collect();
        if bars {
            // One bar per peer, side by side around each x.
            let w = 0.8 / PEER_LABELS.len() as f64;
            let x0 = |x: f64| x - 0.4 + pi as f64 * w;
            chart.draw_series(points.iter().map(|&(x, v)| {
                Rectangle::new([(x0(x), lo), (x0(x) + w * 0.9, v)], color.filled())
            }))?;
        } else {
            chart.draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))?;
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
        }
    }
    root.present()?;
    Ok(())
}
