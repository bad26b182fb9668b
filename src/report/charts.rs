//! Charts as inline SVG, drawn with plotters' SVG backend: line charts over time or context,
//! and grouped bars across scenarios. Each chart also reports how many data points it drew,
//! which the HTML report states on the chart's `<figure>` (and its tests check).

use plotters::prelude::*;

/// A drawn chart.
pub struct Chart {
    /// The `<svg>` element.
    pub svg: String,
    /// Data points drawn (line vertices plus bars); 0 means the chart shows nothing.
    pub points: usize,
}

/// One line of a line chart.
pub struct Line {
    /// Legend label.
    pub label: String,
    /// (x, y) points in x order.
    pub points: Vec<(f64, f64)>,
}

/// A horizontal reference line (an alert threshold).
pub struct Rule {
    /// Legend label.
    pub label: String,
    /// Its y.
    pub y: f64,
}

/// Series colours: one per file or line (reference first in bar charts).
const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
];

/// Threshold colours: caution, warning, critical.
const RULES: [RGBColor; 3] = [
    RGBColor(230, 180, 0),
    RGBColor(240, 120, 0),
    RGBColor(200, 0, 0),
];

fn nice_max(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        1.0
    } else {
        v * 1.08
    }
}

/// A line chart of `lines` with horizontal `rules`, `size` pixels. Plotting errors (which
/// only a degenerate range could cause) leave the chart empty rather than failing a report.
pub fn line_chart(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    lines: &[Line],
    rules: &[Rule],
    y_max: Option<f64>,
    size: (u32, u32),
) -> Chart {
    let points: usize = lines.iter().map(|l| l.points.len()).sum();
    let x_max = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0))
        .fold(0.0, f64::max);
    let data_max = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .chain(rules.iter().map(|r| r.y))
        .fold(0.0, f64::max);
    let y_top = y_max.unwrap_or_else(|| nice_max(data_max));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        let _ = draw_lines(
            &root,
            title,
            x_desc,
            y_desc,
            lines,
            rules,
            nice_max(x_max),
            y_top,
        );
        let _ = root.present();
    }
    Chart { svg, points }
}

#[allow(clippy::too_many_arguments)]
fn draw_lines(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    lines: &[Line],
    rules: &[Rule],
    x_max: f64,
    y_max: f64,
) -> Result<(), Box<dyn std::error::Error>> {
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 15))
        .margin(8)
        .x_label_area_size(32)
        .y_label_area_size(48)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    for (i, rule) in rules.iter().enumerate() {
        let color = RULES[i.min(RULES.len() - 1)];
        chart
            .draw_series(LineSeries::new(
                [(0.0, rule.y), (x_max, rule.y)],
                color.stroke_width(1),
            ))?
            .label(&rule.label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 14, y)], color));
    }
    for (i, line) in lines.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(
                line.points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(&line.label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 14, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    Ok(())
}

/// A line chart with a logarithmic x axis (context doubling from 1K to 128K), y from zero.
/// Points at x <= 0 cannot sit on a log axis and are dropped (and not counted). Each point of
/// `ringed` gets a ring around it: a measurement its run doubted, so a reader does not take
/// a bump at that point for the kernel's.
pub fn log_x_line_chart(
    title: &str,
    x_desc: &str,
    y_desc: &str,
    lines: &[Line],
    ringed: &[(f64, f64)],
    size: (u32, u32),
) -> Chart {
    let xs = || {
        lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.0))
            .filter(|x| *x > 0.0)
    };
    let points = xs().count();
    let x_min = xs().fold(f64::INFINITY, f64::min);
    let x_max = xs().fold(0.0, f64::max);
    let y_max = lines
        .iter()
        .flat_map(|l| l.points.iter().filter(|p| p.0 > 0.0).map(|p| p.1))
        .fold(0.0, f64::max);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        let (lo, hi) = if points == 0 {
            (1.0, 10.0)
        } else {
            (x_min / 1.2, x_max * 1.2)
        };
        let _ = draw_log_x_lines(
            &root,
            title,
            x_desc,
            y_desc,
            (lines, ringed),
            (lo, hi),
            nice_max(y_max),
        );
        let _ = root.present();
    }
    Chart { svg, points }
}

fn draw_log_x_lines(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    (lines, ringed): (&[Line], &[(f64, f64)]),
    (x_lo, x_hi): (f64, f64),
    y_max: f64,
) -> Result<(), Box<dyn std::error::Error>> {
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 15))
        .margin(8)
        .x_label_area_size(32)
        .y_label_area_size(48)
        .build_cartesian_2d((x_lo..x_hi).log_scale(), 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(&|x| {
            if *x >= 1024.0 {
                format!("{:.0}K", x / 1024.0)
            } else {
                format!("{x:.0}")
            }
        })
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    for (i, line) in lines.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(
                line.points.iter().copied().filter(|p| p.0 > 0.0),
                color.stroke_width(2),
            ))?
            .label(&line.label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 14, y)], color));
    }
    chart.draw_series(
        ringed
            .iter()
            .filter(|p| p.0 > 0.0)
            .map(|&p| Circle::new(p, 6, BLACK.stroke_width(1))),
    )?;
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    Ok(())
}

/// Grouped bars: for each category (a scenario), one bar per series. A value of `None` draws
/// no bar. With `log`, the y axis is logarithmic (for demand %, which spans 4 decades).
pub fn bar_chart(
    title: &str,
    y_desc: &str,
    categories: &[String],
    series: &[(String, Vec<Option<f64>>)],
    log: bool,
    size: (u32, u32),
) -> Chart {
    let points = series.iter().map(|(_, v)| v.iter().flatten().count()).sum();
    let top = series
        .iter()
        .flat_map(|(_, v)| v.iter().flatten().copied())
        .fold(0.0, f64::max);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        let _ = draw_bars(&root, title, y_desc, categories, series, log, nice_max(top));
        let _ = root.present();
    }
    Chart { svg, points }
}

fn draw_bars(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    y_desc: &str,
    categories: &[String],
    series: &[(String, Vec<Option<f64>>)],
    log: bool,
    top: f64,
) -> Result<(), Box<dyn std::error::Error>> {
    root.fill(&WHITE)?;
    let n = categories.len().max(1) as f64;
    let groups = series.len().max(1) as f64;
    let label = |x: &f64| {
        let i = x.floor() as usize;
        if (x - x.floor() - 0.5).abs() < 1e-6 {
            categories.get(i).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    let mut builder = ChartBuilder::on(root);
    builder
        .caption(title, ("sans-serif", 15))
        .margin(8)
        .x_label_area_size(32)
        .y_label_area_size(56);
    // One bar of each series side by side inside [i + 0.1, i + 0.9].
    let bars = |s: usize| {
        let width = 0.8 / groups;
        series[s]
            .1
            .iter()
            .enumerate()
            .filter_map(move |(i, v)| v.map(|v| (i as f64 + 0.1 + width * s as f64, width, v)))
    };
    // The same bars and legend on either y axis; only the coordinate type differs, and
    // plotters' generic bounds for it are longer than the drawing.
    macro_rules! draw_on {
        ($chart:ident, $bottom:expr) => {{
            let bottom: f64 = $bottom;
            $chart
                .configure_mesh()
                .y_desc(y_desc)
                .x_labels(categories.len() * 2 + 1)
                .x_label_formatter(&label)
                .light_line_style(WHITE.mix(0.0))
                .draw()?;
            for (s, (name, _)) in series.iter().enumerate() {
                let color = PALETTE[s % PALETTE.len()];
                $chart
                    .draw_series(bars(s).map(|(x, w, v)| {
                        Rectangle::new([(x, bottom), (x + w, v.max(bottom))], color.filled())
                    }))?
                    .label(name)
                    .legend(move |(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
                    });
            }
            $chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.3))
                .position(SeriesLabelPosition::UpperLeft)
                .draw()?;
        }};
    }
    if log {
        let bottom = series
            .iter()
            .flat_map(|(_, v)| v.iter().flatten().copied())
            .filter(|v| *v > 0.0)
            .fold(f64::MAX, f64::min)
            .min(1.0)
            * 0.5;
        let mut chart = builder.build_cartesian_2d(0.0..n, (bottom..top.max(1.0)).log_scale())?;
        draw_on!(chart, bottom);
    } else {
        let mut chart = builder.build_cartesian_2d(0.0..n, 0.0..top)?;
        draw_on!(chart, 0.0);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_draw_their_points_as_svg() {
        let line = Line {
            label: "use".into(),
            points: vec![(0.0, 10.0), (1.0, 50.0), (2.0, 95.0)],
        };
        let rule = Rule {
            label: "critical 90".into(),
            y: 90.0,
        };
        let c = line_chart(
            "KV use",
            "s",
            "%",
            &[line],
            &[rule],
            Some(100.0),
            (400, 240),
        );
        assert_eq!(c.points, 3);
        assert!(
            c.svg.starts_with("<svg") && c.svg.contains("<polyline"),
            "{}",
            c.svg
        );
        assert!(c.svg.contains("critical 90"));
        let bars = bar_chart(
            "demand",
            "%",
            &["01".into(), "02".into()],
            &[
                ("ref".into(), vec![Some(1.0), Some(2000.0)]),
                ("got".into(), vec![None, Some(5.0)]),
            ],
            true,
            (400, 240),
        );
        assert_eq!(bars.points, 3);
        assert!(bars.svg.contains("<rect"), "{}", bars.svg);
    }
}
